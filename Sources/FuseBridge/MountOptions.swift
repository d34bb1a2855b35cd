/// How a tree is mounted. Every file is served with direct I/O and zero cache
/// timeouts (the "live" policy a sysfs imitation needs: values are read fresh,
/// created and removed devices are visible at once).
public struct MountOptions: Sendable {
    /// Shown as the source in /proc/mounts (`fsname`).
    public var fsName = "mdevsim"
    /// Mount type becomes `fuse.<subtype>`.
    public var subtype = "mdevsim"
    /// Let users other than the mounting one in (`allow_other`). Off by default:
    /// only the mounting user can use the mount.
    public var allowOther = false
    /// Have fusermount3 unmount if the daemon dies (`auto_unmount`).
    public var autoUnmount = true
    /// Serve requests on one thread (`fuse_session_loop`) instead of a pool.
    public var singleThreaded = false
    /// Upper bound on worker threads of the multi-threaded loop.
    public var maxThreads: UInt32 = 10
    /// Seconds the kernel may cache entries, their attributes and link targets
    /// (0: every lookup reaches the daemon). Removed entries are invalidated
    /// before the removing write returns, so removal is still seen at once; a
    /// file's content is never cached (direct I/O); mirrored entries and,
    /// while fault rules are active, everything are not cached. A second keeps
    /// path walks (mdevctl list over 10,000 vGPUs) and attribute reads from
    /// asking the daemon for every component and attribute every time.
    public var entryCacheSeconds: Double = 1
    /// libfuse's own request trace on stderr (`-d`).
    public var debug = false

    public init() {}

    var fuseArguments: [String] {
        var opts = ["fsname=\(fsName)", "subtype=\(subtype)", "default_permissions"]
        if autoUnmount { opts.append("auto_unmount") }
        if allowOther { opts.append("allow_other") }
        var args = ["mdevsim", "-o", opts.joined(separator: ",")]
        if debug { args.append("-d") }
        return args
    }
}
