import GPUModel
import Testing
#if canImport(Glibc)
import Glibc
#endif

let v54 = VGPUGeometry(lowGMBytes: 128 << 20, highGMBytes: 512 << 20, vgpuID: 1)
let v51 = VGPUGeometry(lowGMBytes: 512 << 20, highGMBytes: 2048 << 20, vgpuID: 2)

func stepped(seed: UInt64 = 7, rate: Double = 2) -> WorkloadConfig {
    WorkloadConfig(seed: seed, dirtyRateMBps: rate, workingSetMiB: 1, clock: .stepped)
}

func le(_ bytes: [UInt8]) -> UInt32 { bytes.enumerated().reduce(0) { $0 | UInt32($1.element) << (8 * UInt32($1.offset)) } }
func bytes(_ v: UInt32, _ n: Int) -> [UInt8] { (0..<n).map { UInt8((v >> (8 * UInt32($0))) & 0xff) } }

@Suite("PCI config space")
struct ConfigSpaceTests {
    @Test("type-0 header with GVT-g ids and VGA class")
    func header() throws {
        let dev = VGPU(uuid: "a", geometry: v54, workload: stepped())
        #expect(le(try dev.readConfig(offset: 0, count: 4)) == 0x591d_8086)
        #expect(try dev.readConfig(offset: 0x09, count: 3) == [0x00, 0x00, 0x03])
        #expect(try dev.readConfig(offset: 0x0e, count: 1) == [0x00])
        #expect(le(try dev.readConfig(offset: 0x2c, count: 4)) == 0x2212_8086)
    }

    @Test("BAR sizing as GVT-g sets it up: BAR0 the host's 16 MiB, BAR2 the host's whole aperture at its address")
    func barSizing() throws {
        let dev = VGPU(uuid: "a", geometry: v54, workload: stepped())
        // intel_vgpu_init_cfg_space: BAR0's low half is the host's, upper halves cleared, BAR2 preset.
        #expect(le(try dev.readConfig(offset: 0x10, count: 4)) == UInt32(HostFunction.bar0Address) | 0x4)
        #expect(le(try dev.readConfig(offset: 0x14, count: 4)) == 0)
        #expect(le(try dev.readConfig(offset: 0x18, count: 4)) == UInt32(HostFunction.bar2Address) | 0xc)
        try dev.writeConfig(offset: 0x10, bytes: bytes(0xffff_ffff, 4))
        try dev.writeConfig(offset: 0x14, bytes: bytes(0xffff_ffff, 4))
        #expect(le(try dev.readConfig(offset: 0x10, count: 4)) == 0xff00_0004)   // 16 MiB
        #expect(le(try dev.readConfig(offset: 0x14, count: 4)) == 0xffff_ffff)
        try dev.writeConfig(offset: 0x18, bytes: bytes(0xffff_ffff, 4))
        // v54 alone: the smallest aperture holding its 128 MiB of low GM.
        #expect(le(try dev.readConfig(offset: 0x18, count: 4)) == 0xf800_000c)
        let onHost = VGPU(uuid: "h", geometry: VGPUGeometry(lowGMBytes: 128 << 20, highGMBytes: 512 << 20, lowGMBase: 128 << 20,
                                                            highGMBase: 3584 << 20, apertureBytes: 1 << 30), workload: stepped())
        try onHost.writeConfig(offset: 0x18, bytes: bytes(0xffff_ffff, 4))
        #expect(le(try onHost.readConfig(offset: 0x18, count: 4)) == 0xc000_000c)   // the host's 1 GiB, prefetchable
        // BAR4 (the host's I/O BAR) is cleared and unimplemented, as is the ROM.
        #expect(le(try dev.readConfig(offset: 0x20, count: 4)) == 0)
        try dev.writeConfig(offset: 0x20, bytes: bytes(0xffff_ffff, 4))
        #expect(le(try dev.readConfig(offset: 0x20, count: 4)) == 0)
        #expect(le(try dev.readConfig(offset: 0x30, count: 4)) == 0)
        // An address is kept, aligned to the size.
        try dev.writeConfig(offset: 0x10, bytes: bytes(0xf612_3456, 4))
        #expect(le(try dev.readConfig(offset: 0x10, count: 4)) == 0xf600_0004)
        // A larger GGTT space makes a larger BAR0.
        let big = VGPU(uuid: "b", geometry: VGPUGeometry(lowGMBytes: 2048 << 20, highGMBytes: 8192 << 20), workload: stepped())
        try big.writeConfig(offset: 0x10, bytes: bytes(0xffff_ffff, 4))
        #expect(le(try big.readConfig(offset: 0x10, count: 4)) == 0xfc00_0004)   // 64 MiB
    }

