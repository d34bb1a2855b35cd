import GPUModel
import StateStream
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The VFIO v2 migration side of one vGPU: the state machine, the saving and
/// resuming data sessions and their stream. No files: `VFIOView` serves it.
public final class MigrationDevice: Sendable {
    public let gpu: VGPU
    public let features: MigrationFeatures
    /// What this device's own stream header says; also what it accepts.
    public let identity: StreamHeader
    public let resumeFailure: ResumeFailurePolicy
    /// A replay device saves exactly these bytes and accepts only them back.
    public let replayBlob: [UInt8]?
    let faultHook: (any MigrationFaultHook)?

    struct SaveSession {
        let id: UInt64
        var delivered = 0
        var buffer: [UInt8] = []
        var bufferStart = 0
        var headerSent = false
        var ggttPages: [UInt32]
        var ggttNext = 0
        var frames: [UInt32]
        var framesNext = 0
        var stopped: Bool
        var finished = false
        var available: Int { buffer.count - bufferStart }
    }

    struct ResumeSession {
        let id: UInt64
        var received = 0
        var parser = StreamParser()
        var loader: ImageLoader
        var failure: String?
        /// The commit checks ran when the stream's end arrived (with the fault they drew), so a
        /// VMM learns of a refusal from the write that completed the stream, not after it has
        /// declared the migration done.
        var endChecked = false
        var injected: MigrationFaultAction?
    }

    struct Core {
        var state: MigrationState = .running
        var saving: SaveSession?
        var resuming: ResumeSession?
        var lastSession: UInt64 = 0
        var lastError = ""
        /// Every arc taken, for tests and logs (bounded).
    }

    let core = Mutex(Core())

    public init(gpu: VGPU, features: MigrationFeatures = .all, identity: StreamHeader, resumeFailure: ResumeFailurePolicy = .keep,
                replayBlob: [UInt8]? = nil, faultHook: (any MigrationFaultHook)? = nil) {
        MigrationState.checkKernelValues()
        self.faultHook = faultHook
        self.gpu = gpu
        self.features = features
        self.identity = identity
        self.resumeFailure = resumeFailure
        self.replayBlob = replayBlob
    }

    public var state: MigrationState { core.withLock { $0.state } }

    /// Keeps a failure found outside the protocol (a refused migration_version) as the last error.
    public func recordError(_ message: String) { core.withLock { $0.lastError = message } }
    public var lastError: String { core.withLock { $0.lastError } }
    /// The data session a newly opened `data` handle joins (nil: none open).
    public var currentSession: UInt64? { core.withLock { $0.saving?.id ?? $0.resuming?.id } }
    public func streamPosition(session: UInt64?) -> Int {
        core.withLock { c in c.saving.flatMap { $0.id == session ? $0.delivered : nil } ?? 0 }
    }

    func fail(_ c: inout Core, _ errno: Int32, _ message: String) -> MigrationError {
        c.lastError = message
        return MigrationError(errno, message)
    }

    // MARK: State changes

    /// Moves to `target` through the kernel's path, one arc at a time. On a
    /// failed arc the device stays in the last state reached (or ERROR, when a
    /// resume fails under the `error` policy).
    @discardableResult
    public func setState(_ target: MigrationState) throws(MigrationError) -> [MigrationState] {
        try core.withLock { (c: inout Core) throws(MigrationError) -> [MigrationState] in
            guard target != .error else {
                throw fail(&c, EINVAL, "ERROR cannot be requested; a device enters it only when an arc fails")
            }
            guard c.state != .error else {
                throw fail(&c, EINVAL, "the device is in ERROR; reset it (write 1 to reset) to return to RUNNING")
            }
            guard let path = MigrationFSM.path(from: c.state, to: target, features: features) else {
                throw fail(&c, EINVAL, "no path from \(c.state) to \(target) with features '\(features)'" +
                    (c.state == .stopCopy && (target == .preCopy || target == .preCopyP2P) ? " (STOP_COPY cannot return to pre-copy)" : ""))
            }
            for next in path {
                switch faultHook?.fault(device: gpu.uuid, .arc(from: c.state, to: next)) {
                case .failArc(let errno):
                    throw fail(&c, errno, "injected fault: the arc \(c.state) -> \(next) failed; the device stays in \(c.state)")
                case .spikeDirtyRate(let rate):
                    var config = gpu.workloadConfig
                    config.dirtyRateMBps = rate
                    gpu.setWorkload(config)
                case .errorArc:
                    let from = c.state
                    c.saving = nil
                    c.resuming = nil
                    c.state = .error
                    gpu.isRunning = false
                    throw fail(&c, EIO, "injected fault: the arc \(from) -> \(next) failed and the device is in ERROR; reset it")
                default:
                    break
                }
                try arc(&c, to: next)
                c.state = next
                gpu.isRunning = next.isRunning
            }
            c.lastError = ""
            return path
        }
    }

