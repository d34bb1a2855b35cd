import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A tree of nodes addressed by inode number, safe to read and change from
/// any thread.
///
/// All structure lives in one `TreeContents` behind one lock, so a group of
/// changes made in one `update` (a whole device directory and every link to
/// it) appears to readers at once. The lock is never held while a file's
/// content runs, so a `store` may call `update` itself.
public final class Tree: Sendable {
    public static let rootIno: Inode = 1

    let contents: Mutex<TreeContents>
    let hookBox = Mutex<(any OperationHook)?>(nil)
    let removalHandler = Mutex<(@Sendable ([Removal]) -> Void)?>(nil)

    /// An entry that left the tree (the top of a removed subtree).
    public struct Removal: Sendable {
        public let parent: Inode
        public let name: String
    }

    /// Called after each `update` that removed entries (outside the lock), so a
    /// FUSE session that lets the kernel cache entries can invalidate them.
    /// Entries under mirrored directories are not reported: they change on
    /// their own and are never cached.
    public func onRemovals(_ handler: (@Sendable ([Removal]) -> Void)?) {
        removalHandler.withLock { $0 = handler }
    }

    public init() {
        contents = Mutex(TreeContents())
    }

    /// Asks for every cached entry to be dropped, as removals are (through the
    /// `onRemovals` handler): for when something that decides how requests are
    /// answered changed, such as a fault rule added while the kernel holds
    /// entries and attributes it would otherwise not ask about again.
    public func invalidateCache() {
        let all = contents.withLock { c -> [Removal] in
            var out: [Removal] = []
            for (parent, entries) in c.children where c.mirrors[parent] == nil && !c.mirrored.contains(parent) {
                for name in entries.keys { out.append(Removal(parent: parent, name: name)) }
            }
            return out
        }
        if !all.isEmpty, let handler = removalHandler.withLock({ $0 }) { handler(all) }
    }

    /// Applies a group of changes atomically.
    public func update<R: Sendable, E: Error>(_ body: (inout TreeContents) throws(E) -> R) throws(E) -> R {
        var removed: [Removal] = []
        defer {
            if !removed.isEmpty, let handler = removalHandler.withLock({ $0 }) { handler(removed) }
        }
        return try contents.withLock { (c: inout TreeContents) throws(E) -> R in
            defer {
                removed = c.removals
                c.removals = []
            }
            return try body(&c)
        }
    }

    public func node(_ ino: Inode) throws(FSError) -> Node {
        guard let node = contents.withLock({ $0.nodes[ino] }) else {
            throw .noEntry("inode \(ino) is no longer in the tree")
        }
        return node
    }

    public func lookup(parent: Inode, name: String) throws(FSError) -> Node {
        try lookupEntry(parent: parent, name: name).node
    }

    /// `lookup` and whether the kernel may cache the entry and its attributes
    /// (a directory or link not mirrored from a real directory), under one lock.
    public func lookupEntry(parent: Inode, name: String) throws(FSError) -> (node: Node, cacheable: Bool) {
        // One lock for the common case. A mirrored directory's entry is looked
        // at on the real file system without the lock, then applied under it.
        var mirrored: String?
        if let found = try contents.withLock({ (c: inout TreeContents) throws(FSError) -> (node: Node, cacheable: Bool)? in
            if let real = c.mirroredPath(parent) { mirrored = real; return nil }
            let node = try c.lookup(parent: parent, name: name)
            return (node, c.isCacheable(node))
        }) { return found }
        let probe = MirrorProbe(directory: mirrored!, name: name)
        return try contents.withLock { (c: inout TreeContents) throws(FSError) -> (node: Node, cacheable: Bool) in
            c.apply(probe, in: parent)
            let node = try c.lookup(parent: parent, name: name)
            return (node, c.isCacheable(node))
        }
    }

