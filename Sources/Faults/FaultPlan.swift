import Foundation
import Migration
import VirtualFS
import SafeYAML
import Yams

/// One fault rule: where (an operation on a path pattern), what (an errno, a
/// delay, a short read) and when (every time, once, every Nth, after N, with a
/// seeded probability).
public struct FaultRule: Codable, Sendable, Equatable {
    public var name: String
    /// Glob over paths relative to the mount: `*` within one component, `**` across.
    public var path: String
    /// The operation, or "any".
    public var op: String = "any"
    public var errno: String?
    public var delayMS: Int?
    public var shortRead: Int?
    public var once: Bool?
    public var every: Int?
    public var after: Int?
    public var probability: Double?
    public var seed: UInt64?
    /// A time window, in ms since the rule was added: it fires only from `from_ms` until `until_ms`.
    public var fromMS: Int?
    public var untilMS: Int?
    /// Device rules: which devices (a glob on the UUID) ...
    public var device: String?
    /// ... and what: an arc `FROM>TO` (`*` for any) that fails with `errno`, or drops to ERROR with `to_error`;
    public var arc: String?
    public var toError: Bool?
    /// the saving stream gets `flip_bit` or `truncate` at byte `at`;
    public var stream: String?
    public var at: Int?
    /// resume `reject`s a sound stream or loads it and `corrupt`s a register;
    public var resume: String?
    /// entering PRE_COPY makes the guest dirty this many MB/s (pre-copy never converges).
    public var spikeMBps: Double?

    enum CodingKeys: String, CodingKey {
        case name, path, op, errno, once, every, after, probability, seed, device, arc, stream, at, resume
        case delayMS = "delay_ms", shortRead = "short_read", toError = "to_error", spikeMBps = "spike_mbps"
        case fromMS = "from_ms", untilMS = "until_ms"
    }

    public var isDeviceRule: Bool { arc != nil || stream != nil || resume != nil || spikeMBps != nil }

    public init(name: String, path: String, op: String = "any") {
        self.name = name
        self.path = path
        self.op = op
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        device = try c.decodeIfPresent(String.self, forKey: .device)
        arc = try c.decodeIfPresent(String.self, forKey: .arc)
        toError = try c.decodeIfPresent(Bool.self, forKey: .toError)
        stream = try c.decodeIfPresent(String.self, forKey: .stream)
        at = try c.decodeIfPresent(Int.self, forKey: .at)
        resume = try c.decodeIfPresent(String.self, forKey: .resume)
        spikeMBps = try c.decodeIfPresent(Double.self, forKey: .spikeMBps)
        let isDevice = arc != nil || stream != nil || resume != nil || spikeMBps != nil
        path = try isDevice ? (c.decodeIfPresent(String.self, forKey: .path) ?? "") : c.decode(String.self, forKey: .path)
        name = try c.decodeIfPresent(String.self, forKey: .name) ?? (isDevice ? (arc ?? stream ?? resume ?? "device") : path)
        op = try c.decodeIfPresent(String.self, forKey: .op) ?? "any"
        errno = try c.decodeIfPresent(String.self, forKey: .errno)
        delayMS = try c.decodeIfPresent(Int.self, forKey: .delayMS)
        shortRead = try c.decodeIfPresent(Int.self, forKey: .shortRead)
        once = try c.decodeIfPresent(Bool.self, forKey: .once)
        every = try c.decodeIfPresent(Int.self, forKey: .every)
        after = try c.decodeIfPresent(Int.self, forKey: .after)
        probability = try c.decodeIfPresent(Double.self, forKey: .probability)
        seed = try c.decodeIfPresent(UInt64.self, forKey: .seed)
        fromMS = try c.decodeIfPresent(Int.self, forKey: .fromMS)
        untilMS = try c.decodeIfPresent(Int.self, forKey: .untilMS)
    }

