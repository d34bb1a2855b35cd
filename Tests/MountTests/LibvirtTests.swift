import Foundation
import Testing

let haveLibvirt = !hiddenPrerequisites.contains("libvirt") && FileManager.default.isExecutableFile(atPath: "/usr/sbin/libvirtd")
    && FileManager.default.isExecutableFile(atPath: "/usr/bin/virsh") && FileManager.default.isExecutableFile(atPath: "/usr/bin/virt-xml-validate")

/// An unmodified libvirtd (the nodedev driver) on a mount, isolated by `mdevsim exec --libvirt`,
/// driven with the real virsh; stopped, with its namespace and state, when the test ends.
final class Libvirt {
    let root: String
    let daemon = Process()
    let log: String

    init(root: String) throws {
        self.root = root
        log = makeTempDirectory("libvirtd") + "/libvirtd.log"
        FileManager.default.createFile(atPath: log, contents: nil)
        daemon.executableURL = URL(fileURLWithPath: mdevsimBinary)
        daemon.arguments = ["exec", root, "--libvirt", "--", "/usr/sbin/libvirtd"]
        let out = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        daemon.standardOutput = out
        daemon.standardError = out
        try daemon.run()
        guard waitFor({ (try? self.virsh("nodedev-list"))?.status == 0 || !self.daemon.isRunning }, seconds: 30), daemon.isRunning else {
            throw QEMUError("libvirtd did not start: \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
        }
    }

    func virsh(_ args: String...) throws -> Ran { try virsh(args) }
    func virsh(_ args: [String]) throws -> Ran {
        try run(mdevsimBinary, ["exec", root, "--libvirt", "--", "/usr/bin/virsh", "-c", "nodedev:///system"] + args, timeout: 90)
    }

    /// `virsh nodedev-event --loop` in the background, its output in a file.
    func events() throws -> (Process, String) {
        // The caller stops it with SIGKILL: virsh nodedev-event --loop ignores SIGTERM.
        let p = Process(), out = makeTempDirectory("events") + "/events"
        FileManager.default.createFile(atPath: out, contents: nil)
        p.executableURL = URL(fileURLWithPath: mdevsimBinary)
        // Line-buffered: virsh's stdout to a file would hold the events back.
        p.arguments = ["exec", root, "--libvirt", "--", "/usr/bin/stdbuf", "-oL", "/usr/bin/virsh", "-c", "nodedev:///system", "nodedev-event", "--loop", "--event", "lifecycle"]
        p.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: out))
        try p.run()
        usleep(500_000)
        return (p, out)
    }

    func stop() {
        if daemon.isRunning { daemon.terminate() }
        // libvirtd's shutdown can wait on its udev thread: a grace period, then SIGKILL.
        if !waitFor({ !self.daemon.isRunning }, seconds: 5) { kill(daemon.processIdentifier, SIGKILL) }
        daemon.waitUntilExit()
        // The namespace and the per-mount state `exec --libvirt` made for this mount.
        let hash = root.utf8.reduce(0xcbf2_9ce4_8422_2325 as UInt64) { ($0 ^ UInt64($1)) &* 0x0000_0100_0000_01b3 }
        let name = (root.split(separator: "/").last.map(String.init) ?? "root") + "-" + String(hash, radix: 16)
        _ = try? run("/usr/sbin/ip", ["netns", "delete", "mdevsim-" + name])
        try? FileManager.default.removeItem(atPath: "/run/mdevsim/exec/" + name)
    }
}

@Suite("unmodified libvirt's node devices on a mount", .requires(canMount && isRoot && haveMdevsimBinary && haveMdevctl && haveLibvirt,
       "needs /dev/fuse, root, the mdevsim binary, mdevctl and libvirt (apt-get install libvirt-daemon libvirt-clients)"),
       .serialized, .timeLimit(.minutes(3)))
struct LibvirtTests {
    func withLibvirt(_ body: (MountedHost, Libvirt) throws -> Void) throws {
        try withMountedHost { h in
            let l = try Libvirt(root: h.root)
            defer { l.stop() }
            try body(h, l)
        }
    }

    @Test("nodedev-list and nodedev-dumpxml show the parent's types with live availableInstances; the XML validates against libvirt's schema")
    func types() throws {
        try withLibvirt { h, virsh in
            let list = try virsh.virsh("nodedev-list", "--cap", "mdev_types")
            #expect(list.status == 0 && list.out.contains("pci_0000_00_02_0"), "\(list)")
            try writeText(h.typeDir("i915-GVTg_V5_4") + "/create", uuidA)
            // An iGPU has no proximity domain (numa_node -1, no <numa>; the config's numa_node gives
            // one); as on a real host, root may set one, and libvirt reads it as its NUMA fixtures show.
            #expect(try readText(h.parent + "/numa_node") == "-1\n")
            try writeText(h.parent + "/numa_node", "0")
            try writeText(h.parent + "/uevent", "change")          // what udevadm trigger does; libvirt reads the device again
            usleep(300_000)
            let xml = try virsh.virsh("nodedev-dumpxml", "pci_0000_00_02_0")
            #expect(xml.status == 0, "\(xml)")
            #expect(xml.out.contains("<type id='i915-GVTg_V5_4'>") && xml.out.contains("<deviceAPI>vfio-pci</deviceAPI>"), "\(xml.out)")
            #expect(xml.out.contains("<availableInstances>\(try h.available("i915-GVTg_V5_4"))</availableInstances>"), "\(xml.out)")
            #expect(xml.out.contains("<product id='0x591d'>") && xml.out.contains("<pci-express"), "\(xml.out)")
            #expect(xml.out.contains("<numa node='0'/>"), "\(xml.out)")
            let file = makeTempDirectory("xml") + "/gpu.xml"
            try xml.out.write(toFile: file, atomically: true, encoding: .utf8)
            let valid = try run("/usr/bin/virt-xml-validate", [file, "nodedev"])
            #expect(valid.status == 0, "\(valid)")
            // The host itself, from sys/devices/virtual/dmi/id.
            let computer = try virsh.virsh("nodedev-dumpxml", "computer")
            #expect(computer.out.contains("<vendor>Dell Inc.</vendor>") && computer.out.contains("<product>Precision 3520</product>"), "\(computer)")
        }
    }

