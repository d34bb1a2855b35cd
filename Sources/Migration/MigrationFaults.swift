/// Where a migration fault can strike.
public enum MigrationEvent: Sendable {
    /// One arc of a state change is about to run.
    case arc(from: MigrationState, to: MigrationState)
    /// A read of the saving stream is about to hand out `count` bytes from `offset`.
    case saveRead(offset: Int, count: Int)
    /// RESUMING → STOP is about to load a sound stream.
    case resumeCommit
}

/// What happens there.
public enum MigrationFaultAction: Sendable, Equatable {
    /// The arc fails with this errno; the device stays where it was.
    case failArc(Int32)
    /// The arc fails and the device drops into ERROR (only reset leaves it).
    case errorArc
    /// The stream byte at this offset has one bit flipped.
    case flipBit(at: Int)
    /// The stream ends early, at this offset.
    case truncate(at: Int)
    /// The destination refuses a valid stream.
    case rejectResume
    /// The destination accepts the stream and then holds a wrong register: the
    /// silent corruption a checker must catch.
    case corruptAfterResume
    /// On entering pre-copy, the guest's dirty rate jumps to this many MB/s, so
    /// pre-copy never converges.
    case spikeDirtyRate(Double)
}

/// Consulted by a device at each migration event (fault injection plugs in here).
public protocol MigrationFaultHook: Sendable {
    func fault(device uuid: String, _ event: MigrationEvent) -> MigrationFaultAction?
}
