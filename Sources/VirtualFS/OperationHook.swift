import Synchronization

/// The file operations a hook can see.
public enum FileOperation: String, Sendable, CaseIterable, Codable {
    case lookup, getattr, setattr, open, read, write, readdir, readlink
}

/// What a hook wants done with an operation.
public enum HookAction: Sendable, Equatable {
    case proceed
    /// Fail the operation with this errno.
    case fail(Int32)
    /// Wait, then carry on.
    case delay(milliseconds: Int)
    /// Carry on, but a read returns at most this many bytes.
    case shortRead(Int)
}

/// Consulted before every file operation on a tree that has one (fault
/// injection plugs in here). It must be fast and must not touch the mount.
public protocol OperationHook: Sendable {
    /// False when the hook would let everything proceed: operations then skip it
    /// (and the cost of naming their path).
    var isActive: Bool { get }
    func action(for operation: FileOperation, path: String) -> HookAction
}

extension Tree {
    /// Installs (or removes, with nil) the hook every operation consults.
    public func setHook(_ hook: (any OperationHook)?) {
        hookBox.withLock { $0 = hook }
    }

    public var hook: (any OperationHook)? { hookBox.withLock { $0 } }
}
