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
    public static func errno(named name: String) -> Int32? { errnoValues[name.uppercased()] }

    /// The C name of the errno (`ENOENT`), for messages.
    public var name: String { FSError.errnoNames[errno] ?? "errno \(errno)" }

    public var description: String {
        let text = String(cString: strerror(errno))
        return reason.isEmpty ? "\(name) (\(text))" : "\(name) (\(text)): \(reason)"
    }

    /// Every errno Linux defines (asm-generic/errno-base.h and errno.h), by
    /// value; the one table of names (ENOTSUP is EOPNOTSUPP on Linux).
    public static let errnoNames: [Int32: String] = [
        EPERM: "EPERM", ENOENT: "ENOENT", ESRCH: "ESRCH", EINTR: "EINTR", EIO: "EIO",
        ENXIO: "ENXIO", E2BIG: "E2BIG", ENOEXEC: "ENOEXEC", EBADF: "EBADF", ECHILD: "ECHILD",
        EAGAIN: "EAGAIN", ENOMEM: "ENOMEM", EACCES: "EACCES", EFAULT: "EFAULT", ENOTBLK: "ENOTBLK",
        EBUSY: "EBUSY", EEXIST: "EEXIST", EXDEV: "EXDEV", ENODEV: "ENODEV", ENOTDIR: "ENOTDIR",
        EISDIR: "EISDIR", EINVAL: "EINVAL", ENFILE: "ENFILE", EMFILE: "EMFILE", ENOTTY: "ENOTTY",
        ETXTBSY: "ETXTBSY", EFBIG: "EFBIG", ENOSPC: "ENOSPC", ESPIPE: "ESPIPE", EROFS: "EROFS",
        EMLINK: "EMLINK", EPIPE: "EPIPE", EDOM: "EDOM", ERANGE: "ERANGE", EDEADLK: "EDEADLK",
        ENAMETOOLONG: "ENAMETOOLONG", ENOLCK: "ENOLCK", ENOSYS: "ENOSYS", ENOTEMPTY: "ENOTEMPTY", ELOOP: "ELOOP",
        ENOMSG: "ENOMSG", EIDRM: "EIDRM", ECHRNG: "ECHRNG", EL2NSYNC: "EL2NSYNC", EL3HLT: "EL3HLT",
        EL3RST: "EL3RST", ELNRNG: "ELNRNG", EUNATCH: "EUNATCH", ENOCSI: "ENOCSI", EL2HLT: "EL2HLT",
        EBADE: "EBADE", EBADR: "EBADR", EXFULL: "EXFULL", ENOANO: "ENOANO", EBADRQC: "EBADRQC",
        EBADSLT: "EBADSLT", EBFONT: "EBFONT", ENOSTR: "ENOSTR", ENODATA: "ENODATA", ETIME: "ETIME",
        ENOSR: "ENOSR", ENONET: "ENONET", ENOPKG: "ENOPKG", EREMOTE: "EREMOTE", ENOLINK: "ENOLINK",
        EADV: "EADV", ESRMNT: "ESRMNT", ECOMM: "ECOMM", EPROTO: "EPROTO", EMULTIHOP: "EMULTIHOP",
        EDOTDOT: "EDOTDOT", EBADMSG: "EBADMSG", EOVERFLOW: "EOVERFLOW", ENOTUNIQ: "ENOTUNIQ", EBADFD: "EBADFD",
        EREMCHG: "EREMCHG", ELIBACC: "ELIBACC", ELIBBAD: "ELIBBAD", ELIBSCN: "ELIBSCN", ELIBMAX: "ELIBMAX",
        ELIBEXEC: "ELIBEXEC", EILSEQ: "EILSEQ", ERESTART: "ERESTART", ESTRPIPE: "ESTRPIPE", EUSERS: "EUSERS",
        ENOTSOCK: "ENOTSOCK", EDESTADDRREQ: "EDESTADDRREQ", EMSGSIZE: "EMSGSIZE", EPROTOTYPE: "EPROTOTYPE", ENOPROTOOPT: "ENOPROTOOPT",
        EPROTONOSUPPORT: "EPROTONOSUPPORT", ESOCKTNOSUPPORT: "ESOCKTNOSUPPORT", EOPNOTSUPP: "EOPNOTSUPP", EPFNOSUPPORT: "EPFNOSUPPORT", EAFNOSUPPORT: "EAFNOSUPPORT",
        EADDRINUSE: "EADDRINUSE", EADDRNOTAVAIL: "EADDRNOTAVAIL", ENETDOWN: "ENETDOWN", ENETUNREACH: "ENETUNREACH", ENETRESET: "ENETRESET",
        ECONNABORTED: "ECONNABORTED", ECONNRESET: "ECONNRESET", ENOBUFS: "ENOBUFS", EISCONN: "EISCONN", ENOTCONN: "ENOTCONN",
        ESHUTDOWN: "ESHUTDOWN", ETOOMANYREFS: "ETOOMANYREFS", ETIMEDOUT: "ETIMEDOUT", ECONNREFUSED: "ECONNREFUSED", EHOSTDOWN: "EHOSTDOWN",
        EHOSTUNREACH: "EHOSTUNREACH", EALREADY: "EALREADY", EINPROGRESS: "EINPROGRESS", ESTALE: "ESTALE", EUCLEAN: "EUCLEAN",
        ENOTNAM: "ENOTNAM", ENAVAIL: "ENAVAIL", EISNAM: "EISNAM", EREMOTEIO: "EREMOTEIO", EDQUOT: "EDQUOT",
        ENOMEDIUM: "ENOMEDIUM", EMEDIUMTYPE: "EMEDIUMTYPE", ECANCELED: "ECANCELED", ENOKEY: "ENOKEY", EKEYEXPIRED: "EKEYEXPIRED",
        EKEYREVOKED: "EKEYREVOKED", EKEYREJECTED: "EKEYREJECTED", EOWNERDEAD: "EOWNERDEAD", ENOTRECOVERABLE: "ENOTRECOVERABLE", ERFKILL: "ERFKILL",
        EHWPOISON: "EHWPOISON",
    ]

    /// The errno of a name, ENOTSUP and EWOULDBLOCK included.
    public static let errnoValues: [String: Int32] = {
        var values = Dictionary(uniqueKeysWithValues: errnoNames.map { ($1, $0) })
        values["ENOTSUP"] = EOPNOTSUPP
        values["EWOULDBLOCK"] = EAGAIN
        values["EDEADLOCK"] = EDEADLK
        return values
    }()
}