    @Test("4096 bytes built from the host's: its capability list, no stolen memory, no OpRegion address, decodes off")
    func capabilityWalk() throws {
        let dev = VGPU(uuid: "a", geometry: v54, workload: stepped())
        let c = try dev.readConfig(offset: 0, count: 4096)
        #expect(c[0x06] & 0x10 != 0)
        var ids: [UInt8] = [], offsets: [Int] = []
        var next = Int(c[0x34])
        while next != 0 && ids.count < 48 { offsets.append(next); ids.append(c[next]); next = Int(c[next + 1]) }
        #expect(offsets == [0x40, 0x70, 0xac, 0xd0] && ids == [0x09, 0x10, 0x05, 0x01])
        var ext: [UInt16] = []
        var e = 0x100
        while e != 0 && ext.count < 16 {
            let h = le(Array(c[e..<e + 4]))
            if h == 0 { break }
            ext.append(UInt16(h & 0xffff)); e = Int(h >> 20)
        }
        #expect(ext == [0x1b, 0x0f, 0x13])
        let gmch = UInt16(c[0x50]) | UInt16(c[0x51]) << 8
        #expect(gmch >> 8 == 0, "GMS cleared: the guest sees no stolen memory")
        #expect(((1 << Int((gmch >> 6) & 3)) << 20) / 8 * 4096 == Int(v54.gmSpaceBytes), "GGMS sizes the whole GGTT space")
        #expect(le(Array(c[0xfc..<0x100])) == 0, "ASLS cleared for the guest's OpRegion")
        #expect(le(Array(c[0x04..<0x06])) & 0x7 == 0, "I/O, memory and bus master start off")
    }

    @Test("RW1C status bits clear on 1 and survive 0; read-only and reserved bits keep their value")
    func accessRules() throws {
        let dev = VGPU(uuid: "a", geometry: v54, workload: stepped())
        dev.signalConfigStatus(offset: 0x07, bits: 0x20)            // received master abort (status bit 13)
        #expect(try dev.readConfig(offset: 0x06, count: 2) == [0x10, 0x20])
        try dev.writeConfig(offset: 0x06, bytes: [0x00, 0x00])
        #expect(try dev.readConfig(offset: 0x06, count: 2) == [0x10, 0x20])
        try dev.writeConfig(offset: 0x06, bytes: [0xff, 0x20])      // capability bit is read-only
        #expect(try dev.readConfig(offset: 0x06, count: 2) == [0x10, 0x00])
        try dev.writeConfig(offset: 0x00, bytes: [0xff, 0xff])       // vendor id is read-only
        #expect(le(try dev.readConfig(offset: 0x00, count: 2)) == 0x8086)
        try dev.writeConfig(offset: 0x04, bytes: [0xff, 0xff])       // command: only defined bits stick
        #expect(le(try dev.readConfig(offset: 0x04, count: 2)) == 0x0547)
        // PMCSR (the host's PM capability at 0xd0): power state RW.
        try dev.writeConfig(offset: 0xd4, bytes: [0x03, 0x00])
        #expect(try dev.readConfig(offset: 0xd4, count: 1) == [0x03])
        #expect(throws: AccessError.self) { try dev.readConfig(offset: 4095, count: 2) }
        #expect(throws: AccessError.self) { try dev.writeConfig(offset: 4096, bytes: [0]) }
    }
}

@Suite("BAR0 MMIO registers and GGTT")
struct MMIOTests {
    func offset(_ dev: VGPU, _ name: String) -> Int {
        dev.withHardware { $0.table[name]!.offset }
    }

