import CFuse
import Foundation
import Logging
import VirtualFS

/// The state every request reaches through `fuse_req_userdata`.
final class Dispatcher: @unchecked Sendable {
    let tree: Tree
    let logger: Logger
    let uid = getuid()
    let gid = getgid()
    let mountTime: timespec

    /// MountOptions.entryCacheSeconds.
    let cacheSeconds: Double
    /// Set once before the session serves its first request, when entries are cached.
    var invalidator: Invalidator?

    init(tree: Tree, logger: Logger, cacheSeconds: Double = 0) {
        self.tree = tree
        self.logger = logger
        self.cacheSeconds = cacheSeconds
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        mountTime = now
    }

    /// How long the kernel may keep this node's entry and attributes.
    func cacheTimeout(cacheable: Bool) -> Double {
        guard cacheable, cacheSeconds > 0, !(tree.hook?.isActive ?? false) else { return 0 }
        return cacheSeconds
    }

    /// Asks the tree's hook about an operation; returns an errno to fail with,
    /// after any delay it asked for. `shortRead` gives the read's byte limit.
    func consult(_ op: FileOperation, _ ino: fuse_ino_t, shortRead: UnsafeMutablePointer<Int>? = nil) -> Int32? {
        guard let hook = tree.hook, hook.isActive else { return nil }
        let path = tree.path(of: ino)
        if path.hasPrefix(".mdevsim") { return nil }
        switch hook.action(for: op, path: path) {
        case .proceed: return nil
        case .fail(let errno): return errno
        case .delay(let ms):
            usleep(useconds_t(max(0, ms)) * 1000)
            return nil
        case .shortRead(let n):
            shortRead?.pointee = n
            return nil
        }
    }

    /// Replies to a request that may have removed entries (a write, a
    /// truncation, a release) only after their invalidations reached the
    /// kernel; at once when none are queued.
    func replyAfterInvalidations(_ req: fuse_req_t?, _ reply: @escaping @Sendable (fuse_req_t?) -> Void) {
        guard let invalidator else { return reply(req) }
        let pending = PendingRequest(req: req)
        invalidator.afterPending { reply(pending.req) }
    }

    static func from(_ req: fuse_req_t?) -> Dispatcher {
        Unmanaged<Dispatcher>.fromOpaque(fuse_req_userdata(req)!).takeUnretainedValue()
    }

    func attributes(of node: Node) -> stat {
        var st = stat()
        st.st_ino = ino_t(node.ino)
        switch node.kind {
        case .directory:
            st.st_mode = S_IFDIR | mode_t(node.permissions)
            st.st_nlink = nlink_t(node.linkCount)
        case .symlink:
            st.st_mode = S_IFLNK | mode_t(node.permissions)
            st.st_nlink = 1
        case .file:
            st.st_mode = S_IFREG | mode_t(node.permissions)
            st.st_nlink = 1
        }
        st.st_size = off_t(node.size)
        if let owner = node.owner {
            st.st_uid = owner.uid
            st.st_gid = owner.gid
        } else {
            st.st_uid = uid
            st.st_gid = gid
        }
        st.st_blksize = 4096
        st.st_atim = mountTime
        st.st_mtim = mountTime
        st.st_ctim = mountTime
        return st
    }

    /// Replies with the error, logging refused writes (where the reason matters to
    /// whoever wrote) at notice level and the rest at debug.
    func fail(_ req: fuse_req_t?, _ error: FSError, _ op: String, _ ino: fuse_ino_t, loud: Bool = false) {
        let level: Logger.Level = loud ? .notice : .debug
        if logger.logLevel <= level {
            logger.log(level: level, "\(op) /\(tree.path(of: ino)): \(error)")
        }
        fuse_reply_err(req, error.errno)
    }
}

/// An open file or directory, kept alive by the pointer stored in `fi->fh`.
final class FileHandleBox {
    let file: any OpenFile
    init(_ file: any OpenFile) { self.file = file }
}

final class DirectoryListing {
    let entries: [(name: String, ino: Inode, type: mode_t)]
    init(_ entries: [(name: String, ino: Inode, type: mode_t)]) { self.entries = entries }
}

/// The libfuse low-level operation table. Each handler ends in exactly one
/// `fuse_reply_*`; errors travel as `FSError` and are converted once, in `fail`.
enum Bridge {
    static func retain(_ object: AnyObject) -> UInt64 {
        UInt64(UInt(bitPattern: Unmanaged.passRetained(object).toOpaque()))
    }
    static func borrow<T: AnyObject>(_ fh: UInt64, as: T.Type) -> T {
        Unmanaged<T>.fromOpaque(UnsafeRawPointer(bitPattern: UInt(fh))!).takeUnretainedValue()
    }
    static func take<T: AnyObject>(_ fh: UInt64, as: T.Type) -> T {
        Unmanaged<T>.fromOpaque(UnsafeRawPointer(bitPattern: UInt(fh))!).takeRetainedValue()
    }

