import Foundation
import MdevCore
import Testing

/// Unmodified programs that use the kernel's VFIO uAPI, run under `mdevsim exec --vfio`.
@Suite("VFIO emulation for real programs", .requires(canMount && isRoot && haveMdevsimBinary, "needs /dev/fuse, root and the mdevsim binary"),
       .timeLimit(.minutes(3)))
struct VFIOEmulationTests {
    @Test("RealVFIODevice reads features, state and stop-copy size through the emulated cdev")
    func realDeviceOnEmulatedCdev() throws {
        try withMountedHost(HostConfig.builtIn.withClock("stepped")) { h in
            try withVFIOEmulation(h) {
                try writeText(h.typeDir("i915-GVTg_V5_4") + "/create", uuidA)
                let node = try listDir(h.device(uuidA) + "/vfio-dev").first!
                let r = try run(mdevsimBinary, ["exec", h.root, "--vfio", "--", mdevsimBinary, "vfio-info", "--json", "/dev/vfio/devices/\(node)"])
                #expect(r.status == 0, "\(r)")
                let info = try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any]
                #expect(info?["features"] as? String == (try readText(h.vfio(uuidA) + "/migration/features")).trimmingCharacters(in: .newlines))
                #expect(info?["state"] as? String == "RUNNING")
                let size = try readText(h.vfio(uuidA) + "/migration/stop_copy_size").trimmingCharacters(in: .newlines)
                #expect((info?["stop_copy_size"] as? Int).map(String.init) == size)
            }
        }
    }

    @Test("a node that is not emulated is ENOENT with the reason, and the daemon keeps serving")
    func unknownNode() throws {
        try withMountedHost { h in
            try withVFIOEmulation(h) {
                let r = try run(mdevsimBinary, ["exec", h.root, "--vfio", "--", mdevsimBinary, "vfio-info", "/dev/vfio/devices/vfio7"])
                #expect(r.status != 0)
                #expect(r.err.contains("No such file or directory"), "\(r)")
                #expect(try readText(h.root + "/.mdevsim/pid").isEmpty == false)
            }
        }
    }

    @Test("exec --vfio without an emulation says why")
    func noEmulation() throws {
        try withMountedHost { h in
            let r = try run(mdevsimBinary, ["exec", h.root, "--vfio", "--", "/bin/true"])
            #expect(r.status != 0)
            #expect(r.err.contains("vfio_socket is empty"), "\(r)")
        }
    }
}

@Suite("unmodified QEMU on a simulated vGPU", .requires(canMount && isRoot && haveMdevsimBinary && haveQEMU, "needs /dev/fuse, root, the mdevsim binary and QEMU (apt-get install qemu-system-x86)"),
       .timeLimit(.minutes(5)))
struct QEMUTests {
    @Test("QEMU realizes vfio-pci on a vGPU: query-pci lists 8086:591d with BAR0 and BAR2")
    func realize() throws {
        try withMountedHost { h in
            try withVFIOEmulation(h) {
                try writeText(h.typeDir("i915-GVTg_V5_4") + "/create", uuidA)
                let qemu = try QEMU(root: h.root, arguments: ["-device", "vfio-pci,sysfsdev=/sys/bus/mdev/devices/\(uuidA),id=gpu"])
                defer { qemu.stop() }
                let buses = try qemu.command("query-pci") as? [[String: Any]] ?? []
                let gpu = (buses.first?["devices"] as? [[String: Any]] ?? []).first { ($0["qdev_id"] as? String) == "gpu" }
                let id = gpu?["id"] as? [String: Any]
                #expect(id?["vendor"] as? Int == 0x8086, "\(buses)")
                #expect(id?["device"] as? Int == 0x591d)
                #expect(id?["subsystem"] as? Int == 0x2212)
                let regions = gpu?["regions"] as? [[String: Any]] ?? []
                let bar0 = regions.first { $0["bar"] as? Int == 0 }, bar2 = regions.first { $0["bar"] as? Int == 2 }
                let bar0Size = try h.host.vfio.device(uuidA)!.withHardware { $0.bar0Size }
                let apertureSize = try h.host.vfio.device(uuidA)!.withHardware { $0.apertureSize }
                #expect(bar0?["size"] as? Int == bar0Size, "\(regions)")
                #expect(bar2?["size"] as? Int == apertureSize)
                #expect(bar2?["prefetch"] as? Bool == true)
            }
        }
    }
}
