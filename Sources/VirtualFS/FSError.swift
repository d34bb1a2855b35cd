#if canImport(Glibc)
import Glibc
#endif

/// A refused file operation: the errno the kernel would return, and a sentence
/// for logs that says what was wrong and what to do.
///
/// The errno is what a client sees; the reason goes to the daemon's log, since
/// a file system has no other channel back to the caller.
public struct FSError: Error, Sendable, Equatable, CustomStringConvertible {
    public let errno: Int32
    public let reason: String

    public init(_ errno: Int32, _ reason: String = "") {
        self.errno = errno
        self.reason = reason
    }

    /// `ENOENT`: no such file or directory.
    public static func noEntry(_ reason: String = "") -> FSError { FSError(ENOENT, reason) }
    /// `EACCES`: the file does not allow this kind of access.
    public static func accessDenied(_ reason: String = "") -> FSError { FSError(EACCES, reason) }
    /// `EINVAL`: the written value is not acceptable.
    public static func invalid(_ reason: String = "") -> FSError { FSError(EINVAL, reason) }
    /// `ENODEV`: the object behind an open file has gone away.
    public static func gone(_ reason: String = "") -> FSError { FSError(ENODEV, reason) }

    /// The errno of a C name (`"EIO"`), if known.
    public static func errno(named name: String) -> Int32? {
        errnoNames.first { $0.value == name }?.key
    }

    /// The C name of the errno (`ENOENT`), for messages.
    public var name: String { FSError.errnoNames[errno] ?? "errno \(errno)" }

    public var description: String {
        let text = String(cString: strerror(errno))
        return reason.isEmpty ? "\(name) (\(text))" : "\(name) (\(text)): \(reason)"
    }

    static let errnoNames: [Int32: String] = [
        EPERM: "EPERM", ENOENT: "ENOENT", EIO: "EIO", E2BIG: "E2BIG", EAGAIN: "EAGAIN",
        ENOMEM: "ENOMEM", EACCES: "EACCES", EFAULT: "EFAULT", EBUSY: "EBUSY", EEXIST: "EEXIST",
        ENODEV: "ENODEV", ENOTDIR: "ENOTDIR", EISDIR: "EISDIR", EINVAL: "EINVAL", ENOSPC: "ENOSPC",
        ESPIPE: "ESPIPE", EROFS: "EROFS", ERANGE: "ERANGE", ENOSYS: "ENOSYS", ENOTEMPTY: "ENOTEMPTY",
        ENOMSG: "ENOMSG", ENOTTY: "ENOTTY", EUSERS: "EUSERS", ENOTSUP: "ENOTSUP",
    ]
}
