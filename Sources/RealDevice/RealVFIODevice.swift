import CVFIOIoctl
import Foundation
import Migration

/// A real VFIO device driven with the kernel's v2 migration ioctls
/// (VFIO_DEVICE_FEATURE MIGRATION / MIG_DEVICE_STATE / MIG_DATA_SIZE, the
/// data_fd, VFIO_MIG_GET_PRECOPY_INFO, VFIO_DEVICE_RESET).
public final class RealVFIODevice {
    public let path: String
    let fd: Int32
    /// The data_fd of the current saving or resuming session, if any.
    public private(set) var dataFD: Int32 = -1

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    static func text(_ rc: Int32) -> String { String(cString: strerror(-rc)) }

    /// Opens a vfio cdev (/dev/vfio/devices/vfioN) and checks it supports migration.
    public init(path: String) throws {
        self.path = path
        fd = open(path, O_RDWR | O_CLOEXEC)
        guard fd >= 0 else {
            throw Failure(description: "cannot open \(path): \(String(cString: strerror(errno))); give a VFIO device such as /dev/vfio/devices/vfio0 (bound to a vfio driver, iommufd set up)")
        }
        var flags: UInt64 = 0
        let rc = mdevsim_vfio_migration_flags(fd, &flags)
        guard rc == 0 else {
            close(fd)
            let why = rc == -ENOTTY ? "it is not a VFIO device, or its driver has no migration support" : RealVFIODevice.text(rc)
            throw Failure(description: "\(path): VFIO_DEVICE_FEATURE(MIGRATION) failed: \(why)")
        }
        features = MigrationFeatures(rawValue: flags)
    }

    deinit {
        if dataFD >= 0 { close(dataFD) }
        close(fd)
    }

    public let features: MigrationFeatures

    public func state() throws -> MigrationState {
        var raw: UInt32 = 0
        let rc = mdevsim_vfio_get_state(fd, &raw)
        guard rc == 0, let s = MigrationState(rawValue: raw) else { throw Failure(description: "\(path): getting the migration state failed: \(RealVFIODevice.text(rc))") }
        return s
    }

    /// SET MIG_DEVICE_STATE; a new data_fd replaces the old session's.
    public func setState(_ target: MigrationState) throws {
        var newFD: Int32 = -1
        let rc = mdevsim_vfio_set_state(fd, target.rawValue, &newFD)
        guard rc == 0 else { throw Failure(description: "\(path): moving to \(target) failed: \(RealVFIODevice.text(rc))") }
        if newFD >= 0 {
            if dataFD >= 0 { close(dataFD) }
            dataFD = newFD
        }
    }

    public func stopCopySize() throws -> UInt64 {
        var bytes: UInt64 = 0
        let rc = mdevsim_vfio_stop_copy_size(fd, &bytes)
        guard rc == 0 else { throw Failure(description: "\(path): MIG_DATA_SIZE failed: \(RealVFIODevice.text(rc))") }
        return bytes
    }

    public func precopyInfo() throws -> (initial: UInt64, dirty: UInt64) {
        var i: UInt64 = 0, d: UInt64 = 0
        let rc = mdevsim_vfio_precopy_info(dataFD, &i, &d)
        guard rc == 0 else { throw Failure(description: "\(path): VFIO_MIG_GET_PRECOPY_INFO failed: \(RealVFIODevice.text(rc))") }
        return (i, d)
    }

    public func reset() throws {
        let rc = mdevsim_vfio_reset(fd)
        guard rc == 0 else { throw Failure(description: "\(path): VFIO_DEVICE_RESET failed: \(RealVFIODevice.text(rc))") }
        if dataFD >= 0 { close(dataFD); dataFD = -1 }
    }
}
