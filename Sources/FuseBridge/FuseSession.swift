import Synchronization
import CFuse
import Foundation
import Logging
import VirtualFS

/// Why a mount could not be made.
public struct MountError: Error, CustomStringConvertible {
    public let description: String
}

/// A VirtualFS tree mounted through libfuse's low-level API.
///
/// `run()` serves requests until the file system is unmounted or a signal
/// installed by `installSignalHandlers()` arrives; `stop()` ends it from
/// another thread.
public final class FuseSession: @unchecked Sendable {
    public let mountpoint: String
    let session: OpaquePointer
    let dispatcher: Dispatcher
    let options: MountOptions
    private var signalsInstalled = false
    private let stopped = NSLock()
    private var isStopped = false

    public init(tree: Tree, mountpoint: String, options: MountOptions = MountOptions(), logger: Logger) throws {
        self.mountpoint = mountpoint
        self.options = options
        let dispatcher = Dispatcher(tree: tree, logger: logger, cacheSeconds: options.entryCacheSeconds)
        self.dispatcher = dispatcher
        self.tree = tree

        let cStrings = options.fuseArguments.map { strdup($0) }
        defer { cStrings.forEach { free($0) } }
        var argv = cStrings
        let made: OpaquePointer? = argv.withUnsafeMutableBufferPointer { buffer in
            var args = mdevsim_fuse_args(Int32(buffer.count), buffer.baseAddress)
            var ops = Bridge.operations
            let se = fuse_session_new(&args, &ops, MemoryLayout<fuse_lowlevel_ops>.size,
                                      Unmanaged.passUnretained(dispatcher).toOpaque())
            fuse_opt_free_args(&args)
            return se
        }
        guard let se = made else {
            throw MountError(description: "libfuse refused the session options \(options.fuseArguments.dropFirst().joined(separator: " "))")
        }
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: mountpoint, isDirectory: &isDir), isDir.boolValue else {
            fuse_session_destroy(se)
            throw MountError(description: "mount point \(mountpoint) is not an existing directory; create it first (mkdir -p \(mountpoint))")
        }
        let socketsBefore = options.autoUnmount ? FuseSession.socketDescriptors() : []
        guard fuse_session_mount(se, mountpoint) == 0 else {
            fuse_session_destroy(se)
            throw MountError(description: "could not mount on \(mountpoint): is /dev/fuse usable and fusermount3 installed (apt-get install fuse3)? Is something already mounted there (mdevsim unmount \(mountpoint))?")
        }
        session = se
        if options.autoUnmount {
            FuseSession.orderWatchdogAfterDevice(device: fuse_session_fd(se), sockets: FuseSession.socketDescriptors().subtracting(socketsBefore))
        }
        if options.entryCacheSeconds > 0 { invalidateRemovals(se) }
    }

    let tree: Tree
    private var invalidator: Invalidator?

    /// With an entry cache, a removed entry must leave the kernel's cache
    /// before the write that removed it returns, or a client could still stat
    /// it; `Invalidator` does it without a lock held or a worker waiting.
    private func invalidateRemovals(_ se: OpaquePointer) {
        let invalidator = Invalidator(session: se)
        self.invalidator = invalidator
        dispatcher.invalidator = invalidator
        tree.onRemovals { removals in invalidator.enqueue(removals) }
    }

    /// The unix sockets this process has open.
    static func socketDescriptors() -> Set<Int32> {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
        return Set(entries.compactMap { name -> Int32? in
            guard let fd = Int32(name) else { return nil }
            var buffer = [CChar](repeating: 0, count: 64)
            let n = readlink("/proc/self/fd/\(name)", &buffer, buffer.count - 1)
            guard n > 0 else { return nil }
            return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self).hasPrefix("socket:") ? fd : nil
        })
    }

    /// auto_unmount's watchdog (fusermount3) unmounts when its socket to us
    /// reads EOF, after checking the mount point. If that EOF arrives while
    /// our /dev/fuse file is still open, the check runs against a live
    /// connection whose daemon is dying, fails, and the watchdog exits without
    /// unmounting: a stale mount after kill -9 (seen in 15 of 100 kills under
    /// load). A copy of the /dev/fuse descriptor numbered above the watchdog's
    /// socket makes the connection go away before the watchdog wakes (0 of 200
    /// kills since; a copy of the socket above /dev/fuse changed nothing, so a
    /// dying process's files appear to be released last-in first-out).
    static func orderWatchdogAfterDevice(device: Int32, sockets: Set<Int32>) {
        guard device >= 0, let highest = sockets.max(), highest > device else { return }
        // Kept open for the life of the process, deliberately.
        _ = fcntl(device, F_DUPFD_CLOEXEC, highest + 1)
    }

    /// Makes SIGINT, SIGTERM and SIGHUP end `run()` cleanly. Process-wide: only
    /// for the daemon's main loop, never for mounts inside tests.
    public func installSignalHandlers() {
        // A parent may have left these blocked (a thread pool's mask is
        // inherited through fork/exec); then SIGTERM would never arrive.
        var set = sigset_t()
        sigemptyset(&set)
        for signal in [SIGINT, SIGTERM, SIGHUP] { sigaddset(&set, signal) }
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
        if fuse_set_signal_handlers(session) == 0 { signalsInstalled = true }
    }

    /// Serves requests until unmounted or signalled, then unmounts.
    @discardableResult
    public func run() -> Int32 {
        let rc: Int32
        if options.singleThreaded {
            rc = fuse_session_loop(session)
        } else {
            let config = fuse_loop_cfg_create()
            fuse_loop_cfg_set_max_threads(config, options.maxThreads)
            rc = fuse_session_loop_mt(session, config)
            fuse_loop_cfg_destroy(config)
        }
        if signalsInstalled { fuse_remove_signal_handlers(session) }
        // After stop() the mount is already detached; unmounting again only prints an error.
        let detached = stopped.withLock { isStopped }
        if !detached { fuse_session_unmount(session) }
        return rc
    }

    /// Ends `run()` from another thread: a lazy unmount wakes the loop, which
    /// `fuse_session_exit` alone would not.
    public func stop() {
        stopped.lock()
        defer { stopped.unlock() }
        guard !isStopped else { return }
        isStopped = true
        fuse_session_exit(session)
        Unmounter.detach(mountpoint)
    }

    deinit {
        tree.onRemovals(nil)
        invalidator?.drain()   // no invalidation or reply may outlive the session
        fuse_session_destroy(session)
    }
}