    @Test("registers in whole or in part, as GVT-g's MMIO emulation takes kvmgt's pieces; natural alignment only")
    func widths() throws {
        let dev = VGPU(uuid: "a", geometry: v54, workload: stepped())
        let tail = offset(dev, "RING_TAIL")
        #expect(try dev.readBAR0(offset: tail, size: 4) == 0)
        try dev.writeBAR0(offset: tail, size: 2, value: 0xfff8)                  // a 2-byte write keeps the other half
        #expect(try dev.readBAR0(offset: tail, size: 4) == 0xfff8)
        try dev.writeBAR0(offset: tail + 2, size: 1, value: 0x01)
        #expect(try dev.readBAR0(offset: tail, size: 4) == 0x1_fff8)
        #expect(try dev.readBAR0(offset: tail + 1, size: 1) == 0xff)
        #expect(throws: AccessError.self) { try dev.readBAR0(offset: tail + 1, size: 2) }
        #expect(throws: AccessError.self) { try dev.readBAR0(offset: tail, size: 3) }
        let fence = offset(dev, "FENCE_3")
        try dev.writeBAR0(offset: fence, size: 8, value: 0x1234_5000_0006_7001)
        #expect(try dev.readBAR0(offset: fence, size: 8) == 0x1234_5000_0006_7001)
        #expect(try dev.readBAR0(offset: fence, size: 4) == 0x0006_7001)
        #expect(try dev.readBAR0(offset: fence + 4, size: 4) == 0x1234_5000)
        // An 8-byte access over two 4-byte registers reaches both, each by its own mask.
        try dev.writeBAR0(offset: tail, size: 8, value: 0xffff_ffff_ffff_ffff)
        #expect(try dev.readBAR0(offset: tail, size: 8) == 0x001f_fffc_001f_fff8)
        #expect(try dev.readBAR0(offset: 0x1000, size: 4) == 0)              // unimplemented space reads as zero
        #expect(throws: AccessError.self) { try dev.readBAR0(offset: 0x1002, size: 4) }
        let size = dev.withHardware { $0.bar0Size }
        #expect(size == 16 << 20)
        #expect(throws: AccessError.self) { try dev.readBAR0(offset: size, size: 4) }
        #expect(throws: AccessError.self) { try dev.readBAR0(offset: size - 4, size: 8) }
    }

    @Test("RW masks, read-only and write-1-to-clear registers")
    func accessRules() throws {
        let dev = VGPU(uuid: "a", geometry: v54, workload: stepped())
        try dev.writeBAR0(offset: offset(dev, "RING_TAIL"), size: 4, value: 0xffff_ffff)
        #expect(try dev.readBAR0(offset: offset(dev, "RING_TAIL"), size: 4) == 0x001f_fff8)
        let magic = offset(dev, "VGT_MAGIC")
        try dev.writeBAR0(offset: magic, size: 8, value: 0)
        #expect(try dev.readBAR0(offset: magic, size: 8) == 0x4776_5447_7654_4776)
        #expect(try dev.readBAR0(offset: offset(dev, "VGT_ID"), size: 4) == 1)
        #expect(try dev.readBAR0(offset: offset(dev, "PLANE_1_A_SIZE"), size: 4) == UInt64(1199 << 16 | 1919))
        // Run the workload until it latches the user interrupt, then clear it.
        try dev.step(3)
        let iir = offset(dev, "GT_IIR")
        #expect(try dev.readBAR0(offset: iir, size: 4) == 1)
        try dev.writeBAR0(offset: iir, size: 4, value: 0)
        #expect(try dev.readBAR0(offset: iir, size: 4) == 1)
        try dev.writeBAR0(offset: iir, size: 4, value: 1)
        #expect(try dev.readBAR0(offset: iir, size: 4) == 0)
    }

