import Foundation
import StateStream

/// `mdevsim migrate`: a live migration between two devices through their files,
/// as a VMM would drive it.
public enum Migrator {
    public struct Options {
        public var maxDowntimeMS = 300.0
        public var bandwidthMBps = 1000.0
        public var maxIterations = 10
        public var progress: ((String) -> Void)?
        /// For tests: fail on purpose when reaching the named step.
        public var failAt: String?
        public init() {}
    }

    public struct Report: Encodable {
        public var iterations: [Int] = []
        public var dirtyAfter: [Int] = []
        public var finalBytes = 0
        public var totalBytes = 0
        public var converged = false
        public var simulatedDowntimeMS = 0.0
        public var measuredDowntimeMS = 0.0
        public var totalSeconds = 0.0
        /// nil when a side has no state_digest (a real device): nothing to compare.
        public var digestsEqual: Bool?
        enum CodingKeys: String, CodingKey {
            case iterations = "precopy_bytes_per_iteration", dirtyAfter = "dirty_bytes_after_iteration", finalBytes = "stop_copy_bytes"
            case totalBytes = "total_bytes", converged, simulatedDowntimeMS = "simulated_downtime_ms"
            case measuredDowntimeMS = "measured_downtime_ms", totalSeconds = "total_seconds", digestsEqual = "digests_equal"
        }
    }

