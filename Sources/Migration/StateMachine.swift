import CVFIO

/// The VFIO v2 migration states, with the kernel's numbering
/// (`enum vfio_device_mig_state`; PRE_COPY and PRE_COPY_P2P from the CVFIO shim).
public enum MigrationState: UInt32, Sendable, CaseIterable, CustomStringConvertible {
    case error = 0
    case stop = 1
    case running = 2
    case stopCopy = 3
    case resuming = 4
    case runningP2P = 5
    case preCopy = 6
    case preCopyP2P = 7

    static func checkKernelValues() {
        assert(MigrationState.error.rawValue == VFIO_DEVICE_STATE_ERROR.rawValue)
        assert(MigrationState.stop.rawValue == VFIO_DEVICE_STATE_STOP.rawValue)
        assert(MigrationState.running.rawValue == VFIO_DEVICE_STATE_RUNNING.rawValue)
        assert(MigrationState.stopCopy.rawValue == VFIO_DEVICE_STATE_STOP_COPY.rawValue)
        assert(MigrationState.resuming.rawValue == VFIO_DEVICE_STATE_RESUMING.rawValue)
        assert(MigrationState.runningP2P.rawValue == VFIO_DEVICE_STATE_RUNNING_P2P.rawValue)
        assert(MigrationState.preCopy.rawValue == UInt32(MDEVSIM_VFIO_DEVICE_STATE_PRE_COPY))
        assert(MigrationState.preCopyP2P.rawValue == UInt32(MDEVSIM_VFIO_DEVICE_STATE_PRE_COPY_P2P))
    }

    /// The kernel's name without the VFIO_DEVICE_STATE_ prefix.
    public var description: String {
        switch self {
        case .error: "ERROR"
        case .stop: "STOP"
        case .running: "RUNNING"
        case .stopCopy: "STOP_COPY"
        case .resuming: "RESUMING"
        case .runningP2P: "RUNNING_P2P"
        case .preCopy: "PRE_COPY"
        case .preCopyP2P: "PRE_COPY_P2P"
        }
    }

    /// Parses a name (any case, with or without the VFIO_DEVICE_STATE_ prefix) or a number.
    public init?(text: String) {
        let t = String(text.filter { !$0.isWhitespace }).uppercased()
        if let n = UInt32(t), let s = MigrationState(rawValue: n) { self = s; return }
        let name = t.hasPrefix("VFIO_DEVICE_STATE_") ? String(t.dropFirst(18)) : t
        guard let s = MigrationState.allCases.first(where: { $0.description == name }) else { return nil }
        self = s
    }

    /// States in which the device runs (its workload advances).
    public var isRunning: Bool { [.running, .runningP2P, .preCopy, .preCopyP2P].contains(self) }
    /// The saving group: PRE_COPY, PRE_COPY_P2P and STOP_COPY share one data session.
    public var isSaving: Bool { [.preCopy, .preCopyP2P, .stopCopy].contains(self) }
}

/// `VFIO_DEVICE_FEATURE_MIGRATION` flags.
public struct MigrationFeatures: OptionSet, Sendable, Hashable, CustomStringConvertible {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    public static let stopCopy = MigrationFeatures(rawValue: UInt64(VFIO_MIGRATION_STOP_COPY))
    public static let p2p = MigrationFeatures(rawValue: UInt64(VFIO_MIGRATION_P2P))
    public static let preCopy = MigrationFeatures(rawValue: UInt64(VFIO_MIGRATION_PRE_COPY))
    public static let all: MigrationFeatures = [.stopCopy, .p2p, .preCopy]
    /// The combinations the uAPI defines.
    public static let defined: [MigrationFeatures] = [[.stopCopy], [.stopCopy, .p2p], [.stopCopy, .preCopy], .all]

    public var description: String {
        var names: [String] = []
        if contains(.stopCopy) { names.append("stop_copy") }
        if contains(.p2p) { names.append("p2p") }
        if contains(.preCopy) { names.append("pre_copy") }
        return names.joined(separator: " ")
    }

    public init?(names: [String]) {
        var f: MigrationFeatures = []
        for n in names {
            switch n.lowercased() {
            case "stop_copy": f.insert(.stopCopy)
            case "p2p": f.insert(.p2p)
            case "pre_copy": f.insert(.preCopy)
            default: return nil
            }
        }
        guard MigrationFeatures.defined.contains(f) else { return nil }
        self = f
    }
}

/// The kernel's `vfio_mig_get_next_state()`: its table, its flag rules and its
/// skip loop, with the 2026 fix (the skip loop stops on ERROR, so STOP_COPY →
/// PRE_COPY* is EINVAL instead of a soft lockup).
public enum MigrationFSM {
    typealias S = MigrationState
    /// `vfio_from_fsm_table[cur][new]`, rows and columns in kernel order (ERROR=0 ... PRE_COPY_P2P=7).
    static let table: [[S]] = [
        /* ERROR */        [.error, .error, .error, .error, .error, .error, .error, .error],
        /* STOP */         [.error, .stop, .runningP2P, .stopCopy, .resuming, .runningP2P, .runningP2P, .runningP2P],
        /* RUNNING */      [.error, .runningP2P, .running, .runningP2P, .runningP2P, .runningP2P, .preCopy, .runningP2P],
        /* STOP_COPY */    [.error, .stop, .stop, .stopCopy, .stop, .stop, .error, .error],
        /* RESUMING */     [.error, .stop, .stop, .stop, .resuming, .stop, .stop, .stop],
        /* RUNNING_P2P */  [.error, .stop, .running, .stop, .stop, .runningP2P, .running, .preCopyP2P],
        /* PRE_COPY */     [.error, .running, .running, .preCopyP2P, .running, .running, .preCopy, .preCopyP2P],
        /* PRE_COPY_P2P */ [.error, .runningP2P, .runningP2P, .stopCopy, .runningP2P, .runningP2P, .preCopy, .preCopyP2P],
    ]

    /// `state_flags_table[]`: the features a state needs (ERROR needs all bits: it cannot be requested).
    static func required(_ s: S) -> MigrationFeatures {
        switch s {
        case .stop, .running, .stopCopy, .resuming: [.stopCopy]
        case .runningP2P: [.stopCopy, .p2p]
        case .preCopy: [.stopCopy, .preCopy]
        case .preCopyP2P: [.stopCopy, .p2p, .preCopy]
        case .error: MigrationFeatures(rawValue: ~0)
        }
    }

    /// The next single arc from `current` towards `target`, or nil (EINVAL).
    public static func nextState(from current: MigrationState, to target: MigrationState, features: MigrationFeatures) -> MigrationState? {
        guard features.isSuperset(of: required(current)), features.isSuperset(of: required(target)) else { return nil }
        var next = table[Int(current.rawValue)][Int(target.rawValue)]
        while next != .error && !features.isSuperset(of: required(next)) {
            next = table[Int(next.rawValue)][Int(target.rawValue)]
        }
        return next == .error ? nil : next
    }

    /// Every arc from `current` to `target`, or nil if the kernel refuses the request.
    public static func path(from current: MigrationState, to target: MigrationState, features: MigrationFeatures) -> [MigrationState]? {
        var steps: [MigrationState] = []
        var state = current
        while state != target {
            guard let next = nextState(from: state, to: target, features: features), steps.count < 8 else { return nil }
            steps.append(next)
            state = next
        }
        if current == target, nextState(from: current, to: target, features: features) == nil { return nil }
        return steps
    }
}
