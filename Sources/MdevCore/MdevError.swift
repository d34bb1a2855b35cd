#if canImport(Glibc)
import Glibc
#endif

/// A refused mdev operation: the errno the kernel returns for it and a message
/// that says what was wrong and what to do.
public struct MdevError: Error, Sendable, Equatable, CustomStringConvertible {
    public let errno: Int32
    public let message: String

    public init(_ errno: Int32, _ message: String) {
        self.errno = errno
        self.message = message
    }

    public var description: String { message }

    static func invalid(_ message: String) -> MdevError { MdevError(EINVAL, message) }
    static func exists(_ message: String) -> MdevError { MdevError(EEXIST, message) }
    static func noSpace(_ message: String) -> MdevError { MdevError(ENOSPC, message) }
    static func noDevice(_ message: String) -> MdevError { MdevError(ENODEV, message) }
}
