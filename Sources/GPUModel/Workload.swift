/// Which clock drives a running device's workload.
public enum ClockMode: String, Sendable, Codable, CaseIterable {
    /// Ticks follow wall time (100 per second), applied whenever the device is observed.
    case realTime = "real"
    /// Ticks advance only when asked (`step`), so state is bit-for-bit reproducible.
    case stepped
}

/// The knobs of a device's guest workload.
public struct WorkloadConfig: Sendable, Equatable, Codable {
    public var seed: UInt64
    /// Graphics memory the workload rewrites per second of its clock, in MB (10^6 bytes).
    public var dirtyRateMBps: Double
    /// Size of the texture pool it renders into, in MiB, besides the ring and framebuffers.
    public var workingSetMiB: Int
    public var clock: ClockMode

    /// A modest default: a freshly created vGPU visibly works without costing much.
    public static let `default` = WorkloadConfig(seed: 1, dirtyRateMBps: 0.5, workingSetMiB: 4, clock: .realTime)

    public init(seed: UInt64, dirtyRateMBps: Double, workingSetMiB: Int, clock: ClockMode) {
        self.seed = seed
        self.dirtyRateMBps = dirtyRateMBps
        self.workingSetMiB = workingSetMiB
        self.clock = clock
    }

    public static let ticksPerSecond = 100
    /// The highest dirty rate a workload accepts, in MB per second of its clock:
    /// one tick of it (100 MB) fits in one request's bound (`VGPU.pagesPerRequest`).
    public static let maxDirtyRateMBps = 10_000.0
}

/// The guest driver's own state: part of what a device saves, so a resumed
/// device continues exactly where its source stopped.
public struct WorkloadState: Sendable, Equatable {
    public var tick: UInt64 = 0
    public var rng: SplitMix64
    /// Bytes of dirty budget carried to the next tick.
    public var budget: UInt64 = 0
    public var frontBuffer: UInt64 = 0

    public init(seed: UInt64) { rng = SplitMix64(seed: seed) }

    /// Why this state cannot be a running guest's, or nil: one of two
    /// framebuffers is in front, and less than a page of budget is carried.
    public var violation: String? {
        if frontBuffer > 1 { return "workload front_buffer is \(frontBuffer); a guest has framebuffers 0 and 1" }
        if budget >= UInt64(GPULayout.pageSize) {
            return "workload budget is \(budget) bytes; a tick carries less than one \(GPULayout.pageSize)-byte page"
        }
        return nil
    }
}

/// Acts as a guest graphics driver on a vGPU's hardware: loads (programs the
/// ring, interrupts, plane and fences), then each tick submits a batch through
/// the ring (TAIL, then the hardware moves HEAD and raises the user interrupt),
/// renders pages of graphics memory through GGTT mappings at the configured
/// dirty rate, flips the display plane and reprograms a fence now and then.
struct Workload {
    static let flipInterval: UInt64 = 50
    static let fenceInterval: UInt64 = 100
    static let userInterrupt: UInt64 = 1 << 0
    static let flipDone: UInt64 = 1 << 3

    let geometry: VGPUGeometry
    /// Offsets in low GM (the framebuffers) and high GM (the texture pool); the guest
    /// adds the bases PVINFO gave it to make graphics addresses.
    let framebufferOffset: [UInt64]
    let framebufferPages: Int
    let poolPages: Int
    let multiplier: UInt64

    init(geometry g: VGPUGeometry, config: WorkloadConfig) {
        geometry = g
        let page = UInt64(GPULayout.pageSize)
        let fbBytes = (UInt64(g.width * g.height * 4) + page - 1) / page * page
        let fb0 = (GPULayout.ringBase + UInt64(GPULayout.ringPages) * page + 0xffff) & ~0xffff
        framebufferOffset = [fb0, (fb0 + fbBytes + 0xffff) & ~0xffff]
        framebufferPages = Int(fbBytes / page)
        poolPages = min(config.workingSetMiB * 256, Int(g.highGMBytes / page))
        // Graphics page p lives in frame (p * m + 17) mod n: a fixed scramble, so
        // GGTT entries mean something. m is prime, hence coprime with n unless it divides it.
        let n = UInt64(g.gmPages)
        multiplier = n % 40503 == 0 ? 1 : 40503
    }

