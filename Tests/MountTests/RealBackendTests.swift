import Foundation
import FuseBridge
import GPUModel
import Migration
import RealDevice
import Simulator
import StateStream
import Synchronization
import Testing

/// A stand-in for the kernel's VFIO driver, since no VFIO hardware exists on
/// these machines: it answers the v2 ioctls and data_fd reads and writes the
/// way the kernel does (one ioctl walks every arc; a new data_fd on entering a
/// saving or resuming state; ENOMSG when pre-copy has nothing for now), with a
/// simulated vGPU as the hardware. `RealVFIODevice` runs on it unchanged.
final class SimulatedKernel: VFIOKernel {
    struct DataFD { let device: MigrationDevice; let session: UInt64; var offset = 0 }
    struct Table {
        var deviceFDs: [Int32: MigrationDevice] = [:]
        var dataFDs: [Int32: DataFD] = [:]
        var next: Int32 = 1000
        var closed = 0
        mutating func allocate() -> Int32 { next += 1; return next }
    }
    let devices: [String: MigrationDevice]
    let table = Mutex(Table())
    /// Makes the next SET MIG_DEVICE_STATE to this state fail with this errno.
    let failSet = Mutex<(MigrationState, Int32)?>(nil)
    /// What the driver would have said in dmesg about each refusal.
    let dmesg = Mutex<[String]>([])
    func refuse(_ e: MigrationError) -> Int32 { dmesg.withLock { $0.append(e.message) }; return -e.errno }

    init(_ devices: [String: MigrationDevice]) { self.devices = devices }

