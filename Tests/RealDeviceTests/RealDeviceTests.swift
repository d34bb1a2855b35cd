import CVFIO
import CVFIOFake
import CVFIOIoctl
import Foundation
import Migration
import RealDevice
import Testing

@Suite("real VFIO device backend (no hardware needed)")
struct RealDeviceTests {
    @Test("ioctl numbers are the kernel header's: _IO(';', 100 + n)")
    func ioctlNumbers() {
        func io(_ nr: UInt) -> UInt { UInt(UInt8(ascii: ";")) << 8 | (100 + nr) }
        #expect(mdevsim_vfio_ioctl_device_feature() == io(17))       // 0x3B75
        #expect(mdevsim_vfio_ioctl_device_reset() == io(11))         // 0x3B6F
        #expect(mdevsim_vfio_ioctl_precopy_info() == io(21))         // 0x3B79
        #expect(mdevsim_vfio_ioctl_device_feature() == 0x3b75)
    }

    @Test("structure layouts: feature header 8, mig_state 8, precopy_info 24 with dirty_bytes at 16")
    func layouts() {
        #expect(mdevsim_vfio_sizeof_feature_header() == 8)
        #expect(mdevsim_vfio_sizeof_mig_state() == 8)
        #expect(mdevsim_vfio_sizeof_precopy_info() == 24)
        #expect(mdevsim_vfio_offsetof_precopy_dirty_bytes() == 16)
    }

    @Test("a missing device and a file that is not a VFIO device give clear errors, not a crash")
    func clearErrors() {
        do {
            _ = try RealVFIODevice(path: "/dev/vfio/devices/vfio999")
            Issue.record("opened a device that does not exist")
        } catch {
            #expect("\(error)".contains("cannot open /dev/vfio/devices/vfio999"), "\(error)")
        }
        do {
            _ = try RealVFIODevice(path: "/dev/null")
            Issue.record("/dev/null taken for a VFIO device")
        } catch {
            #expect("\(error)".contains("not a VFIO device"), "\(error)")
        }
    }
}

/// The C ioctl layer itself, against a fake VFIO driver that answers at the
/// syscall boundary (Tests/CVFIOFake defines ioctl(2)): request numbers,
/// argsz, flags and payloads as they reach the "kernel", and RealVFIODevice
/// with the real `KernelVFIO` on top, end to end.
@Suite("C ioctl layer against a fake driver at the syscall boundary", .serialized)
struct IoctlLayerTests {
    static let flags = UInt64(VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_P2P) | (1 << 2)   // + PRE_COPY
    let stream: [UInt8] = (0..<70_000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }

    func withFakeDevice(_ body: (String, Int32) throws -> Void) throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("fake-vfio-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
        FileManager.default.createFile(atPath: path, contents: nil)
        defer { mdevsim_fake_vfio_clear(); unlink(path) }
        _ = stream.withUnsafeBufferPointer { mdevsim_fake_vfio_add(path, $0.baseAddress, UInt32($0.count), Self.flags) }
        let fd = open(path, O_RDWR)
        defer { close(fd) }
        try body(path, fd)
    }

    @Test("each call reaches the driver with the kernel's request, argsz and flags, and its answer comes back")
    func calls() throws {
        try withFakeDevice { _, fd in
            var flags: UInt64 = 0
            #expect(mdevsim_vfio_migration_flags(fd, &flags) == 0)
            #expect(flags == Self.flags)
            var call = mdevsim_fake_vfio_last()
            #expect(call.request == 0x3b75)
            #expect(call.argsz == 16 && call.flags == UInt32(VFIO_DEVICE_FEATURE_GET) | UInt32(VFIO_DEVICE_FEATURE_MIGRATION))

            var state: UInt32 = 99
            #expect(mdevsim_vfio_get_state(fd, &state) == 0 && state == 2)          // RUNNING
            var data: Int32 = 0
            #expect(mdevsim_vfio_set_state(fd, 3, &data) == 0)                     // STOP_COPY
            call = mdevsim_fake_vfio_last()
            #expect(call.argsz == 16 && call.flags == UInt32(VFIO_DEVICE_FEATURE_SET) | UInt32(VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE))
            #expect(data >= 0 && mdevsim_fake_vfio_state() == 3)
            defer { close(data) }
            var bytes: UInt64 = 0
            #expect(mdevsim_vfio_stop_copy_size(fd, &bytes) == 0 && bytes == UInt64(stream.count))
            #expect(mdevsim_fake_vfio_last().argsz == 16)
            // The driver's refusal comes back as -errno: ERROR is not a state one may set.
            var unused: Int32 = 0
            #expect(mdevsim_vfio_set_state(fd, 0, &unused) == -EINVAL)
            #expect(mdevsim_vfio_reset(fd) == 0 && mdevsim_fake_vfio_state() == 2)
            #expect(mdevsim_fake_vfio_last().request == 0x3b6f)

            var pdata: Int32 = 0
            #expect(mdevsim_vfio_set_state(fd, 6, &pdata) == 0)                    // PRE_COPY
            defer { close(pdata) }
            var initial: UInt64 = 0, dirty: UInt64 = 9
            #expect(mdevsim_vfio_precopy_info(pdata, &initial, &dirty) == 0)
            #expect(initial == UInt64(stream.count) && dirty == 0)
            call = mdevsim_fake_vfio_last()
            #expect(call.request == 0x3b79 && call.argsz == 24)
            // Ordinary ioctls still reach the kernel: TCGETS on a pipe is ENOTTY from the kernel itself.
            let before = mdevsim_fake_vfio_calls()
            var pipes: [Int32] = [0, 0]
            pipe(&pipes)
            #expect(isatty(pipes[0]) == 0)
            close(pipes[0]); close(pipes[1])
            #expect(mdevsim_fake_vfio_calls() == before)
        }
    }

    @Test("RealVFIODevice on the real KernelVFIO saves and resumes through the C layer")
    func endToEnd() throws {
        try withFakeDevice { path, _ in
            let device = try RealVFIODevice(path: path)
            #expect(device.features.contains(.stopCopy) && device.features.contains(.preCopy))
            try device.setState(.stopCopy)
            var saved: [UInt8] = []
            while true {
                var chunk: [UInt8] = []
                try device.read(session: device.currentSession, offset: saved.count, size: 65536) { chunk = Array($0) }
                if chunk.isEmpty { break }
                saved += chunk
            }
            #expect(saved == stream)
            #expect(try device.stopCopyBytes() == stream.count)
            try device.setState(.stop)
            try device.setState(.resuming)
            let written = try saved.withUnsafeBytes { try device.write(session: device.currentSession, bytes: $0) }
            #expect(written == saved.count)
            var back = [UInt8](repeating: 0, count: stream.count + 10)
            let n = mdevsim_fake_vfio_resumed(&back, UInt32(back.count))
            #expect(Array(back[0..<Int(n)]) == stream)
            try device.reset()
            #expect(device.state == .running)
        }
    }
}
