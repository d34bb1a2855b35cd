import Foundation
import Migration
import Synchronization
import VirtualFS

/// Applies a fault plan to every file operation of a tree, counts hits and
/// logs each fault that fires (with the rule), in `.mdevsim/log` and the daemon's log.
public final class FaultInjector: OperationHook, MigrationFaultHook, Sendable {
    struct Active {
        let rule: FaultRule
        let action: HookAction
        let pattern: Glob
        var matches = 0
        var hits = 0
        var rng: UInt64
        let added = ContinuousClock.now
    }

    struct State {
        var rules: [Active] = []
        var log: [String] = []
        var total = 0
    }

    private let state = Mutex(State())
    private let active = Atomic<Bool>(false)
    public var isActive: Bool { active.load(ordering: .relaxed) }
    private let onFire: @Sendable (String) -> Void
    public static let logLimit = 10_000

    public init(onFire: @escaping @Sendable (String) -> Void = { _ in }) {
        self.onFire = onFire
    }

    public func add(_ rule: FaultRule) throws {
        let action = try rule.validated()
        try state.withLock { s in
            if s.rules.contains(where: { $0.rule.name == rule.name }) {
                throw FaultError("a rule named '\(rule.name)' is already active; give this one its own name= (or clear the rules first)")
            }
            s.rules.append(Active(rule: rule, action: action, pattern: Glob(rule.path), rng: rule.seed ?? 0x9e37_79b9))
        }
        active.store(true, ordering: .relaxed)
    }

    public func clear() {
        state.withLock { $0.rules.removeAll() }
        active.store(false, ordering: .relaxed)
    }

    public var rules: [(rule: FaultRule, matches: Int, hits: Int)] {
        state.withLock { $0.rules.map { ($0.rule, $0.matches, $0.hits) } }
    }

    public var log: [String] { state.withLock { $0.log } }

    /// Logs a fault injected outside the rules (a surprise removal).
    public func note(_ what: String) {
        let line = state.withLock { s in
            s.total += 1
            let line = "\(ISO8601DateFormatter().string(from: Date())) fault #\(s.total) \(what)"
            s.log.append(line)
            if s.log.count > FaultInjector.logLimit { s.log.removeFirst(s.log.count - FaultInjector.logLimit) }
            return line
        }
        onFire(line)
    }

    public func action(for operation: FileOperation, path: String) -> HookAction {
        var fired: String?
        let action: HookAction = state.withLock { s in
            for i in s.rules.indices {
                let rule = s.rules[i].rule
                guard !rule.isDeviceRule, rule.op == "any" || rule.op == operation.rawValue, s.rules[i].pattern.matches(path) else { continue }
                guard let line = FaultInjector.fire(&s, i, "op=\(operation.rawValue) path=\(path) -> \(FaultInjector.describe(s.rules[i].action))") else { continue }
                fired = line
                return s.rules[i].action
            }
            return .proceed
        }
        if let fired { onFire(fired) }
        return action
    }

    /// Device rules: arcs, the saving stream and resume.
    public func fault(device uuid: String, _ event: MigrationEvent) -> MigrationFaultAction? {
        var fired: String?
        let result: MigrationFaultAction? = state.withLock { s in
            for i in s.rules.indices {
                let rule = s.rules[i].rule
                guard rule.isDeviceRule, fnmatch(rule.device ?? "*", uuid, 0) == 0,
                      let action = try? rule.deviceAction(offset: 0) else { continue }
                var what = ""
                switch (event, action) {
                case (.arc(let from, let to), .failArc), (.arc(let from, let to), .errorArc):
                    guard let (a, b) = rule.arcStates(), a == nil || a == from, b == nil || b == to else { continue }
                    what = "arc \(from)->\(to)"
                case (.saveRead(let offset, let count), .flipBit(let at)), (.saveRead(let offset, let count), .truncate(let at)):
                    guard at >= offset, at < offset + count else { continue }
                    what = "stream byte \(at)"
                case (.resumeCommit, .rejectResume), (.resumeCommit, .corruptAfterResume):
                    what = "resume"
                case (.arc(let from, let to), .spikeDirtyRate):
                    guard to == .preCopy || to == .preCopyP2P, from != .preCopy, from != .preCopyP2P else { continue }
                    what = "entering pre-copy"
                default:
                    continue
                }
                guard let line = FaultInjector.fire(&s, i, "device=\(uuid) \(what) -> \(action)") else { continue }
                fired = line
                return action
            }
            return nil
        }
        if let fired { onFire(fired) }
        return result
    }