/// Unmounting, shared by the CLI and the session.
public enum Unmounter {
    /// Lazily unmounts `path`; falls back to fusermount3 for unprivileged users.
    /// Returns nil on success or the reason it failed.
    @discardableResult
    public static func detach(_ path: String) -> String? {
        if umount2(path, Int32(MNT_DETACH)) == 0 { return nil }
        let err = errno
        if err == EINVAL { return "\(path) is not a mount point" }
        if err == ENOENT { return "\(path) does not exist" }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/fusermount3")
        process.arguments = ["-u", "-z", path]
        process.standardError = FileHandle.nullDevice
        do {
            try process.run()
            process.waitUntilExit()
            if process.terminationStatus == 0 { return nil }
        } catch {}
        return "cannot unmount \(path): \(String(cString: strerror(err)))"
    }
}

/// A session served on a background thread; for tests and tools that mount
/// inside their own process. `stop()` (or deinit) unmounts and waits, once,
/// whichever thread calls it first.
public final class BackgroundMount: Sendable {
    public let session: FuseSession
    private let done = DispatchSemaphore(value: 0)
    private let joined = Atomic<Bool>(false)

    public init(tree: Tree, mountpoint: String, options: MountOptions = MountOptions(), logger: Logger) throws {
        session = try FuseSession(tree: tree, mountpoint: mountpoint, options: options, logger: logger)
        let session = self.session
        let done = self.done
        let thread = Thread {
            session.run()
            done.signal()
        }
        thread.name = "fuse-loop"
        thread.start()
    }

    public func stop() {
        guard !joined.exchange(true, ordering: .acquiringAndReleasing) else { return }
        session.stop()
        done.wait()
    }

    deinit { stop() }
}