    func open(_ path: String) -> Int32 {
        guard let d = devices[path] else { return -ENOENT }
        return table.withLock { t in let fd = t.allocate(); t.deviceFDs[fd] = d; return fd }
    }
    func close(_ fd: Int32) {
        table.withLock { t in
            if t.deviceFDs.removeValue(forKey: fd) != nil || t.dataFDs.removeValue(forKey: fd) != nil { t.closed += 1 }
        }
    }
    func device(_ fd: Int32) -> MigrationDevice? { table.withLock { $0.deviceFDs[fd] } }
    func migrationFlags(_ fd: Int32, _ flags: inout UInt64) -> Int32 {
        guard let d = device(fd) else { return -EBADF }
        flags = d.features.rawValue
        return 0
    }
    func getState(_ fd: Int32, _ state: inout UInt32) -> Int32 {
        guard let d = device(fd) else { return -EBADF }
        state = d.state.rawValue
        return 0
    }
    func setState(_ fd: Int32, _ state: UInt32, _ dataFD: inout Int32) -> Int32 {
        guard let d = device(fd), let target = MigrationState(rawValue: state) else { return -EINVAL }
        if let (s, errno) = failSet.withLock({ $0 }), s == target { return -errno }
        let before = d.currentSession
        do throws(MigrationError) { try d.setState(target) } catch { return refuse(error) }
        dataFD = -1
        if let after = d.currentSession, after != before {
            dataFD = table.withLock { t in let fd = t.allocate(); t.dataFDs[fd] = DataFD(device: d, session: after); return fd }
        }
        return 0
    }
    func stopCopySize(_ fd: Int32, _ bytes: inout UInt64) -> Int32 {
        guard let d = device(fd) else { return -EBADF }
        bytes = UInt64(d.stopCopySize)
        return 0
    }
    func precopyInfo(_ dataFD: Int32, _ initial: inout UInt64, _ dirty: inout UInt64) -> Int32 {
        guard let f = table.withLock({ $0.dataFDs[dataFD] }) else { return -EBADF }
        do throws(MigrationError) {
            let info = try f.device.precopyInfo()
            (initial, dirty) = (UInt64(info.initialBytes), UInt64(info.dirtyBytes))
            return 0
        } catch { return refuse(error) }
    }
    func reset(_ fd: Int32) -> Int32 {
        guard let d = device(fd) else { return -EBADF }
        d.reset()
        return 0
    }
    func read(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer) -> Int {
        guard let f = table.withLock({ $0.dataFDs[fd] }) else { return -Int(EBADF) }
        var n = 0
        do throws(MigrationError) {
            try f.device.read(session: f.session, offset: f.offset, size: buffer.count) { bytes in
                buffer.copyMemory(from: bytes)
                n = bytes.count
            }
        } catch { return Int(refuse(error)) }
        table.withLock { $0.dataFDs[fd]?.offset += n }
        return n
    }
    func write(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> Int {
        guard let f = table.withLock({ $0.dataFDs[fd] }) else { return -Int(EBADF) }
        do throws(MigrationError) { return try f.device.write(session: f.session, bytes: bytes) } catch { return Int(refuse(error)) }
    }
}

/// The hardware behind a simulated kernel: a V5_4-sized vGPU with a stepped clock.
func kernelDevice(_ seed: UInt64) -> MigrationDevice {
    let geometry = VGPUGeometry(lowGMBytes: 128 << 20, highGMBytes: 512 << 20, vgpuID: Int(seed))
    let gpu = VGPU(uuid: "real-\(seed)", geometry: geometry,
                   workload: WorkloadConfig(seed: seed, dirtyRateMBps: 16, workingSetMiB: 4, clock: .stepped))
    gpu.fillWorkingSet()
    try? gpu.step(20)
    return MigrationDevice(gpu: gpu, identity: StreamHeader(model: "vendor/real-gpu", driverVersion: "1.0.0", parameters: [("type", "x")]))
}

/// Mounts the built-in host with two "real" devices served through
/// `RealVFIODevice` on a simulated kernel, at vfio/vfio7 and vfio/vfio8.
func withRealDevices(_ body: (MountedHost, SimulatedKernel, MigrationDevice, MigrationDevice) throws -> Void) throws {
    let a = kernelDevice(7), b = kernelDevice(8)
    let kernel = SimulatedKernel(["/dev/vfio/devices/vfio7": a, "/dev/vfio/devices/vfio8": b])
    let host = try SimulatedHost(config: .builtIn)
    for n in [7, 8] {
        let path = "/dev/vfio/devices/vfio\(n)"
        try host.vfio.addExternal(id: "vfio\(n)", endpoint: try RealVFIODevice(path: path, kernel: kernel), source: path)
    }
    try withMounted(host) { try body($0, kernel, a, b) }
}

@Suite("Real-device migration backend (kernel v2 ioctls, simulated kernel)", .requires(haveMdevsimBinary, "needs the mdevsim binary"), .serialized)
struct RealBackendTests {
    @Test("record and replay run unchanged on a device served through the kernel's ioctls")
    func recordReplay() throws {
        try withRealDevices { m, kernel, a, b in
            #expect(try readText(m.vfio("vfio7") + "/migration/features") == "\(a.features)\n", "the kernel's VFIO_DEVICE_FEATURE_MIGRATION flags")
            #expect(try readText(m.vfio("vfio7") + "/info").contains("\"backend\": \"vfio-kernel\""))
            #expect(try readText(m.vfio("vfio7") + "/info").contains("\"device\": \"/dev/vfio/devices/vfio7\""))
            #expect(a.gpu.stateDigest != b.gpu.stateDigest)
            let blob = makeTempDirectory("blob") + "/real.blob"
            let rec = try run(mdevsimBinary, ["record", m.vfio("vfio7"), "-o", blob, "--live"])
            #expect(rec.status == 0, "\(rec)")
            let size = (try FileManager.default.attributesOfItem(atPath: blob)[.size] as? Int) ?? 0
            #expect(size > 4 << 20, "the blob holds the 4 MiB working set")
            let ins = try run(mdevsimBinary, ["inspect", blob])
            #expect(ins.out.contains("vendor/real-gpu"), "\(ins)")
            let rep = try run(mdevsimBinary, ["replay", blob, m.vfio("vfio8")])
            #expect(rep.status == 0, "\(rep)\nkernel side: \(kernel.dmesg.withLock { $0 })")
            #expect(rep.out.contains("loaded"), "\(rep)")
            #expect(a.gpu.stateDigest == b.gpu.stateDigest, "the destination holds the source's state")
        }
    }

