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

/// One entry of the tree. Immutable apart from its liveness and, as kernfs
/// allows root to change them, its mode and owner: when a node leaves the
/// tree, files opened on it start failing with `ENODEV`, as kernfs does for a
/// removed attribute.
public final class Node: Sendable {
    public let ino: Inode
    /// The name under which the node was added; nodes are never renamed.
    public let name: String
    public let kind: NodeKind
    private let alive = Atomic<Bool>(true)
    private let mode: Atomic<UInt32>
    /// uid << 32 | gid once chown'd; `Node.mountOwner` until then.
    private let ownerBits = Atomic<UInt64>(Node.mountOwner)
    static let mountOwner = UInt64.max
    /// Subdirectories of a directory, kept by the tree: kernfs's nlink is 2 + subdirs.
    let subdirectories = Atomic<Int>(0)
    public var linkCount: Int { isDirectory ? 2 + subdirectories.load(ordering: .relaxed) : 1 }

    init(ino: Inode, name: String, permissions: UInt32, kind: NodeKind) {
        self.ino = ino
        self.name = name
        mode = Atomic(permissions)
        self.kind = kind
    }

    /// Permission bits only (0o444, 0o200, ...); the type comes from `kind`.
    public var permissions: UInt32 { mode.load(ordering: .relaxed) }

    /// chmod(2): the new permission bits.
    public func setPermissions(_ bits: UInt32) { mode.store(bits & 0o7777, ordering: .relaxed) }

    /// The owner set by chown(2), or nil for the mounting user (the default).
    public var owner: (uid: UInt32, gid: UInt32)? {
        let v = ownerBits.load(ordering: .relaxed)
        return v == Node.mountOwner ? nil : (UInt32(v >> 32), UInt32(v & 0xffff_ffff))
    }

    /// chown(2): either part may stay as it is (nil).
    public func setOwner(uid: UInt32?, gid: UInt32?, defaultUID: UInt32, defaultGID: UInt32) {
        let current = owner ?? (defaultUID, defaultGID)
        ownerBits.store(UInt64(uid ?? current.uid) << 32 | UInt64(gid ?? current.gid), ordering: .relaxed)
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