    func framebufferBase(_ i: Int, _ hw: Hardware) -> UInt64 { hw.guestLowGMBase + framebufferOffset[i] }
    func poolBase(_ hw: Hardware) -> UInt64 { hw.guestHighGMBase }

    /// Pages the guest renders into: both framebuffers and the texture pool.
    var workingSetPages: Int { 2 * framebufferPages + poolPages }

    func frame(forPage p: UInt64) -> UInt32 {
        UInt32((p &* multiplier &+ 17) % UInt64(geometry.gmPages))
    }

    /// The frame behind a graphics address, mapping its page first if the guest has not.
    func ensureMapped(_ address: UInt64, _ hw: inout Hardware) -> UInt32 {
        if let frame = hw.frame(forGraphicsAddress: address) { return frame }
        let p = address / UInt64(GPULayout.pageSize)
        let frame = frame(forPage: p)
        try? hw.writeBAR0(offset: hw.ggttOffset + Int(p) * 8, size: 8, value: UInt64(frame) << 12 | 0x3)
        return frame
    }

    func tick(_ s: inout WorkloadState, _ hw: inout Hardware, bytesPerTick: UInt64) {
        defer { s.tick &+= 1 }
        if hw.register("RING_CTL") & 1 == 0 {
            loadDriver(&s, &hw)
            return
        }
        submitBatch(&s, &hw)
        render(&s, &hw, bytes: bytesPerTick)
        if s.tick % Workload.flipInterval == 0 { flip(&s, &hw) }
        if s.tick % Workload.fenceInterval == 0 {
            let page = UInt64(GPULayout.pageSize)
            let fence = Int((s.tick / Workload.fenceInterval) % UInt64(GPULayout.fenceCount))
            let start = poolBase(hw) + (s.rng.next() % UInt64(max(poolPages, 1))) * page
            programFence(fence, start: start, end: start + 16 * page, &hw)
        }
    }

    /// The guest renders every page of both framebuffers and its texture pool
    /// once (mapping them first): a device with its working set filled.
    func fillWorkingSet(_ s: inout WorkloadState, _ hw: inout Hardware) {
        fill(workingSetAddresses(hw)[...], &s, &hw)
    }

    /// The graphics address of every page of the working set, in fill order.
    func workingSetAddresses(_ hw: Hardware) -> [UInt64] {
        let page = UInt64(GPULayout.pageSize)
        let pool = poolBase(hw)
        return (0..<2).flatMap { i in (0..<framebufferPages).map { framebufferBase(i, hw) + UInt64($0) * page } }
            + (0..<poolPages).map { pool + UInt64($0) * page }
    }

    func fill(_ addresses: ArraySlice<UInt64>, _ s: inout WorkloadState, _ hw: inout Hardware) {
        for address in addresses { hw.fillFrame(ensureMapped(address, &hw), &s.rng) }
    }

    /// The guest renders `bytes` worth of pages (carrying the remainder) into
    /// the back framebuffer and its texture pool, through GGTT mappings.
    func render(_ s: inout WorkloadState, _ hw: inout Hardware, bytes: UInt64) {
        guard hw.register("RING_CTL") & 1 == 1 else { return }
        s.budget += bytes
        let page = UInt64(GPULayout.pageSize)
        while s.budget >= page {
            s.budget -= page
            let back = Int(1 - s.frontBuffer)
            let choice = s.rng.next(below: framebufferPages + poolPages)
            let address = choice < framebufferPages
                ? framebufferBase(back, hw) + UInt64(choice) * page
                : poolBase(hw) + UInt64(choice - framebufferPages) * page
            hw.fillFrame(ensureMapped(address, &hw), &s.rng)
        }
    }

    private func guestWrite(_ name: String, _ value: UInt64, _ hw: inout Hardware) {
        guard let spec = hw.table[name] else { return }
        try? hw.writeBAR0(offset: spec.offset, size: spec.width, value: value)
    }

