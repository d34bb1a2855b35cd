import Foundation
import Migration
import Synchronization

/// A real VFIO device driven with the kernel's v2 migration ioctls
/// (VFIO_DEVICE_FEATURE MIGRATION / MIG_DEVICE_STATE / MIG_DATA_SIZE, the
/// data_fd, VFIO_MIG_GET_PRECOPY_INFO, VFIO_DEVICE_RESET). It is a
/// `MigrationEndpoint`, so `mdevsim mount --vfio-device` serves it through the
/// same `vfio/<id>/migration/` files as a simulated vGPU.
public final class RealVFIODevice: MigrationEndpoint {
    public let path: String
    public let features: MigrationFeatures
    let kernel: any VFIOKernel
    let fd: Int32

    struct Session {
        /// The data_fd of the current saving or resuming session (-1: none).
        var dataFD: Int32 = -1
        var id: UInt64 = 0
        var offset = 0
        var lastError = ""
    }
    private let session = Mutex(Session())

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    static func text(_ rc: Int32) -> String { String(cString: strerror(-rc)) }

    /// Opens a vfio cdev (/dev/vfio/devices/vfioN) and checks it supports migration.
    public init(path: String, kernel: any VFIOKernel = KernelVFIO()) throws {
        self.path = path
        self.kernel = kernel
        let opened = kernel.open(path)
        guard opened >= 0 else {
            throw Failure(description: "cannot open \(path): \(RealVFIODevice.text(opened)); give a VFIO device such as /dev/vfio/devices/vfio0 (bound to a vfio driver, iommufd set up)")
        }
        fd = opened
        var flags: UInt64 = 0
        let rc = kernel.migrationFlags(fd, &flags)
        guard rc == 0 else {
            kernel.close(fd)
            let why = rc == -ENOTTY ? "it is not a VFIO device, or its driver has no migration support" : RealVFIODevice.text(rc)
            throw Failure(description: "\(path): VFIO_DEVICE_FEATURE(MIGRATION) failed: \(why)")
        }
        features = MigrationFeatures(rawValue: flags)
    }

    deinit {
        let data = session.withLock { $0.dataFD }
        if data >= 0 { kernel.close(data) }
        kernel.close(fd)
    }

    /// Keeps `message` as the last error and returns it as a MigrationError.
    private func fail(_ rc: Int, _ what: String) -> MigrationError {
        let errno = Int32(-rc)
        let message = "\(path): \(what) failed: \(RealVFIODevice.text(errno == 0 ? -EIO : -errno))"
        session.withLock { $0.lastError = message }
        return MigrationError(errno == 0 ? EIO : errno, message)
    }

    // MARK: MigrationEndpoint

    /// The state; ERROR when it cannot be read (the reason is the last error).
    public var state: MigrationState { (try? currentState()) ?? .error }

    /// The state, or the reason it could not be read.
    public func currentState() throws(MigrationError) -> MigrationState {
        var raw: UInt32 = 0
        let rc = kernel.getState(fd, &raw)
        guard rc == 0 else { throw fail(Int(rc), "getting the migration state") }
        guard let s = MigrationState(rawValue: raw) else { throw fail(Int(-EPROTO), "the device reported state \(raw), which") }
        return s
    }

    public var lastError: String { session.withLock { $0.lastError } }
    public var currentSession: UInt64? { session.withLock { $0.dataFD >= 0 ? $0.id : nil } }
    public func streamPosition(session id: UInt64?) -> Int { session.withLock { $0.id == id && $0.dataFD >= 0 ? $0.offset : 0 } }

    /// One ioctl: the kernel walks the arcs to `target` itself. A new data_fd
    /// replaces the old session's.
    @discardableResult
    public func setState(_ target: MigrationState) throws(MigrationError) -> [MigrationState] {
        guard target != .error else {
            throw MigrationError(EINVAL, "ERROR cannot be requested; a device enters it only when an arc fails")
        }
        var newFD: Int32 = -1
        let rc = kernel.setState(fd, target.rawValue, &newFD)
        guard rc == 0 else { throw fail(Int(rc), "moving to \(target)") }
        let old = session.withLock { (s: inout Session) -> Int32 in
            let old = s.dataFD
            if newFD >= 0 {
                s.dataFD = newFD
                s.id += 1
                s.offset = 0
            } else if target == .stop || target == .running || target == .runningP2P {
                // The kernel ends the data session on these arcs; its fd reads as closed.
                s.dataFD = -1
            } else {
                return -1
            }
            return old
        }
        if old >= 0 && old != newFD { kernel.close(old) }
        return [target]
    }

    private func dataFD(_ id: UInt64?, _ what: String) throws(MigrationError) -> Int32 {
        try session.withLock { (s: inout Session) throws(MigrationError) -> Int32 in
            guard let id, id == s.id, s.dataFD >= 0 else {
                let message = "this data handle belongs to a session that has ended (as a closed data_fd would); open data again after entering \(what)"
                s.lastError = message
                throw MigrationError(EBADF, message)
            }
            return s.dataFD
        }
    }

    public func read(session id: UInt64?, offset: Int, size: Int, reply: (UnsafeRawBufferPointer) -> Void) throws(MigrationError) {
        let data = try dataFD(id, "a saving state")
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(size, 1), alignment: 16)
        defer { buffer.deallocate() }
        let n = kernel.read(data, into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<size]))
        guard n >= 0 else { throw fail(n, "read(2) on the data_fd") }
        session.withLock { $0.offset += n }
        reply(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
    }

    public func write(session id: UInt64?, bytes: UnsafeRawBufferPointer) throws(MigrationError) -> Int {
        let data = try dataFD(id, "RESUMING")
        var done = 0
        while done < bytes.count {
            let n = kernel.write(data, UnsafeRawBufferPointer(rebasing: bytes[done...]))
            guard n > 0 else { throw fail(n == 0 ? -Int(EIO) : n, "write(2) on the data_fd") }
            done += n
        }
        return done
    }

    public func precopyInfo() throws(MigrationError) -> (initialBytes: Int, dirtyBytes: Int) {
        let data = session.withLock { $0.dataFD }
        guard data >= 0 else { throw MigrationError(EINVAL, "precopy_info is valid only in PRE_COPY or PRE_COPY_P2P (no data_fd is open)") }
        var i: UInt64 = 0, d: UInt64 = 0
        let rc = kernel.precopyInfo(data, &i, &d)
        guard rc == 0 else { throw fail(Int(rc), "VFIO_MIG_GET_PRECOPY_INFO") }
        return (Int(clamping: i), Int(clamping: d))
    }

    public func stopCopyBytes() throws(MigrationError) -> Int {
        var bytes: UInt64 = 0
        let rc = kernel.stopCopySize(fd, &bytes)
        guard rc == 0 else { throw fail(Int(rc), "VFIO_DEVICE_FEATURE_MIG_DATA_SIZE") }
        return Int(clamping: bytes)
    }

    public func reset() throws(MigrationError) {
        let rc = kernel.reset(fd)
        guard rc == 0 else { throw fail(Int(rc), "VFIO_DEVICE_RESET") }
        let old = session.withLock { (s: inout Session) -> Int32 in
            let old = s.dataFD
            s.dataFD = -1
            s.lastError = ""
            return old
        }
        if old >= 0 { kernel.close(old) }
    }
}