    /// `node` and whether its attributes may be cached, under one lock.
    public func nodeEntry(_ ino: Inode) throws(FSError) -> (node: Node, cacheable: Bool) {
        try contents.withLock { (c: inout TreeContents) throws(FSError) -> (node: Node, cacheable: Bool) in
            guard let node = c.nodes[ino] else { throw .noEntry("inode \(ino) is no longer in the tree") }
            return (node, c.isCacheable(node))
        }
    }

    /// The entries of a directory, sorted by name.
    public func entries(of ino: Inode) throws(FSError) -> [(name: String, node: Node)] {
        var mirrored: String?
        if let found = try contents.withLock({ (c: inout TreeContents) throws(FSError) -> [(name: String, node: Node)]? in
            if let real = c.mirroredPath(ino) { mirrored = real; return nil }
            return try c.entries(of: ino)
        }) { return found }
        let listing = MirrorListing(directory: mirrored!)
        return try contents.withLock { (c: inout TreeContents) throws(FSError) -> [(name: String, node: Node)] in
            c.apply(listing, in: ino)
            return try c.entries(of: ino)
        }
    }

    /// The parent directory's inode (the root is its own parent).
    public func parent(of ino: Inode) -> Inode {
        contents.withLock { $0.parents[ino] ?? Tree.rootIno }
    }

    /// Resolves a slash-separated path from the root without following links.
    public func resolve(_ path: String) throws(FSError) -> Node {
        try contents.withLock { (c: inout TreeContents) throws(FSError) -> Node in try c.resolve(path) }
    }

    /// The path of a node from the root ("sys/bus/mdev"), for messages.
    public func path(of ino: Inode) -> String {
        contents.withLock { c in
            var parts: [String] = []
            var current = ino
            while current != Tree.rootIno, let node = c.nodes[current] {
                parts.append(node.name)
                current = c.parents[current] ?? Tree.rootIno
            }
            return parts.reversed().joined(separator: "/")
        }
    }
}

/// The tree's structure, changed only inside `Tree.update`.
public struct TreeContents {
    var nodes: [Inode: Node] = [:]
    var children: [Inode: [String: Inode]] = [:]
    var parents: [Inode: Inode] = [:]
    var nextIno: Inode = Tree.rootIno
    /// Directories that mirror a real one, and the nodes the mirrors created.
    var mirrors: [Inode: MirrorDirectory] = [:]
    var mirrored: Set<Inode> = []
    /// Removals made by the current update, for `Tree.onRemovals`.
    var removals: [Tree.Removal] = []

    init() {
        let root = Node(ino: Tree.rootIno, name: "", permissions: 0o755, kind: .directory)
        nodes[root.ino] = root
        children[root.ino] = [:]
        nextIno = Tree.rootIno + 1
    }

    /// A node not mirrored from a real directory: its name changes only
    /// through `Tree.update` (whose removals are invalidated), its size never
    /// (attributes are a page, binary attributes and regions their fixed
    /// size), its mode and owner only by setattr, whose reply refreshes the
    /// kernel's copy. Content is never cached: files are served with direct I/O.
    func isCacheable(_ node: Node) -> Bool {
        !mirrored.contains(node.ino) && mirrors[node.ino] == nil
    }

    public func lookup(parent: Inode, name: String) throws(FSError) -> Node {
        // The hot path of every path walk: one probe of each table, no copies.
        if let ino = children[parent]?[name], let node = nodes[ino] { return node }
        if children[parent] == nil {
            throw nodes[parent] == nil ? .noEntry("directory inode \(parent) was removed") : FSError(ENOTDIR, "not a directory")
        }
        throw .noEntry("no entry named '\(name)'")
    }

    public func entries(of ino: Inode) throws(FSError) -> [(name: String, node: Node)] {
        guard let entries = children[ino] else {
            throw nodes[ino] == nil ? .noEntry("directory inode \(ino) was removed") : FSError(ENOTDIR, "not a directory")
        }
        return entries.sorted { $0.key < $1.key }.compactMap { name, ino in nodes[ino].map { (name, $0) } }
    }

