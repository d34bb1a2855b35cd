import Foundation
import FuseBridge
import MdevCore
import Simulator
import SysfsSnapshot
import Testing
import VirtualFS

@Suite("recorded sysfs trees", .requires(canMount, "needs /dev/fuse and fusermount3"), .timeLimit(.minutes(1)))
struct SnapshotTests {
    let testdata = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../testdata").standardized.path
    let atSlot16: HostConfig = {
        var p = ParentConfig(address: "0000:00:10.0")
        p.iommuGroup = 40
        return HostConfig(parents: [p])
    }()

    func mounted<R>(_ snapshot: Snapshot, config: HostConfig, _ body: (String) throws -> R) throws -> R {
        let tree = Tree()
        try snapshot.add(to: tree)
        return try withMounted(try SimulatedHost(config: config, tree: tree)) { try body($0.root) }
    }

    @Test("snapshot, mount, snapshot again: every entry, mode, content and failure is the same", .requires(FileManager.default.fileExists(atPath: "/sys/devices/pci0000:00"), "needs a real PCI tree at /sys/devices/pci0000:00"))
    func roundTrip() throws {
        let original = try Snapshot.capture("/sys/devices/pci0000:00")
        #expect(original.entries.count > 10)
        try mounted(original, config: atSlot16) { dir in
            let again = try Snapshot.capture(dir + "/sys/devices/pci0000:00")
            let prefix = String(dir.dropFirst()) + "/"
            let normalised = again.entries.map { e -> Snapshot.Entry in
                var e = e
                e.path = String(e.path.dropFirst(prefix.count))
                return e
            }.filter { !$0.path.hasPrefix("sys/devices/pci0000:00/0000:00:10.0") }
            #expect(normalised.count == original.entries.count)
            // Sizes survive: each config keeps its real size (256 or 4096), as served by the mount.
            let configs = normalised.filter { $0.path.hasSuffix("/config") }
            #expect(!configs.isEmpty)
            for c in configs {
                var real = stat(), served = stat()
                #expect(stat("/" + c.path, &real) == 0 && stat(dir + "/" + c.path, &served) == 0)
                #expect(served.st_size == real.st_size, "\(c.path): served \(served.st_size), real \(real.st_size)")
            }
            for (a, b) in zip(original.entries, normalised) where a != b {
                Issue.record("differs: \(a) vs \(b)")
                break
            }
        }
    }

    @Test("lspci, through mdevsim exec, lists the simulated GPU among the recorded devices", .requires(isRoot && haveMdevsimBinary && FileManager.default.isExecutableFile(atPath: "/usr/bin/lspci"), "needs root, the mdevsim binary and lspci (apt-get install pciutils)"))
    func lspci() throws {
        let snapshot = try Snapshot.load(testdata + "/snapshots/host-pci.json")
        try mounted(snapshot, config: atSlot16) { dir in
            let r = try run(mdevsimBinary, ["exec", dir, "--", "lspci", "-n"])
            #expect(r.status == 0, "\(r)")
            #expect(r.out.contains("00:10.0 0300: 8086:591d (rev 04)"), "\(r.out)")
            #expect(r.out.contains("00:03.0 0200: 1af4:1041 (rev 01)"), "\(r.out)")
        }
    }

    @Test("a simulated parent at a recorded device's address is a clear start-up error")
    func conflict() throws {
        let snapshot = try Snapshot.load(testdata + "/snapshots/host-pci.json")
        let tree = Tree()
        try snapshot.add(to: tree)
        do {
            _ = try SimulatedHost(config: .builtIn, tree: tree)
            Issue.record("a recorded 0000:00:02.0 was shadowed")
        } catch {
            #expect(error.reason.contains("0000:00:02.0 is both in the recorded or mirrored tree"), "\(error)")
        }
    }

    @Test("snapshots that try to leave the tree are refused")
    func escapes() throws {
        for bad in ["../etc/passwd", "/etc/passwd", "sys/../../x"] {
            let path = makeTempDirectory("snap") + "/s.json"
            try #"{"format": "mdevsim-sysfs-snapshot/1", "source": "x", "entries": [{"path": "\#(bad)", "type": "file", "mode": "444", "content": "x"}]}"#
                .write(toFile: path, atomically: true, encoding: .utf8)
            #expect(throws: SnapshotError.self, "\(bad)") { try Snapshot.load(path) }
        }
    }

    @Test("a .umockdev recording imports: attributes, hex attributes and links land under sys/")
    func umockdev() throws {
        let text = #"""
        P: /devices/pci0000:00/0000:00:07.0
        E: SUBSYSTEM=pci
        A: vendor=0x8086\n
        A: mdev_supported_types/i915-GVTg_V5_4/available_instances=2\n
        H: config=86801D59
        L: driver=../../../bus/pci/drivers/i915
        """#
        let s = try Snapshot.importUmockdev(text)
        let (vendor, available, config, driver) = try mounted(s, config: atSlot16) { dir -> (String, String, [UInt8], String) in
            let dev = dir + "/sys/devices/pci0000:00/0000:00:07.0"
            return (try readText(dev + "/vendor"), try readText(dev + "/mdev_supported_types/i915-GVTg_V5_4/available_instances"),
                    try readBytes(dev + "/config"), try readLink(dev + "/driver"))
        }
        #expect(vendor == "0x8086\n")
        #expect(available == "2\n")
        #expect(config == [0x86, 0x80, 0x1d, 0x59])
        #expect(driver == "../../../bus/pci/drivers/i915")
        #expect(throws: SnapshotError.self) { try Snapshot.importUmockdev("P: /devices/x\nA: ../../etc=1\n") }
        #expect(throws: SnapshotError.self) { try Snapshot.importUmockdev("hello") }
    }
}