    static func refuse(_ req: fuse_req_t?, _ errno: Int32) { fuse_reply_err(req, errno) }

    static let operations: fuse_lowlevel_ops = {
        var ops = fuse_lowlevel_ops()

        ops.`init` = { userdata, conn in
            // With an entry cache, let the kernel keep link targets too: a link's
            // target never changes and inode numbers are never reused, so a removed
            // link (its entry invalidated) can never be answered from a stale cache.
            guard let userdata, let conn else { return }
            let d = Unmanaged<Dispatcher>.fromOpaque(userdata).takeUnretainedValue()
            if d.cacheSeconds > 0, conn.pointee.capable & UInt32(FUSE_CAP_CACHE_SYMLINKS) != 0 {
                conn.pointee.want |= UInt32(FUSE_CAP_CACHE_SYMLINKS)
            }
        }

        ops.lookup = { req, parent, name in
            let d = Dispatcher.from(req)
            do throws(FSError) {
                let (node, cacheable) = try d.tree.lookupEntry(parent: parent, name: String(cString: name!))
                if let errno = d.consult(.lookup, fuse_ino_t(node.ino)) { throw FSError(errno, "injected") }
                var entry = fuse_entry_param()
                entry.ino = fuse_ino_t(node.ino)
                entry.attr = d.attributes(of: node)
                let timeout = d.cacheTimeout(cacheable: cacheable)
                entry.attr_timeout = timeout
                entry.entry_timeout = timeout
                fuse_reply_entry(req, &entry)
            } catch {
                fuse_reply_err(req, error.errno)
            }
        }

        ops.getattr = { req, ino, _ in
            let d = Dispatcher.from(req)
            do throws(FSError) {
                let (node, cacheable) = try d.tree.nodeEntry(ino)
                var st = d.attributes(of: node)
                if let errno = d.consult(.getattr, ino) { throw FSError(errno, "injected") }
                fuse_reply_attr(req, &st, d.cacheTimeout(cacheable: cacheable))
            } catch {
                d.fail(req, error, "getattr", ino)
            }
        }

        ops.setattr = { req, ino, attr, toSet, _ in
            let d = Dispatcher.from(req)
            do throws(FSError) {
                let node = try d.tree.node(ino)
                if let errno = d.consult(.setattr, ino) { throw FSError(errno, "injected") }
                let timeBits = FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_ATIME_NOW
                    | FUSE_SET_ATTR_MTIME_NOW | FUSE_SET_ATTR_CTIME
                let ownerBits = FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID
                if toSet & ~(FUSE_SET_ATTR_SIZE | timeBits | ownerBits) != 0 {
                    throw FSError(EPERM, "only mode, owner, size and times can be set")
                }
                if toSet & FUSE_SET_ATTR_SIZE != 0 {
                    guard case .file(let content) = node.kind else { throw FSError(EISDIR, "cannot truncate a directory") }
                    try content.truncate(node)
                }
                // As kernfs: root may chmod and chown attributes (the kernel checked who asks).
                if toSet & FUSE_SET_ATTR_MODE != 0 { node.setPermissions(UInt32(attr!.pointee.st_mode)) }
                if toSet & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID) != 0 {
                    node.setOwner(uid: toSet & FUSE_SET_ATTR_UID != 0 ? attr!.pointee.st_uid : nil,
                                  gid: toSet & FUSE_SET_ATTR_GID != 0 ? attr!.pointee.st_gid : nil,
                                  defaultUID: d.uid, defaultGID: d.gid)
                }
                var st = d.attributes(of: node)
                fuse_reply_attr(req, &st, d.cacheTimeout(cacheable: true))
            } catch {
                d.fail(req, error, "setattr", ino)
            }
        }

        ops.readlink = { req, ino in
            let d = Dispatcher.from(req)
            do throws(FSError) {
                if let errno = d.consult(.readlink, ino) { throw FSError(errno, "injected") }
                guard case .symlink(let target) = try d.tree.node(ino).kind else {
                    throw FSError(EINVAL, "not a symbolic link")
                }
                fuse_reply_readlink(req, target)
            } catch {
                d.fail(req, error, "readlink", ino)
            }
        }

        ops.open = { req, ino, fi in
            let d = Dispatcher.from(req)
            do throws(FSError) {
                let node = try d.tree.node(ino)
                guard case .file(let content) = node.kind else { throw FSError(EISDIR, "is a directory") }
                if let errno = d.consult(.open, ino) { throw FSError(errno, "injected") }
                let flags = fi!.pointee.flags
                let file = try content.open(node, access: OpenAccess(openFlags: flags))
                if flags & O_TRUNC != 0 { try content.truncate(node) }
                fi!.pointee.fh = retain(FileHandleBox(file))
                fi!.pointee.direct_io = 1
                fi!.pointee.keep_cache = 0
                if fuse_reply_open(req, fi) != 0 {
                    // The opener was interrupted: the kernel will not send release.
                    take(fi!.pointee.fh, as: FileHandleBox.self).file.release()
                }
            } catch {
                d.fail(req, error, "open", ino)
            }
        }

