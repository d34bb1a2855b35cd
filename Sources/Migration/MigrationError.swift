import GPUModel
import StateStream

#if canImport(Glibc)
import Glibc
#endif

/// A refused migration operation: the errno and the reason in words (also kept
/// as the device's last error).
public struct MigrationError: Error, Sendable, Equatable, CustomStringConvertible {
    public let errno: Int32
    public let message: String
    public init(_ errno: Int32, _ message: String) {
        self.errno = errno
        self.message = message
    }
    public var description: String { message }
}

/// What a failed RESUMING → STOP leaves: the device as it was (still
/// RESUMING), or ERROR. The uAPI allows either.
public enum ResumeFailurePolicy: String, Sendable {
    case keep
    case error
}
