import Synchronization

/// One simulated vGPU: its hardware, its guest workload and the clock that
/// drives it. Safe to use from any thread; every access first brings a
/// real-time device up to date, so a device changes while it runs whether or
/// not anyone watches, and costs nothing while nobody does.
public final class VGPU: Sendable {
    public let uuid: String
    public let geometry: VGPUGeometry

    /// Longest stretch of wall time applied at once (2 s): a device left alone
    /// for an hour does not burn an hour of work when next touched.
    public static let maxCatchUpTicks: UInt64 = 200

    struct State {
        var hardware: Hardware
        var workloadState: WorkloadState
        var config: WorkloadConfig
        var workload: Workload
        var running = true
        var lastTick = ContinuousClock.now
    }

    private let state: Mutex<State>

    public init(uuid: String, geometry: VGPUGeometry, workload: WorkloadConfig = .default) {
        self.uuid = uuid
        self.geometry = geometry
        state = Mutex(State(hardware: Hardware(geometry: geometry), workloadState: WorkloadState(seed: workload.seed),
                            config: workload, workload: Workload(geometry: geometry, config: workload)))
    }

    /// Runs `body` on the up-to-date hardware, under the device's lock.
    public func withHardware<R: Sendable, E: Error>(_ body: (inout Hardware) throws(E) -> R) throws(E) -> R {
        try state.withLock { (s: inout State) throws(E) -> R in
            VGPU.catchUp(&s)
            return try body(&s.hardware)
        }
    }

    // MARK: Running and clocks

    /// Whether the device runs (its workload advances). A stopped device does not change.
    public var isRunning: Bool {
        get { state.withLock { $0.running } }
        set {
            state.withLock { s in
                VGPU.catchUp(&s)
                s.running = newValue
                s.lastTick = .now
            }
        }
    }

    public var workloadConfig: WorkloadConfig {
        get { state.withLock { $0.config } }
    }

    /// Changes the workload's knobs. A new seed reseeds the random source; the
    /// working set resizes the texture pool.
    public func setWorkload(_ config: WorkloadConfig) {
        state.withLock { s in
            VGPU.catchUp(&s)
            if config.seed != s.config.seed { s.workloadState.rng = SplitMix64(seed: config.seed) }
            s.config = config
            s.workload = Workload(geometry: geometry, config: config)
            s.lastTick = .now
        }
    }

    public var ticks: UInt64 { state.withLock { s in VGPU.catchUp(&s); return s.workloadState.tick } }

    /// Most pages one request may render while holding the device's lock
    /// (128 MiB, ~50 ms on a 2-core VM in a release build): a step or a
    /// real-time catch-up never does more at once.
    public static let pagesPerRequest: UInt64 = 32768
    /// Most ticks one step may run (a tick without rendering costs ~0.4 µs).
    public static let ticksPerStep: UInt64 = 100_000
    /// Pages `fillWorkingSet` renders per hold of the lock.
    static let fillChunkPages = 4096

    /// Advances a running device by `n` ticks of its workload. Refused for a
    /// real-time device (its clock is the wall); nothing happens when stopped.
    /// Work beyond one request's bound is refused with E2BIG, saying how many
    /// ticks fit at the device's dirty rate.
    public func step(_ n: UInt64) throws(AccessError) {
        try state.withLock { (s: inout State) throws(AccessError) in
            guard s.config.clock == .stepped else {
                throw .invalid("this device runs on the real-time clock; set its clock to 'stepped' before stepping it")
            }
            let page = UInt64(GPULayout.pageSize)
            let pagesPerTick = (VGPU.bytesPerTick(s.config) + page - 1) / page
            let fit = min(VGPU.ticksPerStep, pagesPerTick == 0 ? .max : VGPU.pagesPerRequest / pagesPerTick)
            guard n <= fit else {
                throw AccessError(errno: 7, message: "stepping \(n) ticks at \(s.config.dirtyRateMBps) MB/s is more work than one write may do "
                    + "(at most \(VGPU.ticksPerStep) ticks and \(VGPU.pagesPerRequest) pages); write at most \(fit) and step again")
            }
            guard s.running else { return }
            VGPU.run(&s, ticks: n)
        }
    }