        ops.read = { req, ino, size, offset, fi in
            let box = borrow(fi!.pointee.fh, as: FileHandleBox.self)
            var replied = false
            do throws(FSError) {
                var limit = size
                if let errno = Dispatcher.from(req).consult(.read, ino, shortRead: &limit) { throw FSError(errno, "injected") }
                try box.file.read(offset: Int(offset), size: min(size, max(limit, 0))) { bytes in
                    replied = true
                    fuse_reply_buf(req, bytes.baseAddress, bytes.count)
                }
                if !replied { fuse_reply_buf(req, nil, 0) }
            } catch {
                if !replied { Dispatcher.from(req).fail(req, error, "read", ino) }
            }
        }

        ops.write = { req, ino, buf, size, offset, fi in
            let box = borrow(fi!.pointee.fh, as: FileHandleBox.self)
            do throws(FSError) {
                let d = Dispatcher.from(req)
                if let errno = d.consult(.write, ino) { throw FSError(errno, "injected") }
                let pending = PendingRequest(req: req)
                // A store that blocks in the kernel (remove of a device in use) answers later, from whoever finishes it.
                let later: @Sendable (Result<Int, FSError>) -> Void = { result in
                    d.replyAfterInvalidations(pending.req) { r in
                        switch result {
                        case .success(let n): fuse_reply_write(r, n)
                        case .failure(let error): d.fail(r, error, "write", ino, loud: true)
                        }
                    }
                }
                guard let written = try box.file.write(offset: Int(offset), data: UnsafeRawBufferPointer(start: buf, count: size), later: later) else { return }
                // Writes are what change the tree (create, remove, surprise removal).
                d.replyAfterInvalidations(req) { fuse_reply_write($0, written) }
            } catch {
                let d = Dispatcher.from(req)
                d.replyAfterInvalidations(req) { d.fail($0, error, "write", ino, loud: true) }
            }
        }

        ops.release = { req, _, fi in
            take(fi!.pointee.fh, as: FileHandleBox.self).file.release()
            fuse_reply_err(req, 0)
        }

        ops.opendir = { req, ino, fi in
            let d = Dispatcher.from(req)
            do throws(FSError) {
                if let errno = d.consult(.readdir, ino) { throw FSError(errno, "injected") }
                let entries = try d.tree.entries(of: ino)
                var listing: [(name: String, ino: Inode, type: mode_t)] = [
                    (".", ino, S_IFDIR), ("..", d.tree.parent(of: ino), S_IFDIR),
                ]
                listing.reserveCapacity(entries.count + 2)
                for (name, node) in entries {
                    let type: mode_t
                    switch node.kind {
                    case .directory: type = S_IFDIR
                    case .symlink: type = S_IFLNK
                    case .file: type = S_IFREG
                    }
                    listing.append((name, node.ino, type))
                }
                fi!.pointee.fh = retain(DirectoryListing(listing))
                if fuse_reply_open(req, fi) != 0 { _ = take(fi!.pointee.fh, as: DirectoryListing.self) }
            } catch {
                d.fail(req, error, "opendir", ino)
            }
        }

        ops.readdir = { req, _, size, offset, fi in
            let listing = borrow(fi!.pointee.fh, as: DirectoryListing.self)
            withUnsafeTemporaryAllocation(of: CChar.self, capacity: max(size, 1)) { buffer in
                var used = 0
                var index = Int(offset)
                var st = stat()
                while index < listing.entries.count {
                    let entry = listing.entries[index]
                    st.st_ino = ino_t(entry.ino)
                    st.st_mode = entry.type
                    let need = fuse_add_direntry(req, buffer.baseAddress! + used, size - used, entry.name, &st, off_t(index + 1))
                    if need > size - used { break }
                    used += need
                    index += 1
                }
                fuse_reply_buf(req, buffer.baseAddress, used)
            }
        }

        ops.releasedir = { req, _, fi in
            _ = take(fi!.pointee.fh, as: DirectoryListing.self)
            fuse_reply_err(req, 0)
        }

        // sysfs has no create, mkdir, unlink, rename or link: the VFS answers
        // EACCES for creating a file and EPERM for the rest.
        ops.create = { req, _, _, _, _ in refuse(req, EACCES) }
        ops.mknod = { req, _, _, _, _ in refuse(req, EPERM) }
        ops.mkdir = { req, _, _, _ in refuse(req, EPERM) }
        ops.unlink = { req, _, _ in refuse(req, EPERM) }
        ops.rmdir = { req, _, _ in refuse(req, EPERM) }
        ops.symlink = { req, _, _, _ in refuse(req, EPERM) }
        ops.rename = { req, _, _, _, _, _ in refuse(req, EPERM) }
        ops.link = { req, _, _, _ in refuse(req, EPERM) }
        return ops
    }()
}