    @Test("GGTT entries map graphics pages to frames; the workload's ring writes land in the mapped frame")
    func ggtt() throws {
        let dev = VGPU(uuid: "a", geometry: v54, workload: stepped(rate: 0))
        let base = dev.withHardware { $0.ggttOffset }
        #expect(base == 8 << 20)
        let ringPage = Int(GPULayout.ringBase) / 4096
        // The guest maps the ring's first page to frame 4242 itself.
        try dev.writeBAR0(offset: base + ringPage * 8, size: 8, value: 4242 << 12 | 0x3)
        #expect(try dev.readBAR0(offset: base + ringPage * 8, size: 8) == 4242 << 12 | 0x3)
        #expect(throws: AccessError.self) { try dev.writeBAR0(offset: base + 4, size: 2, value: 0) }     // GGTT takes 4 or 8 bytes
        #expect(throws: AccessError.self) { try dev.writeBAR0(offset: base + 8, size: 8, value: UInt64(v54.gmPages) << 12 | 1) }   // beyond its frames
        // Entries outside the vGPU's GM ranges read as zero and ignore writes (GVT-g's GGTT emulation).
        let outside = base + v54.gmPages * 8 + 8 * 1024
        #expect(v54.highGMBase == v54.apertureBytes)
        try dev.writeBAR0(offset: outside, size: 8, value: 7 << 12 | 1)
        #expect(try dev.readBAR0(offset: outside, size: 8) == 0)
        try dev.step(3)     // load the driver, then two batches through the ring
        let page = dev.withHardware { $0.memory[4242] }
        #expect(page != nil)
        // Batch 2 (tick 2) was written at TAIL 16: MI_NOOP, MI_STORE_DATA, sequence 2, MI_USER_INTERRUPT.
        #expect(Array(page![16..<32]) == [0, 0, 0, 0, 2, 0, 0, 0x10, 2, 0, 0, 0, 0, 0, 0, 1])
        #expect(dev.withHardware { $0.register("RING_HEAD") } == 32)
    }
}

@Suite("workload and clocks")
struct WorkloadTests {
    @Test("the workload advances only while the device runs")
    func onlyWhileRunning() throws {
        let dev = VGPU(uuid: "a", geometry: v54, workload: stepped())
        try dev.step(10)
        let digest = dev.stateDigest
        dev.isRunning = false
        try dev.step(100)
        #expect(dev.ticks == 10)
        #expect(dev.stateDigest == digest)
        dev.isRunning = true
        try dev.step(1)
        #expect(dev.ticks == 11)
        #expect(dev.stateDigest != digest)
    }

    @Test("stepped clock: same seed and steps give the same digest, another seed another")
    func determinism() throws {
        let a = VGPU(uuid: "a", geometry: v54, workload: stepped(seed: 42))
        let b = VGPU(uuid: "b", geometry: v54, workload: stepped(seed: 42))
        let c = VGPU(uuid: "c", geometry: v54, workload: stepped(seed: 43))
        try a.step(250)
        try b.step(100); try b.step(150)
        try c.step(250)
        #expect(a.stateDigest == b.stateDigest)
        #expect(a.stateDigest != c.stateDigest)
        #expect(a.residentPages > 100)       // 2 MB/s for 2.5 s of ticks
        // Tick 0 loads the driver; flips follow at ticks 50, 100, 150 and 200.
        #expect(a.withHardware { $0.register("PIPE_A_FRMCNT") } == 4)
    }

    @Test("real-time clock: a running device changes on its own; a stopped one does not")
    func realTime() throws {
        let dev = VGPU(uuid: "a", geometry: v54, workload: WorkloadConfig(seed: 1, dirtyRateMBps: 1, workingSetMiB: 1, clock: .realTime))
        #expect(throws: AccessError.self) { try dev.step(1) }
        let start = dev.ticks
        usleep(60_000)
        #expect(dev.ticks >= start + 3)
        dev.isRunning = false
        let digest = dev.stateDigest
        usleep(30_000)
        #expect(dev.stateDigest == digest)
    }

    @Test("dirty tracking records pages, GGTT pages and register blocks, and clears")
    func dirtyTracking() throws {
        let dev = VGPU(uuid: "a", geometry: v54, workload: stepped(rate: 1))
        try dev.step(20)
        let dirty = dev.takeDirty()
        #expect(dirty.pages.count > 5)
        #expect(!dirty.ggttPages.isEmpty)
        #expect(dirty.registerBlocks.isSuperset(of: [.ring, .interrupts, .display, .fences]))
        #expect(dev.takeDirty().isEmpty)
        try dev.step(1)
        #expect(dev.takeDirty().registerBlocks.contains(.ring))
    }