    /// The guest writes its whole working set once (a running device only).
    /// The lock is taken for a few thousand pages at a time, so the device
    /// answers other requests while a large working set is filled.
    public func fillWorkingSet() {
        let addresses = state.withLock { s -> [UInt64] in
            VGPU.catchUp(&s)
            return s.running ? s.workload.workingSetAddresses(s.hardware) : []
        }
        var next = 0
        while next < addresses.count {
            let chunk = addresses[next..<min(next + VGPU.fillChunkPages, addresses.count)]
            next = chunk.endIndex
            let stop = state.withLock { s -> Bool in
                guard s.running else { return true }
                s.workload.fill(chunk, &s.workloadState, &s.hardware)
                return false
            }
            if stop { return }
        }
    }

    private static func catchUp(_ s: inout State) {
        guard s.running, s.config.clock == .realTime else { return }
        let now = ContinuousClock.now
        let elapsed = now - s.lastTick
        let perTick = Duration.seconds(1) / WorkloadConfig.ticksPerSecond
        let due = UInt64(max(0, elapsed / perTick))
        guard due > 0 else {
            // Between ticks the guest keeps rendering: pages for the time elapsed
            // are written now (ring and display move only on whole ticks), so a
            // device observed often still dirties at its rate.
            let seconds = Double(elapsed.components.attoseconds) / 1e18 + Double(elapsed.components.seconds)
            let bytes = UInt64(max(0, s.config.dirtyRateMBps) * 1_000_000 * seconds)
            if bytes >= UInt64(GPULayout.pageSize) {
                let limit = min(UInt64(2 * s.workload.workingSetPages), pagesPerRequest) * UInt64(GPULayout.pageSize)
                s.workload.render(&s.workloadState, &s.hardware, bytes: min(bytes, limit))
                s.lastTick = now
            }
            return
        }
        let ticks = min(due, maxCatchUpTicks)
        // Writing more than twice the working set in one catch-up changes nothing
        // an observer can see (the same pages are dirty), so the real-time clock
        // spreads at most that much over the ticks it applies.
        let page = UInt64(GPULayout.pageSize)
        let limit = min(UInt64(2 * s.workload.workingSetPages), pagesPerRequest) * page
        let bytes = min(bytesPerTick(s.config) * ticks, max(limit, page))
        run(&s, ticks: ticks, bytesPerTick: bytes / ticks)
        if due > maxCatchUpTicks { s.lastTick = now } else { s.lastTick += perTick * Int(due) }
    }

    private static func bytesPerTick(_ c: WorkloadConfig) -> UInt64 {
        UInt64(max(0, c.dirtyRateMBps) * 1_000_000 / Double(WorkloadConfig.ticksPerSecond))
    }

    private static func run(_ s: inout State, ticks: UInt64, bytesPerTick: UInt64? = nil) {
        let rate = bytesPerTick ?? VGPU.bytesPerTick(s.config)
        for _ in 0..<ticks { s.workload.tick(&s.workloadState, &s.hardware, bytesPerTick: rate) }
    }

    // MARK: Guest-visible accesses

    /// Config space access of any length, split into naturally aligned 4-, 2-
    /// and 1-byte pieces as vfio-pci does.
    public func readConfig(offset: Int, count: Int) throws(AccessError) -> [UInt8] {
        try VGPU.checkConfig(offset: offset, count: count)
        return withHardware { hw in
            var out = [UInt8]()
            out.reserveCapacity(count)
            VGPU.forEachConfigPiece(offset: offset, count: count) { o, size in
                let v = hw.config.read(offset: o, size: size)
                for i in 0..<size { out.append(UInt8((v >> (8 * UInt32(i))) & 0xff)) }
            }
            // Status bit 3 (Interrupt Status) follows the INTx output; it is not stored state.
            if offset <= 6, offset + count > 6, hw.interruptPending { out[6 - offset] |= 0x08 }
            return out
        }
    }

