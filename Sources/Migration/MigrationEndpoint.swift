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
    /// Bytes of `session`'s saving stream read so far (0 for any other
    /// session): where a newly opened `data` handle continues the stream.
    func streamPosition(session: UInt64?) -> Int
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

extension MigrationState {
    /// The kind of data session a state has: a saving one (PRE_COPY,
    /// PRE_COPY_P2P, STOP_COPY), a resuming one (RESUMING), or none.
    public enum SessionKind: Sendable { case saving, resuming }
    public var sessionKind: SessionKind? {
        switch self {
        case .preCopy, .preCopyP2P, .stopCopy: .saving
        case .resuming: .resuming
        default: nil
        }
    }
}
