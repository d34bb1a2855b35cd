import Synchronization

/// The identity the kernel uses for a node. Numbers are never reused within a
/// mount, so a stale handle can never reach a newer node by accident.
public typealias Inode = UInt64

/// What a node is. Files carry the object that serves their content.
public enum NodeKind: Sendable {
    case directory
    /// A symbolic link with a target relative to the link's own directory, as sysfs has.
    case symlink(target: String)
    case file(any FileContent)
}

/// One entry of the tree. Immutable apart from its liveness: when a node leaves
/// the tree, files opened on it start failing with `ENODEV`, as kernfs does for
/// a removed attribute.
public final class Node: Sendable {
    public let ino: Inode
    /// The name under which the node was added; nodes are never renamed.
    public let name: String
    /// Permission bits only (0o444, 0o200, ...); the type comes from `kind`.
    public let permissions: UInt32
    public let kind: NodeKind
    private let alive = Atomic<Bool>(true)

    init(ino: Inode, name: String, permissions: UInt32, kind: NodeKind) {
        self.ino = ino
        self.name = name
        self.permissions = permissions
        self.kind = kind
    }

    public var isAlive: Bool { alive.load(ordering: .acquiring) }
    func retire() { alive.store(false, ordering: .releasing) }

    public var isDirectory: Bool {
        if case .directory = kind { return true }
        return false
    }

    /// The `st_size` a client sees.
    public var size: Int {
        switch kind {
        case .directory: return 0
        case .symlink: return 0                 // sysfs (kernfs) reports 0 for links
        case .file(let content): return content.size
        }
    }

    /// Fails with `ENODEV` once the node has been removed from its tree.
    public func checkAlive() throws(FSError) {
        guard isAlive else { throw .gone("the object behind this open file was removed") }
    }
}