    public func writeConfig(offset: Int, bytes: [UInt8]) throws(AccessError) {
        try VGPU.checkConfig(offset: offset, count: bytes.count)
        withHardware { hw in
            var changed = false
            VGPU.forEachConfigPiece(offset: offset, count: bytes.count) { o, size in
                var v: UInt32 = 0
                for i in 0..<size { v |= UInt32(bytes[o - offset + i]) << (8 * UInt32(i)) }
                if hw.config.write(offset: o, size: size, value: v) { changed = true }
            }
            if changed { hw.markConfigDirty() }
        }
    }

    static func checkConfig(offset: Int, count: Int) throws(AccessError) {
        guard offset >= 0, count > 0, offset + count <= ConfigSpace.size else {
            throw .invalid("config space is \(ConfigSpace.size) bytes: \(count) bytes at \(offset) is outside it")
        }
    }

    static func forEachConfigPiece(offset: Int, count: Int, _ body: (Int, Int) -> Void) {
        var o = offset
        let end = offset + count
        while o < end {
            let size = (o % 4 == 0 && end - o >= 4) ? 4 : (o % 2 == 0 && end - o >= 2) ? 2 : 1
            body(o, size)
            o += size
        }
    }

    public func readBAR0(offset: Int, size: Int) throws(AccessError) -> UInt64 {
        try withHardware { (hw: inout Hardware) throws(AccessError) -> UInt64 in try hw.readBAR0(offset: offset, size: size) }
    }

    public func writeBAR0(offset: Int, size: Int, value: UInt64) throws(AccessError) {
        try withHardware { (hw: inout Hardware) throws(AccessError) in try hw.writeBAR0(offset: offset, size: size, value: value) }
    }

    /// Interrupts the device has signalled so far (catching the workload up first).
    public var interruptsRaised: UInt64 { withHardware { $0.interruptsRaised } }

    /// Function-level reset: registers and config space to reset values, the
    /// guest driver must load again; GGTT and memory survive, as on an FLR.
    public func reset() {
        state.withLock { s in
            VGPU.catchUp(&s)
            s.hardware.functionLevelReset()
            s.lastTick = .now
        }
    }

    /// Device-side status bits (an error the hardware signals): for fault paths and tests.
    public func signalConfigStatus(offset: Int, bits: UInt8) {
        withHardware { hw in
            hw.config.setBits(offset: offset, bits)
            hw.markConfigDirty()
        }
    }

    public func takeDirty() -> DirtySet { withHardware { $0.takeDirty() } }

    /// What changed since the last `takeDirty`, without clearing it.
    public var pendingDirty: DirtySet { withHardware { $0.dirty } }

    /// Runs `body` on the up-to-date hardware and workload state together:
    /// what saving reads and what resuming replaces.
    public func withState<R: Sendable, E: Error>(_ body: (inout Hardware, inout WorkloadState) throws(E) -> R) throws(E) -> R {
        try state.withLock { (s: inout State) throws(E) -> R in
            VGPU.catchUp(&s)
            return try body(&s.hardware, &s.workloadState)
        }
    }

    /// Replaces the whole device state (a completed resume); dirty tracking starts clean.
    public func replaceState(hardware: Hardware, workload: WorkloadState) {
        state.withLock { s in
            s.hardware = hardware
            _ = s.hardware.takeDirty()
            s.workloadState = workload
            s.lastTick = .now
        }
    }

    // MARK: Digest

    /// A digest of the whole device state: config space, registers, GGTT,
    /// graphics memory and the workload's own state.
    public var stateDigest: String {
        state.withLock { s in
            VGPU.catchUp(&s)
            var d = StateDigest()
            let hw = s.hardware
            d.add(bytes: hw.config.bytes)
            for v in hw.registers { d.add(v) }
            d.add(UInt64(hw.ggtt.count))
            for key in hw.ggtt.keys.sorted() { d.add(UInt64(key)); d.add(hw.ggtt[key]!) }
            d.add(UInt64(hw.memory.count))
            for frame in hw.memory.writtenFrames { d.add(UInt64(frame)); d.add(page: hw.memory.page(frame)!) }
            let w = s.workloadState
            d.add(w.tick); d.add(w.rng.state); d.add(w.budget); d.add(w.frontBuffer)
            return d.hex
        }
    }

    /// Pages of graphics memory currently allocated.
    public var residentPages: Int { state.withLock { $0.hardware.memory.count } }
}
