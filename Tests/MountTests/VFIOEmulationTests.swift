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

    /// Runs a Python VMM client (argv: the UUID and IOMMU group of a fresh V5_4) under exec --vfio.
    func runClient(_ script: String) throws -> Ran {
        try withMountedHost { h in
            try withVFIOEmulation(h) {
                try writeText(h.typeDir("i915-GVTg_V5_4") + "/create", uuidA)
                let group = URL(fileURLWithPath: try readLink(h.device(uuidA) + "/iommu_group")).lastPathComponent
                return try run(mdevsimBinary, ["exec", h.root, "--vfio", "--", "/usr/bin/python3", "-c", script, uuidA, group], timeout: 60)
            }
        }
    }

    /// A VMM's interrupt path in a few lines of Python: INTx on an eventfd (VFIO_DEVICE_SET_IRQS),
    /// then for each interrupt: Interrupt Status in config space, GT_IIR cleared through BAR0.
    static let irqClient = """
    import fcntl, os, select, struct, sys
    uuid, group = sys.argv[1], sys.argv[2]
    c = os.open('/dev/vfio/vfio', os.O_RDWR)
    g = os.open('/dev/vfio/' + group, os.O_RDWR)
    fcntl.ioctl(g, 0x3b68, struct.pack('i', c))
    fcntl.ioctl(c, 0x3b66, 3)
    d = fcntl.ioctl(g, 0x3b6a, bytearray(uuid.encode() + b'\\0'), True)
    efd = os.eventfd(0)
    fcntl.ioctl(d, 0x3b6e, bytearray(struct.pack('IIIIIi', 24, 4 | 32, 0, 0, 1, efd)), True)
    got = 0
    for i in range(5):
        r, _, _ = select.select([efd], [], [], 5)
        if not r: break
        got += 1
        os.eventfd_read(efd)
        status = struct.unpack('<H', os.pread(d, 2, (7 << 40) + 6))[0]
        iir = struct.unpack('<I', os.pread(d, 4, 0x44308))[0]
        print('interrupt', got, 'status_int', (status >> 3) & 1, 'iir', hex(iir), flush=True)
        os.pwrite(d, struct.pack('<I', 0xffffffff), 0x44308)
    status = struct.unpack('<H', os.pread(d, 2, (7 << 40) + 6))[0]
    print('done', got)
    """

    @Test("the model's interrupts reach a VMM's INTx eventfd; config status shows the line, clearing GT_IIR lets the next one through")
    func interrupts() throws {
        let r = try runClient(Self.irqClient)
        #expect(r.status == 0, "\(r)")
        #expect(r.out.contains("done 5"), "\(r)")
        #expect(r.out.split(separator: "\n").filter { $0.hasPrefix("interrupt") }.allSatisfy { $0.contains("status_int 1") && !$0.hasSuffix("iir 0x0") }, "\(r)")
    }

    /// A VMM holding the device while an orchestrator removes it: the remove's write blocks
    /// until the device fd is closed, as vfio_unregister_group_dev blocks it.
    static let holdClient = """
    import fcntl, os, struct, sys, threading, time
    uuid, group = sys.argv[1], sys.argv[2]
    c = os.open('/dev/vfio/vfio', os.O_RDWR)
    g = os.open('/dev/vfio/' + group, os.O_RDWR)
    fcntl.ioctl(g, 0x3b68, struct.pack('i', c)); fcntl.ioctl(c, 0x3b66, 3)
    d = fcntl.ioctl(g, 0x3b6a, bytearray(uuid.encode() + b'\\0'), True)
    t0 = time.time(); done = []
    def remove():
        with open('/sys/bus/mdev/devices/%s/remove' % uuid, 'w') as f: f.write('1')
        done.append(time.time() - t0)
    th = threading.Thread(target=remove); th.start()
    time.sleep(0.6)
    print('waiting', not done, os.path.exists('/sys/bus/mdev/devices/' + uuid))
    os.close(d)
    th.join(5)
    print('removed', bool(done) and done[0] >= 0.6, not os.path.exists('/sys/bus/mdev/devices/' + uuid))
    """

    @Test("remove of a vGPU a VMM holds open blocks until the device fd is closed, then completes")
    func removeWaitsForRelease() throws {
        let r = try runClient(Self.holdClient)
        #expect(r.status == 0, "\(r)")
        #expect(r.out.contains("waiting True True"), "\(r)")
        #expect(r.out.contains("removed True True"), "\(r)")
    }

    @Test("the real-device backend end to end on emulated kernels: mount --vfio-device, record, migrate through the C ioctl layer")
    func realBackendEndToEnd() throws {
        try withMountedHost(HostConfig.builtIn.withClock("stepped")) { h in
            try withVFIOEmulation(h) {
                try writeText(h.typeDir("i915-GVTg_V5_4") + "/create", uuidA)
                try writeText(h.typeDir("i915-GVTg_V5_4") + "/create", uuidB)
                try writeText(h.vfio(uuidA) + "/workload/step", "40")
                let a = try listDir(h.device(uuidA) + "/vfio-dev").first!, b = try listDir(h.device(uuidB) + "/vfio-dev").first!
                let dir = makeTempDirectory("real")
                defer { try? FileManager.default.removeItem(atPath: dir) }
                // Inside one exec: a second mdevsim serves both emulated cdevs as real VFIO devices
                // (RealVFIODevice, CVFIOIoctl), and the toolkit runs against its files.
                let script = """
                set -e
                M=\(dir)/mnt
                \(mdevsimBinary) mount --daemon $M --no-vfio-emulation --vfio-device /dev/vfio/devices/\(a):src --vfio-device /dev/vfio/devices/\(b):dst >/dev/null
                trap '\(mdevsimBinary) unmount $M' EXIT
                cat $M/vfio/src/info
                \(mdevsimBinary) record $M/vfio/src -o \(dir)/src.blob
                \(mdevsimBinary) verify \(dir)/src.blob
                \(mdevsimBinary) migrate $M/vfio/src $M/vfio/dst --json
                """
                let r = try run(mdevsimBinary, ["exec", h.root, "--vfio", "--", "/bin/bash", "-c", script], timeout: 120)
                #expect(r.status == 0, "\(r)")
                #expect(r.out.contains("\"backend\": \"vfio-kernel\""), "\(r)")
                #expect(r.out.contains("sound"), "\(r)")
                // The simulated devices behind the emulated kernels: the destination holds the source's state.
                #expect(try readText(h.vfio(uuidB) + "/state_digest") == (try readText(h.vfio(uuidA) + "/state_digest")))
                #expect(try readText(h.vfio(uuidB) + "/workload/ticks") == "40\n")
                #expect(try readText(h.vfio(uuidB) + "/migration/state") == "RUNNING\n")
            }
        }
    }

    /// Container and fd semantics a VMM relies on, checked against what the kernel answers.
    static let containerClient = """
    import errno, fcntl, mmap, os, struct, sys
    uuid, group = sys.argv[1], sys.argv[2]
    def err(f):
        try: f(); return 0
        except OSError as e: return e.errno
    c = os.open('/dev/vfio/vfio', os.O_RDWR)
    print('api', fcntl.ioctl(c, 0x3b64, 0), 'type1v2', fcntl.ioctl(c, 0x3b65, 3), 'noiommu', fcntl.ioctl(c, 0x3b65, 8))
    print('set_iommu_without_group', err(lambda: fcntl.ioctl(c, 0x3b66, 3)))
    g = os.open('/dev/vfio/' + group, os.O_RDWR)
    print('second_group_open', err(lambda: os.open('/dev/vfio/' + group, os.O_RDWR)))
    st = bytearray(struct.pack('II', 8, 0)); fcntl.ioctl(g, 0x3b67, st, True); print('status', struct.unpack('II', st)[1])
    print('device_before_container', err(lambda: fcntl.ioctl(g, 0x3b6a, bytearray(uuid.encode() + b'\\0'), True)))
    fcntl.ioctl(g, 0x3b68, struct.pack('i', c)); fcntl.ioctl(c, 0x3b66, 3)
    st = bytearray(struct.pack('II', 8, 0)); fcntl.ioctl(g, 0x3b67, st, True); print('status', struct.unpack('II', st)[1])
    buf = mmap.mmap(-1, 1 << 20)
    va = struct.unpack('Q', struct.pack('P', 0))[0]
    import ctypes; va = ctypes.addressof(ctypes.c_char.from_buffer(buf))
    def dma(iova, size): return err(lambda: fcntl.ioctl(c, 0x3b71, bytearray(struct.pack('IIQQQ', 32, 3, va, iova, size)), True))
    def unmap(iova, size): return err(lambda: fcntl.ioctl(c, 0x3b72, bytearray(struct.pack('IIQQ', 24, 0, iova, size)), True))
    print('map', dma(0x100000, 0x80000), 'overlap', dma(0x140000, 0x80000), 'unaligned', dma(0x300001, 0x1000), 'split', unmap(0x100000, 0x1000), 'unmap', unmap(0x100000, 0x80000))
    d = fcntl.ioctl(g, 0x3b6a, bytearray(uuid.encode() + b'\\0'), True)
    print('device_fd_in_range', 900 <= d < 1000)
    e = os.dup(d); print('dup_in_range', 900 <= e < 1000, 'dup_works', len(os.pread(e, 4, 7 << 40)))
    print('dup2_outside', err(lambda: os.dup2(d, 5)))
    f = fcntl.fcntl(d, fcntl.F_DUPFD, 950); print('fdupfd', 950 <= f < 1000, len(os.pread(f, 2, 7 << 40)))
    os.close(e); print('closed_copy_gone', err(lambda: os.pread(e, 4, 7 << 40)))
    print('bad_region', err(lambda: os.pread(d, 4, 20 << 40)), 'mmap_bar0', err(lambda: mmap.mmap(d, 4096, offset=0)))
    ri = bytearray(struct.pack('IIIIQQ', 256, 0, 2, 0, 0, 0) + bytes(224)); fcntl.ioctl(d, 0x3b6c, ri, True)
    _, flags, _, capoff, size, _ = struct.unpack_from('IIIIQQ', ri)
    cid, _, _ = struct.unpack_from('HHI', ri, capoff); nr, _ = struct.unpack_from('II', ri, capoff + 8); aoff, asz = struct.unpack_from('QQ', ri, capoff + 16)
    print('bar2_info', size, flags & 8 != 0, cid, nr, aoff, asz)
    m = mmap.mmap(d, 4096, offset=(2 << 40) + aoff); m[0:4] = b'ABCD'; print('bar2_mmap', m[0:4] == b'ABCD', os.pread(d, 4, (2 << 40) + aoff))
    print('bar2_outside_slice', err(lambda: mmap.mmap(d, 4096, offset=2 << 40)))
    print('edid', struct.unpack('I', os.pread(d, 4, 10 << 40))[0], os.pread(d, 8, (10 << 40) + 0x800).hex())
    """

    @Test("container, group and fd semantics: the kernel's errnos, dup copies tracked in the range, copies outside refused")
    func containerSemantics() throws {
        let r = try runClient(Self.containerClient)
        #expect(r.status == 0, "\(r)")
        let lines = r.out.split(separator: "\n").map(String.init)
        #expect(lines.contains("api 0 type1v2 1 noiommu 0"), "\(r)")
        #expect(lines.contains("set_iommu_without_group \(EINVAL)"))
        #expect(lines.contains("second_group_open \(EBUSY)"))
        #expect(lines.contains("status 1") && lines.contains("status 3"))           // VIABLE, then | CONTAINER_SET
        #expect(lines.contains("device_before_container \(EINVAL)"))
        #expect(lines.contains("map 0 overlap \(EEXIST) unaligned \(EINVAL) split \(EINVAL) unmap 0"), "\(r)")
        #expect(lines.contains("device_fd_in_range True"))
        #expect(lines.contains("dup_in_range True dup_works 4"))
        #expect(lines.contains("dup2_outside \(EBADF)"))
        #expect(lines.contains("fdupfd True 2"))
        #expect(lines.contains("closed_copy_gone \(EBADF)"))
        #expect(lines.contains("bad_region \(EINVAL) mmap_bar0 \(EINVAL)"), "\(r)")
        // BAR2 is the host's whole aperture; the vGPU's slice (the first V5_4 sits above the host's 128 MB) is its one mappable area.
        #expect(lines.contains("bar2_info \(1 << 30) True 1 1 \(128 << 20) \(128 << 20)"), "\(r)")
        #expect(lines.contains("bar2_mmap True b'ABCD'"), "\(r)")
        #expect(lines.contains("bar2_outside_slice \(EINVAL)"), "\(r)")
        // The EDID region reports 128 bytes, as kvmgt, yet its block at 0x800 is reachable.
        #expect(lines.contains("edid 2048 00ffffffffffff00"), "\(r)")
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

/// One test at a time: each runs one or two QEMUs (a guest under TCG) on 2 cores. scripts/test.sh
/// runs this suite after the others, on its own.
@Suite("unmodified QEMU on a simulated vGPU", .requires(canMount && isRoot && haveMdevsimBinary && haveQEMU, "needs /dev/fuse, root, the mdevsim binary and QEMU (apt-get install qemu-system-x86)"),
       .serialized, .timeLimit(.minutes(5)))
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

    /// The built-in host with every type on the v1 migration protocol (QEMU 7.2 speaks only v1), on the stepped clock
    /// so two devices' states can be compared byte for byte.
    static var v1Host: HostConfig {
        var parent = ParentConfig(address: "0000:00:02.0")
        parent.types = parent.types.map { var t = $0; t.migrationProtocol = "v1"; return t }
        return HostConfig(parents: [parent]).withClock("stepped")
    }

    static let planePos = 0x7018c

    func bar0(_ h: MountedHost, _ uuid: String, write value: UInt32? = nil) throws -> UInt32 {
        let fd = try openFile(h.vfio(uuid) + "/regions/bar0")
        defer { close(fd) }
        var v = value ?? 0
        if value != nil { #expect(pwrite(fd, &v, 4, off_t(Self.planePos)) == 4) }
        #expect(pread(fd, &v, 4, off_t(Self.planePos)) == 4)
        return v
    }

    func gpu(_ uuid: String, incoming port: Int? = nil) -> [String] {
        ["-device", "vfio-pci,sysfsdev=/sys/bus/mdev/devices/\(uuid),x-enable-migration=on,id=gpu"] + (port.map { ["-incoming", "tcp:127.0.0.1:\($0)"] } ?? [])
    }

    /// Two V5_4s (uuidA, uuidB) on the v1 host, a running QEMU on each, the second waiting on
    /// `-incoming tcp:127.0.0.1:PORT`, both with the return path.
    func withMigrationPair(faults: String? = nil, _ body: (MountedHost, QEMU, QEMU, Int) throws -> Void) throws {
        try withMountedHost(Self.v1Host) { h in
            try withVFIOEmulation(h) {
                try writeText(h.typeDir("i915-GVTg_V5_4") + "/create", uuidA)
                try writeText(h.typeDir("i915-GVTg_V5_4") + "/create", uuidB)
                if let faults { try writeText(h.root + "/.mdevsim/faults", faults) }
                let port = freePort()
                let src = try QEMU(root: h.root, arguments: gpu(uuidA), paused: false)
                defer { src.stop() }
                let dst = try QEMU(root: h.root, arguments: gpu(uuidB, incoming: port), paused: false)
                defer { dst.stop() }
                try src.returnPath()
                try dst.returnPath()
                try body(h, src, dst, port)
            }
        }
    }

    @Test("QEMU's own v1 migration moves a running vGPU to a second QEMU: completed, downtime reported, the same device state")
    func liveMigration() throws {
        try withMigrationPair { h, src, dst, port in
            // After QEMU's realize and system reset (VFIO_DEVICE_RESET), as a guest would.
            try writeText(h.vfio(uuidA) + "/workload/step", "50")
            #expect(try bar0(h, uuidA, write: 0x0064_0032) == 0x0064_0032)
            let r = try src.migrate(to: "tcp:127.0.0.1:\(port)")
            #expect(r["status"] as? String == "completed", "\(r)\n\(src.output)\n\(dst.output)")
            let downtime = r["downtime"] as? Int
            #expect(downtime != nil)
            print("QEMU migration of a V5_4 (v1): total \(r["total-time"] ?? "?") ms, downtime \(downtime ?? -1) ms")
            #expect(waitFor({ dst.status == "running" }, seconds: 10))
            #expect(try bar0(h, uuidB) == 0x0064_0032)
            #expect(try readText(h.vfio(uuidA) + "/workload/ticks") == "50\n")
            #expect(try readText(h.vfio(uuidB) + "/workload/ticks") == "50\n")
            // QEMU restores config space after loading the device (vfio_pci_load_config): the
            // command register and BARs it writes are the source's, so nothing differs.
            #expect(try readText(h.vfio(uuidA) + "/state_digest") == (try readText(h.vfio(uuidB) + "/state_digest")))
            #expect(try readText(h.vfio(uuidB) + "/migration/error").isEmpty)
        }
    }

    @Test("a destination that refuses the resume fails QEMU's migration, and the source guest keeps running")
    func refusedResume() throws {
        try withMigrationPair(faults: "device=\(uuidB) resume=reject once=true") { h, src, dst, port in
            let before = try readText(h.vfio(uuidA) + "/state_digest")
            let r = try src.migrate(to: "tcp:127.0.0.1:\(port)")
            #expect(r["status"] as? String == "failed", "\(r)")
            #expect(waitFor({ src.status == "running" }, seconds: 10), "the source must run on after a failed migration")
            #expect(try readText(h.vfio(uuidA) + "/workload/running") == "1\n")
            #expect(try readText(h.vfio(uuidA) + "/state_digest") == before)
            #expect(try readText(h.vfio(uuidB) + "/migration/error").contains("refused"))
            #expect(dst.output.contains("vfio") || !dst.process.isRunning, "\(dst.output)")
        }
    }

    @Test("a QEMU migration file: extract walks its sections to the vGPU, the payload verifies, replay gives the source's state")
    func migrationFile() throws {
        try withMountedHost(Self.v1Host) { h in
            try withVFIOEmulation(h) {
                try writeText(h.typeDir("i915-GVTg_V5_4") + "/create", uuidA)
                try writeText(h.typeDir("i915-GVTg_V5_4") + "/create", uuidB)
                let src = try QEMU(root: h.root, arguments: gpu(uuidA), paused: false)
                defer { src.stop() }
                try writeText(h.vfio(uuidA) + "/workload/step", "30")
                _ = try bar0(h, uuidA, write: 0x0012_0034)
                let dir = makeTempDirectory("mig")
                defer { try? FileManager.default.removeItem(atPath: dir) }
                let r = try src.migrate(to: "exec:cat > \(dir)/vm.mig")
                #expect(r["status"] as? String == "completed", "\(r)")
                let json = try run(mdevsimBinary, ["extract", dir + "/vm.mig", "--json"])
                #expect(json.status == 0, "\(json)")
                let listing = try JSONSerialization.jsonObject(with: Data(json.out.utf8)) as? [String: Any]
                let devices = listing?["devices"] as? [[String: Any]] ?? []
                #expect(devices.count == 1 && devices.first?["slot"] as? String == "0000:00:01.0", "\(json.out.prefix(400))")
                #expect((listing?["sections"] as? [[String: Any]] ?? []).contains { $0["name"] as? String == "ram" })
                let ex = try run(mdevsimBinary, ["extract", dir + "/vm.mig", "-o", dir + "/gpu.blob"])
                #expect(ex.status == 0, "\(ex)")
                let verify = try run(mdevsimBinary, ["verify", dir + "/gpu.blob"])
                #expect(verify.status == 0, "\(verify)")
                let inspect = try run(mdevsimBinary, ["inspect", dir + "/vm.mig"])
                #expect(inspect.status == 0 && inspect.out.contains("VFIO device 0000:00:01.0") && inspect.out.contains("8086:591d"), "\(inspect)")
                let replay = try run(mdevsimBinary, ["replay", dir + "/vm.mig", h.vfio(uuidB)])
                #expect(replay.status == 0, "\(replay)")
                #expect(replay.out == (try readText(h.vfio(uuidA) + "/state_digest")), "\(replay)")
                #expect(try bar0(h, uuidB) == 0x0012_0034)
            }
        }
    }

    /// What the guest does: finds the GPU, writes and reads a BAR0 register, then takes the
    /// model's interrupts through uio_pci_generic, whose handler masks INTx (command bit 10);
    /// as the UIO howto's user-space driver does, each time it clears the device's interrupt
    /// (GT_IIR, RW1C) and enables INTx again in config space.
    static let guestScript = """
    /bin/busybox mount -t proc proc /proc
    /bin/busybox mount -t sysfs sysfs /sys
    /bin/busybox mount -t devtmpfs dev /dev
    /bin/busybox --install -s /bin
    export PATH=/bin
    for d in /sys/bus/pci/devices/*; do
        [ "$(cat $d/vendor)" = 0x8086 ] && [ "$(cat $d/device)" = 0x591d ] && GPU=$d
    done
    echo "MDEVSIM-GPU $(basename $GPU) $(cat $GPU/vendor):$(cat $GPU/device) $(cat $GPU/subsystem_vendor):$(cat $GPU/subsystem_device) $(cat $GPU/class)"
    echo 1 > $GPU/enable
    BAR0=$(head -n 1 $GPU/resource | cut -d ' ' -f 1)
    devmem $((BAR0 + 0x7018c)) 32 0x00abcdef
    echo "MDEVSIM-BAR0 $(devmem $((BAR0 + 0x7018c)) 32)"
    insmod /lib/modules/uio.ko
    insmod /lib/modules/uio_pci_generic.ko
    echo "8086 591d" > /sys/bus/pci/drivers/uio_pci_generic/new_id
    sleep 1
    irqs() { awk '/uio_pci_generic/ { print $2 }' /proc/interrupts; }
    BEFORE=$(irqs)
    for i in 1 2 3 4 5; do
        devmem $((BAR0 + 0x44308)) 32 0xffffffff
        devmem $((BAR0 + 0x44408)) 32 0xffffffff
        HI=$(( $(od -An -tu1 -j5 -N1 $GPU/config) & ~4 ))
        awk -v v=$HI 'BEGIN { printf "%c", v }' | dd of=$GPU/config bs=1 seek=5 count=1 conv=notrunc 2>/dev/null
        sleep 0.3
    done
    echo "MDEVSIM-IRQ ${BEFORE:-none} $(irqs) $(od -An -tx1 -j4 -N4 $GPU/config)"
    grep uio /proc/interrupts
    echo MDEVSIM-DONE
    while true; do sleep 60; done
    """

    @Test("a Linux guest boots with the vGPU: it sees the GPU's ids, a BAR0 value it writes shows on the host, the model's interrupts reach it")
    func guest() throws {
        let guest = try Guest(script: Self.guestScript)
        try withMountedHost { h in
            try withVFIOEmulation(h) {
                try writeText(h.typeDir("i915-GVTg_V5_4") + "/create", uuidA)
                let qemu = try QEMU(root: h.root, arguments: guest.arguments + ["-device", "vfio-pci,sysfsdev=/sys/bus/mdev/devices/\(uuidA),id=gpu"], paused: false, accel: guestAccel)
                defer { qemu.stop() }
                let booted = waitFor({ guest.output.contains("MDEVSIM-DONE") || !qemu.process.isRunning }, seconds: 240)
                #expect(booted, "the guest did not finish: \(guest.output.suffix(3000))\n\(qemu.output)")
                let gpu = guest.line("MDEVSIM-GPU") ?? []
                #expect(gpu.count == 4 && gpu[1] == "0x8086:0x591d" && gpu[2] == "0x8086:0x2212" && gpu[3] == "0x030000", "\(gpu)\n\(guest.output.suffix(2000))")
                #expect(guest.line("MDEVSIM-BAR0") == ["0x00ABCDEF"], "\(guest.output.suffix(2000))")
                #expect(try bar0(h, uuidA) == 0x00ab_cdef)
                let irq = guest.line("MDEVSIM-IRQ") ?? []
                let before = irq.first.flatMap { Int($0) } ?? -1, after = irq.count > 1 ? Int(irq[1]) ?? -1 : -1
                #expect(before >= 0 && after >= before + 4, "interrupt count in the guest's /proc/interrupts: \(irq)\n\(guest.output.suffix(2000))")
            }
        }
    }
}

