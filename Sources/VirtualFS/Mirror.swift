import Foundation
import Synchronization

/// A directory of the tree that shows a real directory, read through live:
/// entries appear as they are found (never by following a link), files are
/// read from the real file at each access, links keep their real targets.
struct MirrorDirectory {
    let realPath: String
    let allowWrites: Bool
}

extension TreeContents {
    /// Adds `name` in `parent` as a live mirror of the real directory `realPath`.
    @discardableResult
    public mutating func mirror(_ name: String, in parent: Inode, realPath: String, allowWrites: Bool) throws(FSError) -> Inode {
        var st = stat()
        guard lstat(realPath, &st) == 0, st.st_mode & S_IFMT == S_IFDIR else {
            throw FSError(ENOENT, "\(realPath) is not a directory to mirror")
        }
        let ino = try directory(name, in: parent)
        mirrors[ino] = MirrorDirectory(realPath: realPath, allowWrites: allowWrites)
        return ino
    }

    /// Brings one mirrored name up to date with what `probe` found of it.
    mutating func apply(_ p: MirrorProbe, in dir: Inode) {
        guard let m = mirrors[dir], m.realPath == p.directory else { return }
        if let existing = children[dir]?[p.name] {
            if p.status != nil || !mirrored.contains(existing) { return }
            removeIfPresent(p.name, in: dir)
            return
        }
        guard let st = p.status else { return }
        let real = m.realPath + "/" + p.name
        let permissions = UInt32(st.st_mode & 0o7777)
        switch st.st_mode & S_IFMT {
        case S_IFDIR:
            if let ino = try? directory(p.name, in: dir, permissions: permissions) {
                mirrors[ino] = MirrorDirectory(realPath: real, allowWrites: m.allowWrites)
                mirrored.insert(ino)
            }
        case S_IFLNK:
            if let node = try? symlink(p.name, in: dir, to: p.linkTarget ?? "") { mirrored.insert(node.ino) }
        case S_IFREG:
            if let node = try? file(p.name, in: dir, PassthroughFile(path: real, allowWrites: m.allowWrites), permissions: permissions) {
                mirrored.insert(node.ino)
            }
        default:
            break
        }
    }

    /// Brings a whole mirrored directory up to date with a listing probed outside the lock.
    mutating func apply(_ listing: MirrorListing, in dir: Inode) {
        guard let m = mirrors[dir], m.realPath == listing.directory else { return }
        for p in listing.entries { apply(p, in: dir) }
        let names = Set(listing.entries.map(\.name))
        for (name, ino) in children[dir] ?? [:] where mirrored.contains(ino) && !names.contains(name) {
            removeIfPresent(name, in: dir)
        }
    }

    /// The real directory a mirrored directory shows, if it is one.
    func mirroredPath(_ dir: Inode) -> String? { mirrors[dir]?.realPath }

    /// Resolves a path, finding mirrored entries on the way (start-up only:
    /// it reads the real file system while the caller holds the tree).
    public mutating func resolveLive(_ path: String) throws(FSError) -> Node {
        var node = nodes[Tree.rootIno]!
        for part in path.split(separator: "/") where !part.isEmpty {
            if let real = mirroredPath(node.ino) { apply(MirrorProbe(directory: real, name: String(part)), in: node.ino) }
            node = try lookup(parent: node.ino, name: String(part))
        }
        return node
    }
}

/// What one entry of a real directory is, found without holding the tree's
/// lock: a slow real file system must not stall every other request.
struct MirrorProbe {
    let directory: String
    let name: String
    /// Its `lstat`, nil when it does not exist.
    let status: stat?
    let linkTarget: String?

    init(directory: String, name: String) {
        self.directory = directory
        self.name = name
        guard name != ".", name != "..", !name.contains("/") else {
            status = nil
            linkTarget = nil
            return
        }
        let real = directory + "/" + name
        var st = stat()
        status = lstat(real, &st) == 0 ? st : nil
        linkTarget = status.map { $0.st_mode & S_IFMT == S_IFLNK } == true
            ? (try? FileManager.default.destinationOfSymbolicLink(atPath: real)) : nil
    }
}

/// Every entry of a real directory, probed without the tree's lock.
struct MirrorListing {
    let directory: String
    let entries: [MirrorProbe]

    init(directory: String) {
        self.directory = directory
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        entries = names.map { MirrorProbe(directory: directory, name: $0) }
    }
}

/// A real file read through (and, with `allowWrites`, written through) at each access.
public struct PassthroughFile: FileContent {
    let path: String
    let allowWrites: Bool

    public var size: Int {
        var st = stat()
        return stat(path, &st) == 0 ? Int(st.st_size) : 0
    }

    public func open(_ node: Node, access: OpenAccess) throws(FSError) -> any OpenFile {
        if access.contains(.write) && !allowWrites {
            throw .accessDenied("\(path) is mirrored read-only; mount with --allow-writes to write through")
        }
        let flags: Int32 = access == [.read, .write] ? O_RDWR : access.contains(.write) ? O_WRONLY : O_RDONLY
        let fd = Glibc.open(path, flags | O_NONBLOCK)
        guard fd >= 0 else { throw FSError(errno, "\(path): \(String(cString: strerror(errno)))") }
        return OpenPassthrough(node: node, fd: fd)
    }
}

final class OpenPassthrough: OpenFile {
    let node: Node
    let fd: Int32

    init(node: Node, fd: Int32) {
        self.node = node
        self.fd = fd
    }

    func read(offset: Int, size: Int, reply: (UnsafeRawBufferPointer) -> Void) throws(FSError) {
        try node.checkAlive()
        var buffer = [UInt8](repeating: 0, count: max(size, 0))
        let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, off_t(offset)) }
        guard n >= 0 else { throw FSError(errno) }
        buffer.withUnsafeBytes { reply(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
    }

    func write(offset: Int, data: UnsafeRawBufferPointer) throws(FSError) -> Int {
        try node.checkAlive()
        let n = pwrite(fd, data.baseAddress, data.count, off_t(offset))
        guard n >= 0 else { throw FSError(errno) }
        return n
    }

    func release() { close(fd) }
}