    public func resolve(_ path: String) throws(FSError) -> Node {
        var node = nodes[Tree.rootIno]!
        for part in path.split(separator: "/") where !part.isEmpty {
            node = try lookup(parent: node.ino, name: String(part))
        }
        return node
    }

    /// Adds a node; `EEXIST` if the name is taken.
    @discardableResult
    public mutating func add(_ name: String, in parent: Inode, kind: NodeKind, permissions: UInt32) throws(FSError) -> Node {
        guard children[parent] != nil else { throw .noEntry("parent directory \(parent) does not exist") }
        guard children[parent]![name] == nil else { throw FSError(EEXIST, "'\(name)' already exists") }
        let node = Node(ino: nextIno, name: name, permissions: permissions, kind: kind)
        nextIno += 1
        nodes[node.ino] = node
        parents[node.ino] = parent
        children[parent]![name] = node.ino
        if case .directory = kind {
            children[node.ino] = [:]
            nodes[parent]?.subdirectories.add(1, ordering: .relaxed)
        }
        return node
    }

    /// Adds a directory, or returns the one already there (`mkdir -p` for one level).
    @discardableResult
    public mutating func directory(_ name: String, in parent: Inode, permissions: UInt32 = 0o755) throws(FSError) -> Inode {
        if let existing = children[parent]?[name], let node = nodes[existing], node.isDirectory { return existing }
        return try add(name, in: parent, kind: .directory, permissions: permissions).ino
    }

    /// Creates every directory along a slash-separated path and returns the last.
    @discardableResult
    public mutating func directories(_ path: String) throws(FSError) -> Inode {
        var ino = Tree.rootIno
        for part in path.split(separator: "/") where !part.isEmpty {
            ino = try directory(String(part), in: ino)
        }
        return ino
    }

    @discardableResult
    public mutating func attribute(_ name: String, in parent: Inode, _ attribute: Attribute, permissions: UInt32? = nil) throws(FSError) -> Node {
        try add(name, in: parent, kind: .file(attribute), permissions: permissions ?? attribute.defaultPermissions)
    }

    @discardableResult
    public mutating func file(_ name: String, in parent: Inode, _ content: any FileContent, permissions: UInt32) throws(FSError) -> Node {
        try add(name, in: parent, kind: .file(content), permissions: permissions)
    }

    @discardableResult
    public mutating func symlink(_ name: String, in parent: Inode, to target: String) throws(FSError) -> Node {
        try add(name, in: parent, kind: .symlink(target: target), permissions: 0o777)
    }

    /// Removes an entry and everything under it; open files on them start
    /// failing with `ENODEV`. Removing a missing name is `ENOENT`.
    public mutating func remove(_ name: String, in parent: Inode) throws(FSError) {
        guard let ino = children[parent]?[name] else { throw .noEntry("no entry named '\(name)'") }
        children[parent]![name] = nil
        if nodes[ino]?.isDirectory == true { nodes[parent]?.subdirectories.subtract(1, ordering: .relaxed) }
        if mirrors[parent] == nil && !mirrored.contains(parent) { removals.append(Tree.Removal(parent: parent, name: name)) }
        var stack = [ino]
        while let next = stack.popLast() {
            if let sub = children.removeValue(forKey: next) { stack.append(contentsOf: sub.values) }
            parents[next] = nil
            mirrors[next] = nil
            mirrored.remove(next)
            nodes.removeValue(forKey: next)?.retire()
        }
    }

    /// Whether `parent` has an entry `name` (a recorded or mirrored tree may
    /// already provide what a view would add).
    public func has(_ name: String, in parent: Inode) -> Bool {
        children[parent]?[name] != nil || mirrors[parent] != nil
    }

    /// Removes an entry if present.
    public mutating func removeIfPresent(_ name: String, in parent: Inode) {
        try? remove(name, in: parent)
    }
}