    func arc(_ c: inout Core, to next: MigrationState) throws(MigrationError) {
        switch (c.state, next) {
        case (.running, .preCopy), (.runningP2P, .preCopyP2P):
            c.saving = startSaving(&c, stopped: false)
        case (.stop, .stopCopy):
            c.saving = startSaving(&c, stopped: true)
        case (.preCopyP2P, .stopCopy), (.preCopy, .stopCopy):
            gpu.isRunning = false
            c.saving?.stopped = true
        case (.preCopy, .running), (.preCopyP2P, .runningP2P), (.stopCopy, .stop):
            c.saving = nil
        case (.stop, .resuming):
            c.lastSession += 1
            c.resuming = ResumeSession(id: c.lastSession, loader: ImageLoader(geometry: gpu.geometry))
        case (.resuming, .stop):
            try finishResume(&c)
        default:
            break       // RUNNING <-> RUNNING_P2P <-> STOP, PRE_COPY <-> PRE_COPY_P2P: run state only
        }
    }

    func startSaving(_ c: inout Core, stopped: Bool) -> SaveSession {
        c.lastSession += 1
        let (frames, ggttPages) = gpu.withHardware { hw in
            _ = hw.takeDirty()
            return (hw.memory.writtenFrames, Array(Set(hw.ggtt.keys.map { $0 >> 9 })).sorted())
        }
        return SaveSession(id: c.lastSession, ggttPages: ggttPages, frames: frames, stopped: stopped)
    }

    func finishResume(_ c: inout Core) throws(MigrationError) {
        guard let session = c.resuming else { return }
        var problem = session.failure
        if let blob = replayBlob {
            if problem == nil && session.received != blob.count {
                problem = "only \(session.received) of the recorded blob's \(blob.count) bytes arrived"
            }
            if let problem { throw fail(&c, EINVAL, "resume refused, the device keeps its state: \(problem)") }
            c.resuming = nil
            return
        }
        if problem == nil {
            do throws(StreamError) { try session.parser.finish() } catch { problem = "stream incomplete \(error)" }
        }
        if problem == nil, !session.endChecked, !(session.loader.sawConfig && session.loader.sawWorkload) {
            problem = "stream has no config or workload record; it is not a complete device image"
        }
        if let problem {
            let message = "resume refused, the device keeps its state: \(problem)"
            if resumeFailure == .error {
                c.resuming = nil
                c.state = .error
                gpu.isRunning = false
                throw fail(&c, EINVAL, message + " (device is now in ERROR; reset it)")
            }
            throw fail(&c, EINVAL, message)
        }
        let injected = session.endChecked ? session.injected : faultHook?.fault(device: gpu.uuid, .resumeCommit)
        if injected == .rejectResume {
            throw fail(&c, EINVAL, "injected fault: resume refused a sound stream; the device keeps its state")
        }
        var config = gpu.workloadConfig
        config.dirtyRateMBps = session.loader.dirtyRateMBps
        config.workingSetMiB = session.loader.workingSetMiB
        gpu.setWorkload(config)
        var hardware = session.loader.hardware
        if injected == .corruptAfterResume, let tail = hardware.table.index(named: "RING_TAIL") {
            hardware.restoreRegister(index: tail, value: hardware.registers[tail] ^ 0x8)
        }
        gpu.replaceState(hardware: hardware, workload: session.loader.workload)
        c.resuming = nil
    }

    /// VFIO_DEVICE_RESET: back to RUNNING, every session ended, the hardware reset.
    public func reset() {
        core.withLock { c in
            c.saving = nil
            c.resuming = nil
            c.state = .running
            c.lastError = ""
        }
        gpu.reset()
        gpu.isRunning = true
    }
}