    /// A rule matched: counts it, decides by its `when` whether it fires, and
    /// if so counts the hit and logs it. Returns the log line when it fires.
    static func fire(_ s: inout State, _ i: Int, _ what: String) -> String? {
        let rule = s.rules[i].rule
        let ms = (ContinuousClock.now - s.rules[i].added) / .milliseconds(1)
        if let from = rule.fromMS, ms < Double(from) { return nil }
        if let until = rule.untilMS, ms >= Double(until) { return nil }
        s.rules[i].matches += 1
        let n = s.rules[i].matches
        var fire = true
        if rule.once == true { fire = n == 1 }
        if let every = rule.every { fire = n % every == 0 }
        if let after = rule.after { fire = n > after }
        if let p = rule.probability {
            s.rules[i].rng = s.rules[i].rng &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            fire = Double(s.rules[i].rng >> 11) / Double(1 << 53) < p
        }
        guard fire else { return nil }
        s.rules[i].hits += 1
        s.total += 1
        let line = "\(ISO8601DateFormatter().string(from: Date())) fault #\(s.total) rule=\(rule.name) \(what)"
        s.log.append(line)
        if s.log.count > logLimit { s.log.removeFirst(s.log.count - logLimit) }
        return line
    }

    static func describe(_ a: HookAction) -> String {
        switch a {
        case .proceed: "proceed"
        case .fail(let e): FSError(e).name
        case .delay(let ms): "delay \(ms) ms"
        case .shortRead(let n): "short read of \(n) bytes"
        }
    }

    /// `.mdevsim/faults` (write a rule, `clear`, read the rules with hit counts)
    /// and `.mdevsim/log` (the faults that fired).
    public func addControlFiles(to tree: Tree) throws(FSError) {
        let weakTree = WeakTree(tree: tree)   // the tree holds this file; no cycle back
        try tree.update { (c: inout TreeContents) throws(FSError) in
            let dir = try c.directories(".mdevsim")
            try c.attribute("faults", in: dir, Attribute(
                show: {
                    let rules = self.rules
                    return rules.isEmpty ? "" : rules.map { "\($0.rule.summary) matches=\($0.matches) hits=\($0.hits)" }.joined(separator: "\n") + "\n"
                },
                store: { (bytes: [UInt8]) throws(FSError) in
                    let text = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
                    if text == "clear" { self.clear(); return }
                    do { try self.add(try FaultRule.parse(text)) } catch { throw .invalid("fault rule refused: \(error)") }
                    // Entries the kernel cached before the rule must ask again, or its
                    // lookups and getattrs would not see the rule for up to a second.
                    weakTree.tree?.invalidateCache()
                }), permissions: 0o644)
            try c.attribute("log", in: dir, Attribute(show: {
                // A sysfs-style attribute holds at most a page: the newest lines that fit.
                var out = ""
                for line in self.log.reversed() {
                    if out.utf8.count + line.utf8.count + 1 > Attribute.pageSize { break }
                    out = line + "\n" + out
                }
                return out
            }))
        }
    }
}

/// Path globs: `*`, `?` and `[...]` within one component (fnmatch(3)), `**`
/// any number of components.
struct Glob: Sendable {
    let parts: [String]
    init(_ pattern: String) { parts = pattern.split(separator: "/", omittingEmptySubsequences: true).map(String.init) }

    /// Why `pattern` is not a glob over paths inside the mount, or nil.
    static func problem(_ pattern: String) -> String? {
        if pattern.hasPrefix("/") { return "'\(pattern)' is absolute; globs are relative to the mount, such as sys/**/create" }
        for part in pattern.split(separator: "/", omittingEmptySubsequences: true) {
            if part == ".." || part == "." { return "'\(pattern)' has a '\(part)' component; name the path as it is" }
            if part.contains("**") && part != "**" { return "'\(part)' mixes ** with other characters; ** stands alone between slashes" }
            var depth = 0
            for ch in part {
                if ch == "[" { depth += 1 } else if ch == "]" && depth > 0 { depth -= 1 }
            }
            if depth != 0 { return "'\(part)' opens a [ that it does not close" }
        }
        return nil
    }

    func matches(_ path: String) -> Bool {
        Glob.match(parts[...], path.split(separator: "/", omittingEmptySubsequences: true)[...])
    }

    static func match(_ p: ArraySlice<String>, _ s: ArraySlice<Substring>) -> Bool {
        guard let first = p.first else { return s.isEmpty }
        if first == "**" {
            var rest = s
            while true {
                if match(p.dropFirst(), rest) { return true }
                guard !rest.isEmpty else { return false }
                rest = rest.dropFirst()
            }
        }
        guard let name = s.first, fnmatch(first, String(name), 0) == 0 else { return false }
        return match(p.dropFirst(), s.dropFirst())
    }
}

/// A tree referred to by a file inside it.
struct WeakTree: Sendable {
    weak var tree: Tree?
}
