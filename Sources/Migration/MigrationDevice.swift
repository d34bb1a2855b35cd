import GPUModel
import StateStream
import Synchronization

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

    private let core = Mutex(Core())

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

    private func fail(_ c: inout Core, _ errno: Int32, _ message: String) -> MigrationError {
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

    private func arc(_ c: inout Core, to next: MigrationState) throws(MigrationError) {
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

    private func startSaving(_ c: inout Core, stopped: Bool) -> SaveSession {
        c.lastSession += 1
        let (frames, ggttPages) = gpu.withHardware { hw in
            _ = hw.takeDirty()
            return (hw.memory.writtenFrames, Array(Set(hw.ggtt.keys.map { $0 >> 9 })).sorted())
        }
        return SaveSession(id: c.lastSession, ggttPages: ggttPages, frames: frames, stopped: stopped)
    }

    private func finishResume(_ c: inout Core) throws(MigrationError) {
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

    // MARK: The data stream

    private func checkSession(_ c: inout Core, _ id: UInt64?, saving: Bool) throws(MigrationError) {
        let current = saving ? c.saving?.id : c.resuming?.id
        guard let id, id == current else {
            throw fail(&c, EBADF, id == nil || id! < c.lastSession || current == nil
                ? "this data handle belongs to a session that has ended (as a closed data_fd would); open data again after entering \(saving ? "a saving state" : "RESUMING")"
                : "data is \(saving ? "readable only in PRE_COPY, PRE_COPY_P2P or STOP_COPY" : "writable only in RESUMING")")
        }
    }

    /// Reads the saving stream at `offset` (which must be where the last read
    /// ended), handing the bytes to `reply` without copying them. Zero bytes is
    /// the end of the stream (STOP_COPY); ENOMSG means PRE_COPY has nothing more for now.
    public func read(session: UInt64?, offset: Int, size: Int, reply: (UnsafeRawBufferPointer) -> Void) throws(MigrationError) {
        try core.withLock { (c: inout Core) throws(MigrationError) in
            try checkSession(&c, session, saving: true)
            guard offset == c.saving!.delivered else {
                throw fail(&c, ESPIPE, "the data stream is read in order: offset \(offset) asked, \(c.saving!.delivered) delivered")
            }
            // Move the session out so its buffers are mutated in place, not copied.
            var s = c.saving!
            c.saving = nil
            defer { c.saving = s }
            produce(&s, wanted: size)
            let n = min(size, s.available)
            if n == 0 && !s.stopped {
                throw fail(&c, ENOMSG, "no pre-copy data for now; read again later or move to STOP_COPY")
            }
            var n2 = n
            switch faultHook?.fault(device: gpu.uuid, .saveRead(offset: s.delivered, count: n)) {
            case .flipBit(let at) where at >= s.delivered && at < s.delivered + n:
                s.buffer[s.bufferStart + at - s.delivered] ^= 0x10
            case .truncate(let at) where at < s.delivered + n:
                n2 = max(0, at - s.delivered)
                if n2 == 0 { s.finished = true; s.buffer.removeAll(); s.bufferStart = 0; reply(UnsafeRawBufferPointer(start: nil, count: 0)); return }
            default:
                break
            }
            s.buffer.withUnsafeBytes { reply(UnsafeRawBufferPointer(rebasing: $0[s.bufferStart..<s.bufferStart + n2])) }
            s.bufferStart += n2
            s.delivered += n2
            if s.bufferStart == s.buffer.count {
                s.buffer.removeAll(keepingCapacity: true)
                s.bufferStart = 0
            }
        }
    }

    /// `read(session:offset:size:reply:)` into an array, for tools and tests.
    public func read(session: UInt64?, offset: Int, size: Int) throws(MigrationError) -> [UInt8] {
        var out: [UInt8] = []
        try read(session: session, offset: offset, size: size) { out = Array($0) }
        return out
    }

    /// Encodes records until `wanted` bytes are buffered or, in PRE_COPY, the
    /// current dirty data has been taken once.
    private func produce(_ s: inout SaveSession, wanted: Int) {
        if s.bufferStart > 0 && s.bufferStart * 2 >= s.buffer.count {
            s.buffer.removeFirst(s.bufferStart)
            s.bufferStart = 0
        }
        // Records are encoded straight into the session's buffer.
        var w = StreamWriter()
        swap(&w.bytes, &s.buffer)
        defer { swap(&w.bytes, &s.buffer) }
        if let blob = replayBlob {
            // The recorded blob, byte for byte, in STOP_COPY; nothing during pre-copy.
            if s.stopped && !s.finished {
                w.bytes += blob
                s.finished = true
            }
            return
        }
        var tookDirty = false
        while w.bytes.count - s.bufferStart < wanted && !s.finished {
            if !s.headerSent {
                w.header(identity)
                s.headerSent = true
            } else if s.ggttNext < s.ggttPages.count {
                let chunk = s.ggttPages[s.ggttNext..<min(s.ggttNext + 128, s.ggttPages.count)]
                gpu.withHardware { hw in DeviceImage.ggttRecord(hw, pages: chunk, includeEmpty: false, into: &w) }
                s.ggttNext += chunk.count
            } else if s.framesNext < s.frames.count {
                let chunk = s.frames[s.framesNext..<min(s.framesNext + StreamFormat.pagesPerRecord, s.frames.count)]
                gpu.withHardware { hw in DeviceImage.memoryRecord(hw, frames: chunk, type: .memory, into: &w) }
                s.framesNext += chunk.count
            } else if !s.stopped {
                if tookDirty { break }
                tookDirty = true
                appendDirty(into: &w)
            } else {
                appendDirty(into: &w)
                let config = gpu.workloadConfig
                gpu.withState { hw, workload in
                    DeviceImage.configRecord(hw, into: &w)
                    DeviceImage.registerRecords(hw, into: &w)
                    DeviceImage.workloadRecord(workload, config, into: &w)
                }
                w.end()
                s.finished = true
            }
        }
    }

    private func appendDirty(into w: inout StreamWriter) {
        gpu.withHardware { hw in
            let dirty = hw.takeDirty()
            let ggtt = dirty.ggttPages.sorted()
            for start in stride(from: 0, to: ggtt.count, by: 128) {
                DeviceImage.ggttRecord(hw, pages: ggtt[start..<min(start + 128, ggtt.count)], includeEmpty: true, into: &w)
            }
            let frames = dirty.pages.sorted()
            for start in stride(from: 0, to: frames.count, by: StreamFormat.pagesPerRecord) {
                DeviceImage.memoryRecord(hw, frames: frames[start..<min(start + StreamFormat.pagesPerRecord, frames.count)], type: .dirtyPages, into: &w)
            }
        }
    }

    /// Writes resuming data. The header is checked as soon as it is complete, so
    /// an incompatible stream fails at its first write; nothing touches the device
    /// until RESUMING → STOP.
    public func write(session: UInt64?, bytes: UnsafeRawBufferPointer) throws(MigrationError) -> Int {
        try core.withLock { (c: inout Core) throws(MigrationError) -> Int in
            try checkSession(&c, session, saving: false)
            var s = c.resuming!
            c.resuming = nil
            defer { c.resuming = s }
            if let failure = s.failure { throw fail(&c, EINVAL, "resume already refused: \(failure)") }
            if let blob = replayBlob {
                // A replay device proves a transport preserved the blob: every byte must match.
                for (i, byte) in bytes.enumerated() {
                    let at = s.received + i
                    guard at < blob.count else {
                        s.failure = "more bytes arrived than the recorded blob's \(blob.count)"
                        throw fail(&c, EINVAL, "resume refused: " + s.failure!)
                    }
                    guard blob[at] == byte else {
                        s.failure = "byte \(at) is 0x\(String(byte, radix: 16)), the recorded blob has 0x\(String(blob[at], radix: 16)) there"
                        throw fail(&c, EINVAL, "resume refused: " + s.failure!)
                    }
                }
                s.received += bytes.count
                return bytes.count
            }
            let events: [StreamEvent]
            do throws(StreamError) { events = try s.parser.feed(bytes) } catch {
                s.failure = "\(error)"
                throw fail(&c, EINVAL, "resume refused \(error)")
            }
            for event in events {
                switch event {
                case .header(let header, _):
                    let problems = Compatibility.problems(source: header, destination: identity)
                    if !problems.isEmpty {
                        s.failure = "incompatible stream: " + problems.joined(separator: "; ")
                        throw fail(&c, EINVAL, "resume refused: " + s.failure!)
                    }
                case .record(let type, _, let payload, let offset):
                    do throws(LoadError) { try s.loader.apply(type, payload) } catch {
                        s.failure = "at byte \(offset): \(error.message)"
                        throw fail(&c, EINVAL, "resume refused " + s.failure!)
                    }
                case .end:
                    // The image is whole: refuse it now if it will be refused at STOP.
                    if !(s.loader.sawConfig && s.loader.sawWorkload) {
                        s.failure = "stream has no config or workload record; it is not a complete device image"
                        throw fail(&c, EINVAL, "resume refused, the device keeps its state: " + s.failure!)
                    }
                    s.injected = faultHook?.fault(device: gpu.uuid, .resumeCommit)
                    s.endChecked = true
                    if s.injected == .rejectResume {
                        s.failure = "injected fault: resume refused a sound stream"
                        throw fail(&c, EINVAL, "injected fault: resume refused a sound stream; the device keeps its state")
                    }
                case .skipped:
                    break
                }
            }
            s.received += bytes.count
            return bytes.count
        }
    }

    // MARK: Sizes

    /// `VFIO_MIG_GET_PRECOPY_INFO`: only in PRE_COPY states (EINVAL otherwise).
    public func precopyInfo() throws(MigrationError) -> (initialBytes: Int, dirtyBytes: Int) {
        try core.withLock { (c: inout Core) throws(MigrationError) -> (initialBytes: Int, dirtyBytes: Int) in
            guard c.state == .preCopy || c.state == .preCopyP2P, let s = c.saving else {
                throw fail(&c, EINVAL, "precopy_info is valid only in PRE_COPY or PRE_COPY_P2P (now \(c.state))")
            }
            return (remainingInitial(s), dirtyEstimate())
        }
    }

    private func remainingInitial(_ s: SaveSession) -> Int {
        if replayBlob != nil { return 0 }
        return (s.headerSent ? 0 : StreamWriter.encodeHeader(identity).count)
            + DeviceImage.ggttBytes(s.ggttPages.count - s.ggttNext)
            + DeviceImage.memoryBytes(s.frames.count - s.framesNext) + s.available
    }

    private func dirtyEstimate() -> Int {
        let d = gpu.pendingDirty
        return DeviceImage.memoryBytes(d.pages.count) + DeviceImage.ggttBytes(d.ggttPages.count)
    }

    /// `VFIO_DEVICE_FEATURE_MIG_DATA_SIZE`: bytes still to come to complete a
    /// stop-copy from here (the whole image when no session is open).
    public var stopCopySize: Int {
        if let blob = replayBlob { return blob.count }
        return core.withLock { c in
            let fixed = 4096
            if let s = c.saving { return remainingInitial(s) + dirtyEstimate() + fixed }
            let (pages, ggttPages) = gpu.withHardware { hw in (hw.memory.count, Set(hw.ggtt.keys.map { $0 >> 9 }).count) }
            return StreamWriter.encodeHeader(identity).count + DeviceImage.memoryBytes(pages) + DeviceImage.ggttBytes(ggttPages) + fixed
        }
    }
}
