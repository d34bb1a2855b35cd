import CVFIOIoctl
import Foundation

/// The kernel calls a real VFIO device's migration needs: its ioctls and
/// read(2)/write(2) on the data_fd. Each returns 0 (or a byte count) or
/// -errno, as the syscalls do. `KernelVFIO` makes the real calls; tests put a
/// simulated kernel here, since no VFIO hardware exists on the CI machines.
public protocol VFIOKernel: Sendable {
    func open(_ path: String) -> Int32
    func close(_ fd: Int32)
    func migrationFlags(_ fd: Int32, _ flags: inout UInt64) -> Int32
    func getState(_ fd: Int32, _ state: inout UInt32) -> Int32
    /// SET MIG_DEVICE_STATE; `dataFD` is a new data_fd or -1.
    func setState(_ fd: Int32, _ state: UInt32, _ dataFD: inout Int32) -> Int32
    func stopCopySize(_ fd: Int32, _ bytes: inout UInt64) -> Int32
    func precopyInfo(_ dataFD: Int32, _ initial: inout UInt64, _ dirty: inout UInt64) -> Int32
    func reset(_ fd: Int32) -> Int32
    func read(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer) -> Int
    func write(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> Int
}

/// The real calls, through the small C layer (ioctl(2) is variadic).
public struct KernelVFIO: VFIOKernel {
    public init() {}
    public func open(_ path: String) -> Int32 {
        let fd = Foundation.open(path, O_RDWR | O_CLOEXEC)
        return fd >= 0 ? fd : -errno
    }
    public func close(_ fd: Int32) { _ = Foundation.close(fd) }
    public func migrationFlags(_ fd: Int32, _ flags: inout UInt64) -> Int32 { mdevsim_vfio_migration_flags(fd, &flags) }
    public func getState(_ fd: Int32, _ state: inout UInt32) -> Int32 { mdevsim_vfio_get_state(fd, &state) }
    public func setState(_ fd: Int32, _ state: UInt32, _ dataFD: inout Int32) -> Int32 { mdevsim_vfio_set_state(fd, state, &dataFD) }
    public func stopCopySize(_ fd: Int32, _ bytes: inout UInt64) -> Int32 { mdevsim_vfio_stop_copy_size(fd, &bytes) }
    public func precopyInfo(_ dataFD: Int32, _ initial: inout UInt64, _ dirty: inout UInt64) -> Int32 {
        mdevsim_vfio_precopy_info(dataFD, &initial, &dirty)
    }
    public func reset(_ fd: Int32) -> Int32 { mdevsim_vfio_reset(fd) }
    public func read(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer) -> Int {
        while true {
            let n = Foundation.read(fd, buffer.baseAddress, buffer.count)
            if n >= 0 { return n }
            if errno != EINTR { return -Int(errno) }
        }
    }
    public func write(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> Int {
        while true {
            let n = Foundation.write(fd, bytes.baseAddress, bytes.count)
            if n >= 0 { return n }
            if errno != EINTR { return -Int(errno) }
        }
    }
}