    /// Checks the rule and returns what it does to file operations (`.proceed`
    /// for device rules), or says what is wrong.
    public func validated() throws -> HookAction {
        let whens = [once != nil, every != nil, after != nil, probability != nil].filter { $0 }.count
        guard whens <= 1 else { throw FaultError("rule '\(name)': give at most one of once, every, after, probability") }
        if seed != nil && probability == nil { throw FaultError("rule '\(name)': seed= goes with probability=") }
        if isDeviceRule {
            if !path.isEmpty || op != "any" { throw FaultError("rule '\(name)': path= and op= are for file rules; a device rule names device=UUID-glob") }
            if delayMS != nil || shortRead != nil { throw FaultError("rule '\(name)': delay_ms= and short_read= are for file rules") }
            if errno != nil && arc == nil { throw FaultError("rule '\(name)': errno= goes with arc= (or with path= for a file rule)") }
            if errno != nil && toError == true { throw FaultError("rule '\(name)': give errno= (the arc fails) or to_error=true (the device drops into ERROR), not both") }
            if toError != nil && arc == nil { throw FaultError("rule '\(name)': to_error= goes with arc=") }
            if at != nil && stream == nil { throw FaultError("rule '\(name)': at= goes with stream=") }
            if let device, let problem = Glob.problem(device) { throw FaultError("rule '\(name)': device \(problem)") }
            _ = try deviceAction(offset: 0)
            return .proceed
        }
        if device != nil || toError != nil || at != nil {
            throw FaultError("rule '\(name)': device=, to_error= and at= are for device rules (with arc=, stream=, resume= or spike_mbps=)")
        }
        guard !path.isEmpty else { throw FaultError("rule '\(name)': path is empty") }
        if let problem = Glob.problem(path) { throw FaultError("rule '\(name)': path \(problem)") }
        guard op == "any" || FileOperation(rawValue: op) != nil else {
            throw FaultError("rule '\(name)': op '\(op)' is not any, " + FileOperation.allCases.map(\.rawValue).joined(separator: ", "))
        }
        let actions = [errno != nil, delayMS != nil, shortRead != nil].filter { $0 }.count
        guard actions == 1 else { throw FaultError("rule '\(name)': give exactly one of errno, delay_ms, short_read") }
        if let f = fromMS, let u = untilMS, f >= u { throw FaultError("rule '\(name)': from_ms must be before until_ms") }
        if let every, every < 1 { throw FaultError("rule '\(name)': every must be at least 1") }
        if let after, after < 0 { throw FaultError("rule '\(name)': after must not be negative") }
        if let p = probability, !(0...1).contains(p) { throw FaultError("rule '\(name)': probability must be within 0...1") }
        if let e = errno {
            guard let value = FSError.errno(named: e) else {
                throw FaultError("rule '\(name)': errno '\(e)' is not an errno name such as EIO, ENOSPC or ETIMEDOUT (see errno(3))")
            }
            return .fail(value)
        }
        if let d = delayMS {
            guard (0...60_000).contains(d) else { throw FaultError("rule '\(name)': delay_ms must be 0...60000") }
            return .delay(milliseconds: d)
        }
        guard let s = shortRead, s >= 0 else { throw FaultError("rule '\(name)': short_read must not be negative") }
        return .shortRead(s)
    }

    /// The migration fault a device rule injects (checked, with its arc split).
    public func deviceAction(offset: Int) throws -> MigrationFaultAction {
        let kinds = [arc != nil, stream != nil, resume != nil, spikeMBps != nil].filter { $0 }.count
        guard kinds == 1 else { throw FaultError("rule '\(name)': give exactly one of arc, stream, resume, spike_mbps") }
        if let spike = spikeMBps {
            guard spike >= 0, spike <= 10_000 else { throw FaultError("rule '\(name)': spike_mbps must be 0...10000 (the highest dirty rate a workload takes)") }
            return .spikeDirtyRate(spike)
        }
        if let arc {
            guard arcStates() != nil else {
                throw FaultError("rule '\(name)': arc '\(arc)' is not FROM>TO with v2 state names or *")
            }
            if toError == true { return .errorArc }
            let e = errno ?? "EIO"
            guard let value = FSError.errno(named: e) else {
                throw FaultError("rule '\(name)': errno '\(e)' is not an errno name such as EIO, ENOSPC or ETIMEDOUT (see errno(3))")
            }
            return .failArc(value)
        }
        if let stream {
            guard let at, at >= 0 else { throw FaultError("rule '\(name)': stream faults need at=BYTE") }
            switch stream {
            case "flip_bit": return .flipBit(at: at)
            case "truncate": return .truncate(at: at)
            default: throw FaultError("rule '\(name)': stream is flip_bit or truncate")
            }
        }
        switch resume {
        case "reject": return .rejectResume
        case "corrupt": return .corruptAfterResume
        default: throw FaultError("rule '\(name)': resume is reject or corrupt")
        }
    }