    public static func migrate(from src: DeviceHandle, to dst: DeviceHandle, _ o: Options) throws -> Report {
        guard src.migrationProtocol == .v2, dst.migrationProtocol == .v2 else {
            throw ToolError("migrate drives the v2 protocol; \(src.migrationProtocol == .v1 ? src.path : dst.path) is a v1 device (use record and replay)", exitCode: 2)
        }
        guard src.path != dst.path else { throw ToolError("source and destination are the same device", exitCode: 2) }
        var report = Report()
        var step = "compatibility check"
        let started = Date()
        func at(_ name: String) throws {
            step = name
            o.progress?(name)
            try Interruption.check()
            if o.failAt == name { throw ToolError("failure injected at this step") }
        }
        do {
            try at("compatibility check")
            if src.migrationVersion == nil && (src.isExternal || dst.isExternal) {
                // Real VFIO devices have no migration_version: their driver checks the stream itself while resuming.
                o.progress?("compatibility not checked beforehand: a real device exposes no migration_version; its driver checks the stream while resuming")
            } else {
                guard let version = src.migrationVersion else { throw ToolError("the source has no migration_version") }
                do { try FileIO.writeText(dst.path + "/sysfs/migration_version", version) } catch {
                    let reason = ((try? dst.read("migration/error")) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
                    throw ToolError(reason.isEmpty ? "the destination refused the source's migration_version" : reason)
                }
            }
            try at("destination to RESUMING")
            try dst.write("migration/state", "RESUMING")
            let sink = try DataStream(dst, write: true)
            var buffer = [UInt8](repeating: 0, count: 1 << 20)
            /// Moves data from source to destination: up to `limit` bytes (one
            /// pre-copy pass: what was pending when it began), ENOMSG, or the end.
            let bytes = ByteProgress(o.progress)
            func forward(_ data: DataStream, limit: Int = .max) throws -> (Int, Bool) {
                var total = 0
                while total < limit {
                    try Interruption.check()
                    switch try data.read(into: &buffer) {
                    case .data(let n):
                        try buffer.withUnsafeBytes { try sink.write(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
                        total += n
                        bytes.add(n)
                    case .drained: return (total, false)
                    case .end: return (total, true)
                    }
                }
                return (total, false)
            }
            let features = try src.read("migration/features")
            var source: DataStream?
            if features.contains("pre_copy") {
                try at("source to PRE_COPY")
                try src.write("migration/state", "PRE_COPY")
                source = try DataStream(src, write: false)
                let budget = o.bandwidthMBps * 1e6 * o.maxDowntimeMS / 1000
                for i in 1...max(1, o.maxIterations) {
                    try at("pre-copy iteration \(i)")
                    bytes.label = "pre-copy iteration \(i)"
                    let pending = try src.precopyInfo()
                    let (n, _) = try forward(source!, limit: max(1, pending.initial + pending.dirty))
                    let dirty = try src.precopyInfo().dirty
                    report.iterations.append(n)
                    report.dirtyAfter.append(dirty)
                    o.progress?("pre-copy iteration \(i): \(n) bytes sent, \(dirty) dirty bytes remain")
                    if Double(dirty) <= budget { report.converged = true; break }
                }
            }
            try at("source to STOP_COPY")
            bytes.label = "stop-and-copy"
            let stopped = Date()
            try src.write("migration/state", "STOP_COPY")
            if source == nil { source = try DataStream(src, write: false) }
            try at("stop-and-copy")
            let (final, ended) = try forward(source!)
            guard ended else { throw ToolError("the source did not end its stream") }
            report.finalBytes = final
            try at("destination loads the state (RESUMING to STOP)")
            try dst.write("migration/state", "STOP")
            // Both sides are frozen now: prove they hold the same state. The check
            // is not part of the downtime a VMM would see.
            let checking = Date()
            let (a, b) = (src.digest, dst.digest)
            report.digestsEqual = a.isEmpty || b.isEmpty ? nil : a == b
            let checkTime = Date().timeIntervalSince(checking)
            guard report.digestsEqual != false else { throw ToolError("the destination's state_digest differs from the source's after loading") }
            try at("destination to RUNNING")
            try dst.write("migration/state", "RUNNING")
            report.measuredDowntimeMS = (Date().timeIntervalSince(stopped) - checkTime) * 1000
            try at("source released (STOP)")
            try src.write("migration/state", "STOP")
        } catch {
            // The source must keep running; the destination must not.
            try? src.write("migration/state", "RUNNING")
            if src.state != "RUNNING" { try? src.write("reset", "1") }
            try? dst.write("reset", "1")
            throw ToolError("migration failed at step '\(step)': \(error); the source is \(src.state), the destination was reset",
                            exitCode: (error as? ToolError)?.exitCode ?? 1)
        }
        report.totalBytes = report.iterations.reduce(0, +) + report.finalBytes
        report.simulatedDowntimeMS = Double(report.finalBytes) / (o.bandwidthMBps * 1e6) * 1000
        report.totalSeconds = Date().timeIntervalSince(started)
        return report
    }
}

/// `mdevsim compat`: whether SRC can migrate to DST, rule by rule.
public enum Compat {
    public enum Kind: String, Encodable { case device, type, blob }

    public struct Endpoint {
        public let argument: String
        public let kind: Kind
        public let version: String
        /// Where a source's migration_version can be written to check for real.
        public let versionFile: String?
    }

    public static func endpoint(_ argument: String) throws -> Endpoint {
        let fm = FileManager.default
        if let dev = try? DeviceHandle(argument), let v = dev.migrationVersion {
            return Endpoint(argument: argument, kind: .device, version: v, versionFile: dev.path + "/sysfs/migration_version")
        }
        var isDir: ObjCBool = false
        if fm.fileExists(atPath: argument, isDirectory: &isDir), isDir.boolValue,
           fm.fileExists(atPath: argument + "/create"), let v = try? FileIO.readText(argument + "/migration_version") {
            return Endpoint(argument: argument, kind: .type, version: v, versionFile: argument + "/migration_version")
        }
        if fm.fileExists(atPath: argument) || argument == "-" {
            let bytes = try FileIO.readAll(argument)
            let a = BlobAnalysis(Array(bytes.prefix(64 << 10)))
            guard let h = a.header else { throw ToolError("\(argument) is neither a device, a type nor a blob with a readable header", exitCode: 2) }
            let line = ([h.model, h.driverVersion] + h.parameters.map { "\($0.name)=\($0.value)" }).joined(separator: ";") + "\n"
            return Endpoint(argument: argument, kind: .blob, version: line, versionFile: nil)
        }
        throw ToolError("\(argument) does not exist", exitCode: 2)
    }

    public struct Rule: Encodable {
        public let rule: String
        public let ok: Bool
        public let detail: String
    }

    public struct Verdict: Encodable {
        public let source: String
        public let destination: String
        public let compatible: Bool
        public let rules: [Rule]
        /// Smaller is a better match among compatible destinations (bugfix distance).
        public let rank: Int
    }

    static func fields(_ version: String) -> (model: String, version: String, params: [(String, String)]) {
        let parts = version.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: ";", omittingEmptySubsequences: false).map(String.init)
        let params = parts.dropFirst(2).compactMap { p -> (String, String)? in
            guard let eq = p.firstIndex(of: "=") else { return nil }
            return (String(p[..<eq]), String(p[p.index(after: eq)...]))
        }
        return (parts.first ?? "", parts.count > 1 ? parts[1] : "", params)
    }

    /// The rules of `StateStream.Compatibility` (one definition of compatible: the one a
    /// resume applies), explained, ranked by version distance, with the type mismatch
    /// explained when the resources agree, and the destination's own verdict on its
    /// migration_version when it has one.
    public static func check(_ s: Endpoint, _ d: Endpoint) -> Verdict {
        let a = fields(s.version), b = fields(d.version)
        let source = StreamHeader(model: a.model, driverVersion: a.version, parameters: a.params.map { (name: $0.0, value: $0.1) })
        let destination = StreamHeader(model: b.model, driverVersion: b.version, parameters: b.params.map { (name: $0.0, value: $0.1) })
        var rules = Compatibility.checks(source: source, destination: destination).map { c in
            var detail = c.detail
            if c.rule == "parameter type", !c.ok, let same = sameResources(a.params, b.params) { detail += "; \(same)" }
            return Rule(rule: c.rule, ok: c.ok, detail: detail)
        }
        var rank = 0
        if let va = SemanticVersion(a.version), let vb = SemanticVersion(b.version) {
            rank = abs(va.minor - vb.minor) * 1000 + abs(va.patch - vb.patch)
        }
        if let file = d.versionFile {
            do {
                try FileIO.writeText(file, s.version)
                rules.append(Rule(rule: "migration_version write", ok: true, detail: "the destination accepted the source's migration_version"))
            } catch let e as FileIO.Failure {
                rules.append(Rule(rule: "migration_version write", ok: false, detail: "the destination refused it: \(e.text)"))
            } catch {
                rules.append(Rule(rule: "migration_version write", ok: false, detail: "\(error)"))
            }
        }
        return Verdict(source: s.argument, destination: d.argument, compatible: rules.allSatisfy(\.ok), rules: rules, rank: rank)
    }

    /// "a V5_4 aggregated ×2 has the resources of a V5_2": explains a type mismatch
    /// whose graphics memory and fences are equal.
    static func sameResources(_ a: [(String, String)], _ b: [(String, String)]) -> String? {
        let da = Dictionary(a, uniquingKeysWith: { x, _ in x }), db = Dictionary(b, uniquingKeysWith: { x, _ in x })
        let keys = ["low_gm_mb", "high_gm_mb"]
        guard keys.allSatisfy({ da[$0] != nil && da[$0] == db[$0] }) else { return nil }
        let fences = da["fences"] == db["fences"] ? "" : " (fences \(da["fences"] ?? "?") vs \(db["fences"] ?? "?"))"
        return "same graphics memory: \(da["type"] ?? "?") ×\(da["aggregation"] ?? "1") equals \(db["type"] ?? "?") ×\(db["aggregation"] ?? "1")\(fences), but the saved state is laid out per type, so the types must match"
    }

    public static func text(_ v: Verdict) -> String {
        var out = "\(v.source) → \(v.destination): \(v.compatible ? "compatible" : "NOT compatible")\n"
        for r in v.rules {
            out += "  [\(r.ok ? "ok" : "FAIL")] " + r.rule.padding(toLength: 26, withPad: " ", startingAt: 0) + r.detail + "\n"
        }
        return out
    }
}
