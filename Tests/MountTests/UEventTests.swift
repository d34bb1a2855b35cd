import Foundation
import Testing

/// A network namespace made for one test (ip netns add), deleted afterwards.
struct TestNetns {
    let name: String
    var path: String { "/run/netns/" + name }
    init() throws {
        name = "mdevsim-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let r = try run("/usr/sbin/ip", ["netns", "add", name])
        guard r.status == 0 else { throw QEMUError("ip netns add \(name) failed: \(r)") }
    }
    func delete() { _ = try? run("/usr/sbin/ip", ["netns", "delete", name]) }
}

/// The real udevadm listening for udev's events (netlink group 2), in a namespace or the host's.
final class Monitor {
    let process = Process()
    let out: String
    init(netns: String?) throws {
        out = makeTempDirectory("monitor") + "/events"
        FileManager.default.createFile(atPath: out, contents: nil)
        let args = ["monitor", "--udev", "--property"]
        if let netns {
            process.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
            process.arguments = ["netns", "exec", netns, "/usr/bin/udevadm"] + args
        } else {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/udevadm")
            process.arguments = args
        }
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: out))
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        // udevadm prints its banner once it listens.
        _ = waitFor({ self.text.contains("UDEV - the event") }, seconds: 10)
    }
    var text: String { (try? String(contentsOfFile: out, encoding: .utf8)) ?? "" }
    func stop() {
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
    }
    deinit { stop() }
}

@Suite("device events in libudev's format, into the chosen network namespace only",
       .requires(canMount && isRoot && FileManager.default.isExecutableFile(atPath: "/usr/bin/udevadm") && FileManager.default.isExecutableFile(atPath: "/usr/sbin/ip"),
                 "needs /dev/fuse, root, udevadm (apt-get install udev) and ip (apt-get install iproute2)"),
       .serialized, .timeLimit(.minutes(1)))
struct UEventTests {
    @Test("udevadm monitor in the chosen namespace sees a vGPU's add, vfio-dev add, bind and their reverse; one on the host sees none")
    func lifecycle() throws {
        let ns = try TestNetns()
        defer { ns.delete() }
        try withMountedHost { h in
            try writeText(h.root + "/.mdevsim/uevent_netns", ns.path)
            #expect(try readText(h.root + "/.mdevsim/uevent_netns") == ns.path + "\n")
            let inside = try Monitor(netns: ns.name), host = try Monitor(netns: nil)
            defer { inside.stop(); host.stop() }
            try writeText(h.typeDir("i915-GVTg_V5_4") + "/create", uuidA)
            try writeText(h.device(uuidA) + "/remove", "1")
            try writeText(h.parent + "/uevent", "change")
            let path = "/devices/pci0000:00/0000:00:02.0"
            #expect(waitFor({ inside.text.contains("ACTION=change") }, seconds: 5), "\(inside.text)")
            let actions = inside.text.split(separator: "\n").filter { $0.hasPrefix("ACTION=") || $0.hasPrefix("DEVPATH=") }.map(String.init)
            #expect(actions == ["ACTION=add", "DEVPATH=\(path)/\(uuidA)", "ACTION=add", "DEVPATH=\(path)/\(uuidA)/vfio-dev/vfio0",
                                "ACTION=bind", "DEVPATH=\(path)/\(uuidA)", "ACTION=unbind", "DEVPATH=\(path)/\(uuidA)",
                                "ACTION=remove", "DEVPATH=\(path)/\(uuidA)/vfio-dev/vfio0", "ACTION=remove", "DEVPATH=\(path)/\(uuidA)",
                                "ACTION=change", "DEVPATH=\(path)"], "\(inside.text)")
            #expect(inside.text.contains("SUBSYSTEM=vfio-dev") && inside.text.contains("MAJOR=511") && inside.text.contains("DEVNAME=/dev/vfio/devices/vfio0"))
            #expect(inside.text.contains("DRIVER=\(h.bus.mdevDriver)"))
            #expect(inside.text.contains("PCI_ID=8086:591D"), "the parent's change carries its uevent variables")
            let seqnums = inside.text.split(separator: "\n").filter { $0.hasPrefix("SEQNUM=") }.compactMap { Int($0.dropFirst(7)) }
            #expect(seqnums == Array(1...7))
            usleep(300_000)
            #expect(!host.text.contains(uuidA), "a simulated device's events reached the host's namespace: \(host.text)")
        }
    }

    @Test("a surprise removal and an unregistered parent are announced; no namespace chosen, no events anywhere")
    func surpriseAndSilence() throws {
        let ns = try TestNetns()
        defer { ns.delete() }
        try withMountedHost { h in
            let inside = try Monitor(netns: ns.name)
            defer { inside.stop() }
            try writeText(h.typeDir("i915-GVTg_V5_4") + "/create", uuidA)       // before a namespace is chosen
            try writeText(h.root + "/.mdevsim/uevent_netns", ns.path)
            try writeText(h.root + "/.mdevsim/surprise_remove", "device \(uuidA)")
            try writeText(h.root + "/.mdevsim/surprise_remove", "parent 0000:00:02.0")
            #expect(waitFor({ inside.text.contains("MDEV_STATE=unregistered") }, seconds: 5), "\(inside.text)")
            #expect(!inside.text.contains("ACTION=add"), "the create came before the namespace was chosen")
            #expect(inside.text.contains("ACTION=remove\nDEVPATH=/devices/pci0000:00/0000:00:02.0/\(uuidA)\n"), "\(inside.text)")
            #expect(errnoOf { try writeText(h.root + "/.mdevsim/uevent_netns", "/nonexistent/ns") } == ENOENT)
        }
    }
}