    /// The arc's states; nil for `*` on either side.
    public func arcStates() -> (MigrationState?, MigrationState?)? {
        guard let arc else { return nil }
        let parts = arc.split(separator: ">", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 2 else { return nil }
        func state(_ s: String) -> MigrationState?? {
            if s == "*" { return .some(nil) }
            guard let m = MigrationState(text: s), m != .error else { return nil }
            return .some(m)
        }
        guard let a = state(parts[0]), let b = state(parts[1]) else { return nil }
        return (a, b)
    }

    /// `name=x path=sys/**/create op=write errno=ENOSPC every=2`, or a JSON object.
    public static func parse(_ text: String) throws -> FaultRule {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        if trimmed.hasPrefix("{") {
            do { return try JSONDecoder().decode(FaultRule.self, from: Data(trimmed.utf8)) } catch {
                throw FaultError("not a valid JSON rule: \(error)")
            }
        }
        var fields: [String: String] = [:]
        // Any white space separates words, so a long rule may go on over lines inside its quotes.
        for pair in trimmed.split(whereSeparator: \.isWhitespace) {
            guard let eq = pair.firstIndex(of: "=") else { throw FaultError("'\(pair)' is not key=value") }
            let key = String(pair[..<eq])
            guard fields.updateValue(String(pair[pair.index(after: eq)...]), forKey: key) == nil else {
                throw FaultError("\(key)= is given twice; keep one")
            }
        }
        let deviceRule = fields["arc"] != nil || fields["stream"] != nil || fields["resume"] != nil || fields["spike_mbps"] != nil
        guard let path = fields["path"] ?? (deviceRule ? "" : nil) else {
            throw FaultError("a rule needs path=PATTERN (file faults) or arc=, stream= or resume= (device faults)")
        }
        var rule = FaultRule(name: fields["name"] ?? (deviceRule ? (fields["arc"] ?? fields["stream"] ?? fields["resume"] ?? "spike") : path),
                             path: path, op: fields["op"] ?? "any")
        rule.device = fields["device"]
        rule.arc = fields["arc"]
        rule.toError = try fields["to_error"].map { try bool($0, "to_error") }
        rule.stream = fields["stream"]
        rule.at = try fields["at"].map { try int($0, "at") }
        rule.resume = fields["resume"]
        rule.spikeMBps = try fields["spike_mbps"].map { v in
            guard let x = Double(v) else { throw FaultError("spike_mbps '\(v)' is not a number") }
            return x
        }
        rule.errno = fields["errno"]
        rule.delayMS = try fields["delay_ms"].map { try int($0, "delay_ms") }
        rule.shortRead = try fields["short_read"].map { try int($0, "short_read") }
        rule.once = try fields["once"].map { try bool($0, "once") }
        rule.every = try fields["every"].map { try int($0, "every") }
        rule.after = try fields["after"].map { try int($0, "after") }
        rule.probability = try fields["probability"].map { v in
            guard let p = Double(v) else { throw FaultError("probability '\(v)' is not a number") }
            return p
        }
        rule.fromMS = try fields["from_ms"].map { try int($0, "from_ms") }
        rule.untilMS = try fields["until_ms"].map { try int($0, "until_ms") }
        rule.seed = try fields["seed"].map { v in
            guard let s = UInt64(v) else { throw FaultError("seed '\(v)' is not an unsigned integer") }
            return s
        }
        let known: Set<String> = ["name", "path", "op", "errno", "delay_ms", "short_read", "once", "every", "after", "probability", "seed",
                                  "device", "arc", "to_error", "stream", "at", "resume", "spike_mbps", "from_ms", "until_ms"]
        if let unknown = fields.keys.sorted().first(where: { !known.contains($0) }) {
            throw FaultError("unknown key '\(unknown)'; a rule takes \(known.sorted().joined(separator: ", "))")
        }
        _ = try rule.validated()
        return rule
    }

    static func bool(_ v: String, _ key: String) throws -> Bool {
        switch v {
        case "true": return true
        case "false": return false
        default: throw FaultError("\(key) is true or false, not '\(v)'")
        }
    }

    static func int(_ v: String, _ key: String) throws -> Int {
        guard let n = Int(v) else { throw FaultError("\(key) '\(v)' is not an integer") }
        return n
    }

    /// One line for listings.
    public var summary: String {
        var parts = ["name=\(name)"]
        if isDeviceRule {
            if let device { parts.append("device=\(device)") }
            if let arc { parts.append("arc=\(arc)") }
            if toError == true { parts.append("to_error=true") }
            if let stream { parts.append("stream=\(stream)") }
            if let at { parts.append("at=\(at)") }
            if let resume { parts.append("resume=\(resume)") }
            if let spikeMBps { parts.append("spike_mbps=\(spikeMBps)") }
        } else {
            parts += ["path=\(path)", "op=\(op)"]
        }
        if let errno { parts.append("errno=\(errno)") }
        if let delayMS { parts.append("delay_ms=\(delayMS)") }
        if let shortRead { parts.append("short_read=\(shortRead)") }
        if once == true { parts.append("once=true") }
        if let every { parts.append("every=\(every)") }
        if let after { parts.append("after=\(after)") }
        if let probability { parts.append("probability=\(probability)") }
        if let seed { parts.append("seed=\(seed)") }
        if let fromMS { parts.append("from_ms=\(fromMS)") }
        if let untilMS { parts.append("until_ms=\(untilMS)") }
        return parts.joined(separator: " ")
    }
}

public struct FaultError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// A fault plan file: `rules: [...]`, YAML or JSON.
public struct FaultPlan: Codable, Sendable {
    public var rules: [FaultRule]