    @Test("migrate between two real devices: the destination ends with the source's state")
    func migrate() throws {
        try withRealDevices { m, _, a, b in
            let r = try run(mdevsimBinary, ["migrate", m.vfio("vfio7"), m.vfio("vfio8"), "--json"])
            #expect(r.status == 0, "\(r)")
            let report = try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any]
            #expect(report?["digests_equal"] == nil, "a real device has no state_digest to compare")
            #expect(a.state == .stop && b.state == .running)
            #expect(a.gpu.stateDigest == b.gpu.stateDigest)
        }
    }

    @Test("a refused kernel call names the device, the call and the errno; the source goes back to RUNNING")
    func refusedIoctl() throws {
        try withRealDevices { m, kernel, a, _ in
            kernel.failSet.withLock { $0 = (.stopCopy, EIO) }
            let r = try run(mdevsimBinary, ["migrate", m.vfio("vfio7"), m.vfio("vfio8")])
            #expect(r.status != 0)
            #expect(r.err.contains("/dev/vfio/devices/vfio7: moving to STOP_COPY failed: Input/output error"), "\(r)")
            #expect(a.state == .running, "the source keeps running")
            let error = try readText(m.vfio("vfio7") + "/migration/error")
            #expect(error.contains("STOP_COPY"))
        }
    }

    @Test("a data handle opened before a session ended reads as a closed data_fd (EBADF)")
    func staleDataHandle() throws {
        try withRealDevices { m, _, _, _ in
            let dir = m.vfio("vfio7")
            try writeText(dir + "/migration/state", "STOP_COPY")
            let fd = open(dir + "/migration/data", O_RDONLY)
            #expect(fd >= 0)
            defer { close(fd) }
            var buf = [UInt8](repeating: 0, count: 4096)
            #expect(Glibc.read(fd, &buf, 4096) == 4096)
            try writeText(dir + "/migration/state", "STOP")
            errno = 0
            #expect(Glibc.read(fd, &buf, 4096) == -1 && errno == EBADF)
            // A reset recovers the device; a new session reads from the start.
            try writeText(dir + "/reset", "1")
            #expect(try readText(dir + "/migration/state") == "RUNNING\n")
        }
    }

    @Test("a name already used under vfio/ is refused with EEXIST")
    func nameClash() throws {
        let kernel = SimulatedKernel(["/x": kernelDevice(1)])
        let host = try SimulatedHost(config: .builtIn)
        try host.vfio.addExternal(id: "gpu", endpoint: try RealVFIODevice(path: "/x", kernel: kernel), source: "/x")
        #expect(throws: (any Error).self) {
            try host.vfio.addExternal(id: "gpu", endpoint: try RealVFIODevice(path: "/x", kernel: kernel), source: "/x")
        }
    }

    @Test("mount --vfio-device with a missing or non-VFIO device is a clear start-up error")
    func badDeviceAtStartUp() throws {
        let dir = makeTempDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let missing = try run(mdevsimBinary, ["mount", dir, "--vfio-device", "/dev/vfio/devices/vfio999"], timeout: 20)
        #expect(missing.status != 0)
        #expect(missing.err.contains("--vfio-device /dev/vfio/devices/vfio999: cannot open /dev/vfio/devices/vfio999: No such file or directory"), "\(missing)")
        let notVFIO = try run(mdevsimBinary, ["mount", dir, "--vfio-device", "/dev/null:gpu"], timeout: 20)
        #expect(notVFIO.status != 0)
        #expect(notVFIO.err.contains("it is not a VFIO device, or its driver has no migration support"), "\(notVFIO)")
    }
}