    @Test("reset: registers and config to reset values, GGTT and memory kept, the driver loads again")
    func reset() throws {
        let dev = VGPU(uuid: "a", geometry: v54, workload: stepped())
        try dev.step(30)
        try dev.writeConfig(offset: 0x04, bytes: [0x07, 0x00])
        let (pages, ptes) = dev.withHardware { ($0.memory.count, $0.ggtt.count) }
        dev.reset()
        dev.withHardware { hw in
            #expect(hw.register("RING_CTL") == 0)
            #expect(hw.register("GT_IMR") == 0xffff_ffff)
            #expect(hw.memory.count == pages)
            #expect(hw.ggtt.count == ptes)
        }
        #expect(try dev.readConfig(offset: 0x04, count: 2) == [0, 0])
        try dev.step(1)
        #expect(dev.withHardware { $0.register("RING_CTL") } & 1 == 1)
    }

    @Test("an idle V5_1 (512 MB + 2 GB) allocates no memory pages and no GGTT entries")
    func sparse() {
        let dev = VGPU(uuid: "a", geometry: v51, workload: stepped())
        #expect(dev.residentPages == 0)
        #expect(dev.withHardware { $0.ggtt.isEmpty })
        #expect(dev.withHardware { $0.ggttEntries } == 655_360)
    }
}

@Suite("bounded work per request")
struct BoundedWorkTests {
    @Test("a step larger than one request may do is refused with E2BIG, saying how many ticks fit")
    func stepBound() throws {
        let idle = VGPU(uuid: "idle", geometry: v54, workload: stepped(rate: 0))
        #expect(throws: AccessError(errno: 7, message: "stepping 100001 ticks at 0.0 MB/s is more work than one write may do (at most 100000 ticks and 32768 pages); write at most 100000 and step again")) {
            try idle.step(VGPU.ticksPerStep + 1)
        }
        try idle.step(1000)
        let busy = VGPU(uuid: "busy", geometry: v54, workload: stepped(rate: WorkloadConfig.maxDirtyRateMBps))
        do {
            try busy.step(1_000_000)
            Issue.record("a million ticks at 10 GB/s were accepted")
        } catch {
            #expect(error.errno == 7 && error.message.hasSuffix("write at most 1 and step again"), "\(error)")
        }
        let before = busy.ticks
        try busy.step(1)                                  // the largest step at the highest rate still fits
        #expect(busy.ticks == before + 1)
    }

    @Test("fill renders the whole working set in chunks, as one fill did before")
    func chunkedFill() throws {
        var config = stepped(rate: 0)
        config.workingSetMiB = 40                         // 10,240 pool pages: three chunks
        let gpu = VGPU(uuid: "fill", geometry: v54, workload: config)
        try gpu.step(1)                                   // the driver loads
        gpu.fillWorkingSet()
        let framebuffer = (1920 * 1200 * 4 + 4095) / 4096
        #expect(gpu.residentPages >= 10_240 + 2 * framebuffer)
        gpu.isRunning = false
        let stopped = gpu.residentPages
        gpu.fillWorkingSet()                              // a stopped device does not change
        #expect(gpu.residentPages == stopped)
    }
}

@Suite("graphics memory page store")
struct PageStoreTests {
    @Test("a reserved mapping and loose pages (a refused reservation) hold the same bytes", arguments: [true, false])
    func sameBehaviour(reserve: Bool) {
        let store = PageStore(frames: 70_000, reserve: reserve)
        #expect(store.count == 0 && store.writtenFrames.isEmpty && store.page(5) == nil, "nothing is written, nothing is mapped")
        #expect(!store.isReserved)
        let frames: [UInt32] = [69_999, 3, 64, 65_536, 3, 0]
        for (i, f) in frames.enumerated() {
            store.withMutablePage(f) { page in
                #expect(f == 3 && i == 4 ? page[0] == 2 : page.allSatisfy { $0 == 0 }, "a new page is zero; a rewritten one keeps its bytes")
                page[0] = UInt8(truncatingIfNeeded: i + 1)
                page[4095] = 0xab
            }
        }
        #expect(store.isReserved == reserve)
        #expect(store.count == 5)
        #expect(store.writtenFrames == [0, 3, 64, 65_536, 69_999])
        #expect(store[3]?.first == 5 && store[3]?.last == 0xab && store[69_999]?.first == 1)
        #expect(store.page(4) == nil && !store.contains(70_000))
    }
}