    /// Every key a rule may hold, and what each must be.
    static let schema: Schema = {
        var keys: [String: Schema] = [:]
        for k in ["name", "path", "op", "errno", "device", "arc", "stream", "resume"] { keys[k] = .scalar(.text) }
        for k in ["delay_ms", "short_read", "every", "after", "seed", "at", "from_ms", "until_ms"] { keys[k] = .scalar(.integer) }
        for k in ["probability", "spike_mbps"] { keys[k] = .scalar(.number) }
        for k in ["once", "to_error"] { keys[k] = .scalar(.boolean) }
        return .mapping(["rules": .list(.mapping(keys))])
    }()

    public static func load(path: String) throws -> FaultPlan {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw FaultError("\(path): cannot read the fault plan")
        }
        return try parse(text, source: path)
    }

    /// Parses and validates a plan (YAML or JSON, `rules: [...]`).
    public static func parse(_ text: String, source: String = "fault plan") throws -> FaultPlan {
        guard text.utf8.count <= 1 << 20 else { throw FaultError("\(source): fault plans are limited to 1 MiB") }
        do {
            let plan = try SafeYAML.decode(FaultPlan.self, from: text, schema: FaultPlan.schema)
            var names = Set<String>()
            for r in plan.rules {
                _ = try r.validated()
                guard names.insert(r.name).inserted else { throw FaultError("rule '\(r.name)' is named twice; give each rule its own name=") }
            }
            return plan
        } catch let e as FaultError {
            throw FaultError("\(source): \(e)")
        } catch let e as SafeYAML.Refusal {
            throw FaultError("\(source): \(e)")
        } catch {
            throw FaultError("\(source): not a fault plan (rules: [...]): \(error)")
        }
    }
}
