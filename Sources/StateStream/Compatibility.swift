/// Whether a destination can load a stream: the three conditions of the VFIO
/// migration proposals (same device model, every parameter known, every value
/// supported) plus the x.y.z rule (no compatibility across major versions;
/// minor versions forward-compatible only).
public enum Compatibility {
    /// One condition, checked: `detail` explains it either way (what `mdevsim compat`
    /// prints), `problem` says why it refuses (what a resume reports), when it does.
    public struct Check: Sendable, Equatable {
        public let rule: String
        public let ok: Bool
        public let detail: String
        public let problem: String?
        init(_ rule: String, ok: Bool, _ detail: String, problem: @autoclosure () -> String) {
            (self.rule, self.ok, self.detail) = (rule, ok, detail)
            self.problem = ok ? nil : problem()
        }
    }

    /// Every condition, in order: model, driver version (major, minor, bugfix), each
    /// parameter the source gives, each the destination needs and the source does not.
    public static func checks(source: StreamHeader, destination: StreamHeader) -> [Check] {
        var out: [Check] = []
        let (sm, dm) = (source.model, destination.model)
        out.append(Check("device model", ok: sm == dm, sm == dm ? "both \(sm)" : "\(sm) vs \(dm): a stream only loads into the same model",
                         problem: "device model '\(sm)' is not the destination's '\(dm)'"))
        if let s = SemanticVersion(source.driverVersion), let d = SemanticVersion(destination.driverVersion) {
            out.append(Check("driver major version", ok: s.major == d.major,
                             s.major == d.major ? "both \(s.major)" : "\(s.major) vs \(d.major): no compatibility across major versions",
                             problem: "driver version \(s) cannot migrate to \(d): major versions differ"))
            // Across majors the minor rule says nothing more.
            let minorOK = s.major != d.major || s.minor <= d.minor
            out.append(Check("driver minor version", ok: minorOK,
                             s.major != d.major ? "\(s.minor) → \(d.minor): not compared across major versions"
                                : s.minor <= d.minor ? "\(s.minor) → \(d.minor): forward or equal" : "\(s.minor) → \(d.minor): a minor version migrates only forward",
                             problem: "driver version \(s) is newer than the destination's \(d): a minor version migrates only forward"))
            out.append(Check("driver bugfix version", ok: true,
                             s.patch == d.patch ? "both \(s.patch)" : "\(s.patch) vs \(d.patch): never blocks; an equal bugfix ranks first", problem: ""))
        } else {
            out.append(Check("driver version", ok: false, "\(source.driverVersion) or \(destination.driverVersion) is not x.y.z",
                             problem: "driver version '\(source.driverVersion)' or '\(destination.driverVersion)' is not x.y.z"))
        }
        let supported = Dictionary(destination.parameters.map { ($0.name, $0.value) }, uniquingKeysWith: { a, _ in a })
        for p in source.parameters {
            guard let mine = supported[p.name] else {
                out.append(Check("parameter \(p.name)", ok: false, "\(p.name)=\(p.value) is unknown to the destination",
                                 problem: "migration parameter '\(p.name)' is unknown to the destination"))
                continue
            }
            out.append(Check("parameter \(p.name)", ok: mine == p.value, mine == p.value ? "\(p.name)=\(p.value)" : "\(p.name)=\(p.value) vs \(p.name)=\(mine)",
                             problem: "migration parameter \(p.name)=\(p.value) is not supported by the destination (it has \(p.name)=\(mine))"))
        }
        for p in destination.parameters where source.parameter(p.name) == nil {
            out.append(Check("parameter \(p.name)", ok: false, "the destination needs \(p.name)=\(p.value), which the source does not give",
                             problem: "the stream does not give migration parameter '\(p.name)' that the destination needs (\(p.name)=\(p.value))"))
        }
        return out
    }

    /// Reasons the stream described by `source` cannot be loaded by a
    /// destination described by `destination`; empty when compatible.
    public static func problems(source: StreamHeader, destination: StreamHeader) -> [String] {
        checks(source: source, destination: destination).compactMap(\.problem)
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