    private func loadDriver(_ s: inout WorkloadState, _ hw: inout Hardware) {
        let page = UInt64(GPULayout.pageSize)
        let ring = hw.guestLowGMBase + GPULayout.ringBase
        for i in 0..<GPULayout.ringPages { _ = ensureMapped(ring + UInt64(i) * page, &hw) }
        guestWrite("RING_HEAD", 0, &hw)
        guestWrite("RING_TAIL", 0, &hw)
        guestWrite("RING_START", ring, &hw)
        guestWrite("RING_CTL", UInt64(GPULayout.ringPages - 1) << 12 | 1, &hw)
        guestWrite("GT_IER", Workload.userInterrupt, &hw)
        guestWrite("GT_IMR", 0xffff_ffff & ~Workload.userInterrupt, &hw)
        guestWrite("DE_PIPE_A_IER", Workload.flipDone, &hw)
        guestWrite("DE_PIPE_A_IMR", 0xffff_ffff & ~Workload.flipDone, &hw)
        guestWrite("PLANE_1_A_STRIDE", UInt64(geometry.width * 4 / 64), &hw)
        guestWrite("PLANE_1_A_SURF", framebufferBase(0, hw), &hw)
        guestWrite("PLANE_1_A_CTL", 0x8400_0000, &hw)     // enable, 32bpp XRGB
        for i in 0..<2 {
            let base = framebufferBase(i, hw)
            programFence(i, start: base, end: base + UInt64(framebufferPages) * page, &hw)
        }
        s.frontBuffer = 0
    }

    private func programFence(_ i: Int, start: UInt64, end: UInt64, _ hw: inout Hardware) {
        let value = ((end - UInt64(GPULayout.pageSize)) & 0xffff_f000) << 32 | (start & 0xffff_f000) | 1
        guestWrite("FENCE_\(i)", value, &hw)
    }

    private func submitBatch(_ s: inout WorkloadState, _ hw: inout Hardware) {
        let ringSize = ((hw.register("RING_CTL") >> 12) & 0x1ff + 1) * UInt64(GPULayout.pageSize)
        let tail = hw.register("RING_TAIL")
        let start = hw.register("RING_START")
        // MI_NOOP, MI_STORE_DATA (sequence number), MI_USER_INTERRUPT.
        let batch: [UInt32] = [0, 0x1000_0002, UInt32(truncatingIfNeeded: s.tick), 0x0100_0000]
        let address = start + tail
        let frame = ensureMapped(address, &hw)
        batch.withUnsafeBytes { hw.writeFrame(frame, at: Int(address % UInt64(GPULayout.pageSize)), $0) }
        let newTail = (tail + 16) % ringSize
        guestWrite("RING_TAIL", newTail, &hw)
        // The hardware executes the batch: HEAD catches up, the user interrupt fires.
        hw.set("RING_HEAD", newTail)
        raise(Workload.userInterrupt, iir: "GT_IIR", imr: "GT_IMR", ier: "GT_IER", &hw)
    }

    private func flip(_ s: inout WorkloadState, _ hw: inout Hardware) {
        let back = 1 - s.frontBuffer
        guestWrite("PLANE_1_A_SURF", framebufferBase(Int(back), hw), &hw)
        hw.set("PIPE_A_FRMCNT", (hw.register("PIPE_A_FRMCNT") + 1) & 0xffff_ffff)
        raise(Workload.flipDone, iir: "DE_PIPE_A_IIR", imr: "DE_PIPE_A_IMR", ier: "DE_PIPE_A_IER", &hw)
        s.frontBuffer = back
    }

    /// Latches an interrupt in IIR when it is enabled and not masked.
    private func raise(_ bit: UInt64, iir: String, imr: String, ier: String, _ hw: inout Hardware) {
        guard hw.register(ier) & bit != 0, hw.register(imr) & bit == 0 else { return }
        let old = hw.register(iir)
        hw.set(iir, old | bit)
        // A newly latched bit is an interrupt the device signals (an MSI, or INTx asserting).
        if old & bit == 0 { hw.interruptsRaised &+= 1 }
    }
}
