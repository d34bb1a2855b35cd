/// What serves a device's `vfio/<id>/migration/` files: the v2 protocol as
/// the kernel's uAPI defines it, whoever implements it. A simulated vGPU
/// (`MigrationDevice`) and a real VFIO device driven with the kernel's ioctls
/// (`RealDevice.RealVFIODevice`) both conform, so the tools run unchanged on either.
public protocol MigrationEndpoint: AnyObject, Sendable {
    /// VFIO_DEVICE_FEATURE_MIGRATION.
    var features: MigrationFeatures { get }
    /// VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE (GET).
    var state: MigrationState { get }
    /// The last refused operation, in words ("" when none).
    var lastError: String { get }
    /// The data session (data_fd) a newly opened `data` handle joins; nil when none is open.
    var currentSession: UInt64? { get }
    /// VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE (SET): moves to `target` and
    /// returns the states passed through, ending with `target`.
    @discardableResult
    func setState(_ target: MigrationState) throws(MigrationError) -> [MigrationState]
    /// read(2) on the data_fd of `session`. Zero bytes ends the stream;
    /// ENOMSG means PRE_COPY has nothing more for now.
    func read(session: UInt64?, offset: Int, size: Int, reply: (UnsafeRawBufferPointer) -> Void) throws(MigrationError)
    /// write(2) on the data_fd of `session` while RESUMING.
    func write(session: UInt64?, bytes: UnsafeRawBufferPointer) throws(MigrationError) -> Int
    /// VFIO_MIG_GET_PRECOPY_INFO.
    func precopyInfo() throws(MigrationError) -> (initialBytes: Int, dirtyBytes: Int)
    /// VFIO_DEVICE_FEATURE_MIG_DATA_SIZE.
    func stopCopyBytes() throws(MigrationError) -> Int
    /// VFIO_DEVICE_RESET.
    func reset() throws(MigrationError)
}

extension MigrationDevice: MigrationEndpoint {
    public func stopCopyBytes() throws(MigrationError) -> Int { stopCopySize }
}
