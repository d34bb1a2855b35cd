/// Whether a destination can load a stream: the three conditions of the VFIO
/// migration proposals (same device model, every parameter known, every value
/// supported) plus the x.y.z rule (no compatibility across major versions;
/// minor versions forward-compatible only).
public enum Compatibility {
    /// Reasons the stream described by `source` cannot be loaded by a
    /// destination described by `destination`; empty when compatible.
    public static func problems(source: StreamHeader, destination: StreamHeader) -> [String] {
        var out: [String] = []
        if source.model != destination.model {
            out.append("device model '\(source.model)' is not the destination's '\(destination.model)'")
        }
        if let s = SemanticVersion(source.driverVersion), let d = SemanticVersion(destination.driverVersion) {
            if s.major != d.major {
                out.append("driver version \(s) cannot migrate to \(d): major versions differ")
            } else if s.minor > d.minor {
                out.append("driver version \(s) is newer than the destination's \(d): a minor version migrates only forward")
            }
        } else {
            out.append("driver version '\(source.driverVersion)' or '\(destination.driverVersion)' is not x.y.z")
        }
        let supported = Dictionary(destination.parameters.map { ($0.name, $0.value) }, uniquingKeysWith: { a, _ in a })
        for p in source.parameters {
            guard let mine = supported[p.name] else {
                out.append("migration parameter '\(p.name)' is unknown to the destination")
                continue
            }
            if mine != p.value {
                out.append("migration parameter \(p.name)=\(p.value) is not supported by the destination (it has \(p.name)=\(mine))")
            }
        }
        for p in destination.parameters where source.parameter(p.name) == nil {
            out.append("the stream does not give migration parameter '\(p.name)' that the destination needs (\(p.name)=\(p.value))")
        }
        return out
    }
}

public struct SemanticVersion: Sendable, Equatable, CustomStringConvertible {
    public let major: Int, minor: Int, patch: Int
    public init?(_ text: String) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false).map { Int($0) }
        guard parts.count == 3, let a = parts[0], let b = parts[1], let c = parts[2], a >= 0, b >= 0, c >= 0 else { return nil }
        (major, minor, patch) = (a, b, c)
    }
    public var description: String { "\(major).\(minor).\(patch)" }
}