    @Test("a vGPU made or removed through sysfs is in nodedev-list within 1 s; a surprise removal is a Deleted event")
    func sysfsLifecycle() throws {
        try withLibvirt { h, virsh in
            let (events, out) = try virsh.events()
            defer { kill(events.processIdentifier, SIGKILL); events.waitUntilExit() }
            let name = "mdev_" + uuidA.replacingOccurrences(of: "-", with: "_") + "_0000_00_02_0"
            let t0 = Date()
            try writeText(h.typeDir("i915-GVTg_V5_4") + "/create", uuidA)
            #expect(waitFor({ (try? virsh.virsh("nodedev-list", "--cap", "mdev"))?.out.contains(name) == true }, seconds: 1), "not listed within 1 s")
            print("libvirt listed a vGPU created through sysfs after \(Int(Date().timeIntervalSince(t0) * 1000)) ms")
            try writeText(h.device(uuidA) + "/remove", "1")
            #expect(waitFor({ (try? virsh.virsh("nodedev-list", "--cap", "mdev"))?.out.contains(name) == false }, seconds: 1), "still listed 1 s after removal")
            try writeText(h.typeDir("i915-GVTg_V5_4") + "/create", uuidB)
            let other = "mdev_" + uuidB.replacingOccurrences(of: "-", with: "_") + "_0000_00_02_0"
            #expect(waitFor({ (try? virsh.virsh("nodedev-list", "--cap", "mdev"))?.out.contains(other) == true }, seconds: 1))
            try writeText(h.root + "/.mdevsim/surprise_remove", "device \(uuidB)")
            let text = { (try? String(contentsOfFile: out, encoding: .utf8)) ?? "" }
            #expect(waitFor({ text().contains("\(other): Deleted") }, seconds: 3), "\(text())")
            #expect(text().contains("event 'lifecycle' for node device \(name): Created"), "\(text())")
            #expect(text().contains("event 'lifecycle' for node device \(other): Deleted"), "\(text())")
        }
    }

    @Test("nodedev-create, -destroy, -define, -start, -autostart and -undefine of an mdev work, each seen by nodedev-event")
    func managed() throws {
        try withLibvirt { h, virsh in
            let (events, out) = try virsh.events()
            defer { kill(events.processIdentifier, SIGKILL); events.waitUntilExit() }
            let xml = makeTempDirectory("mdev") + "/mdev.xml"
            try """
            <device>
              <parent>pci_0000_00_02_0</parent>
              <capability type='mdev'>
                <type id='i915-GVTg_V5_4'/>
                <uuid>\(uuidA)</uuid>
              </capability>
            </device>
            """.write(toFile: xml, atomically: true, encoding: .utf8)
            let name = "mdev_" + uuidA.replacingOccurrences(of: "-", with: "_") + "_0000_00_02_0"
            var t0 = Date()
            let create = try virsh.virsh("nodedev-create", xml)
            let createMS = Int(Date().timeIntervalSince(t0) * 1000)
            #expect(create.status == 0, "\(create)")
            print("virsh nodedev-create took \(createMS) ms")
            #expect(exists(h.device(uuidA)))
            #expect(try virsh.virsh("nodedev-destroy", name).status == 0)
            #expect(waitFor({ !exists(h.device(uuidA)) }, seconds: 2))
            #expect(try virsh.virsh("nodedev-define", xml).status == 0)
            t0 = Date()
            let start = try virsh.virsh("nodedev-start", name)
            #expect(start.status == 0, "\(start)")
            print("virsh nodedev-start took \(Int(Date().timeIntervalSince(t0) * 1000)) ms")
            #expect(exists(h.device(uuidA)))
            #expect(try virsh.virsh("nodedev-autostart", name).status == 0)
            let info = try virsh.virsh("nodedev-info", name)
            #expect(info.out.contains("Autostart:      yes") && info.out.contains("Active:         yes"), "\(info)")
            #expect(try virsh.virsh("nodedev-destroy", name).status == 0)
            #expect(try virsh.virsh("nodedev-undefine", name).status == 0)
            let text = { (try? String(contentsOfFile: out, encoding: .utf8)) ?? "" }
            #expect(waitFor({ text().contains("Undefined") }, seconds: 5), "\(text())")
            for event in ["Created", "Deleted", "Defined", "Undefined"] {
                #expect(text().contains("node device \(name): \(event)"), "\(event) missing: \(text())")
            }
        }
    }
}
