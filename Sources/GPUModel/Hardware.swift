/// Why a region access was refused. Carries the errno the VFIO region would
/// return and a message for logs.
public struct AccessError: Error, Sendable, Equatable, CustomStringConvertible {
    public let errno: Int32
    public let message: String
    public var description: String { message }
    public init(errno: Int32, message: String) {
        self.errno = errno
        self.message = message
    }
    public static func invalid(_ message: String) -> AccessError { AccessError(errno: 22, message: message) }
}

/// What changed since dirty tracking was last cleared.
public struct DirtySet: Sendable, Equatable {
    /// Graphics memory frames written.
    public var pages: Set<UInt32> = []
    /// GGTT pages (512 PTEs each) with a changed entry.
    public var ggttPages: Set<UInt32> = []
    public var registerBlocks: Set<RegisterBlock> = []
    public var config = false

    public var isEmpty: Bool { pages.isEmpty && ggttPages.isEmpty && registerBlocks.isEmpty && !config }
    public mutating func formUnion(_ other: DirtySet) {
        pages.formUnion(other.pages)
        ggttPages.formUnion(other.ggttPages)
        registerBlocks.formUnion(other.registerBlocks)
        config = config || other.config
    }
}

/// The register file, GGTT and graphics memory of one vGPU. A value type with
/// no locking: `VGPU` owns one and serialises access.
public struct Hardware: Sendable {
    public let geometry: VGPUGeometry
    public let table: RegisterTable
    public let bar0Size: Int
    public let ggttOffset: Int
    /// BAR2: the host's whole aperture, as GVT-g sizes it; the vGPU's low GM is its slice.
    public let apertureSize: Int
    /// Table indices of PVINFO's GM bases: the guest's view of where its GM sits.
    let lowBaseIndex: Int, highBaseIndex: Int
    public var config: ConfigSpace
    /// Interrupts signalled so far (bits newly latched in an IIR); not device state, a count.
    public internal(set) var interruptsRaised: UInt64 = 0
    /// Whether the interrupt output is asserted: a latched GT or display interrupt.
    public var interruptPending: Bool { register("GT_IIR") != 0 || register("DE_PIPE_A_IIR") != 0 }
    public internal(set) var registers: [UInt64]
    /// Sparse GGTT: entry index → PTE (gen8 layout: bit 0 present, bits 12-38 frame).
    public internal(set) var ggtt: [UInt32: UInt64] = [:]
    /// Graphics memory: 4 KiB frames, committed on first write.
    public let memory: PageStore
    public internal(set) var dirty = DirtySet()

    public init(geometry: VGPUGeometry) {
        self.geometry = geometry
        table = RegisterTable.gvt(geometry)
        bar0Size = GPULayout.bar0Size(for: geometry)
        ggttOffset = GPULayout.ggttOffset(for: geometry)
        apertureSize = Int(geometry.apertureBytes)
        config = HostFunction.vgpuConfigSpace(geometry)
        registers = table.resets
        memory = PageStore(frames: geometry.gmPages)
        lowBaseIndex = table.index(named: "VGT_LOW_GM_BASE")!
        highBaseIndex = table.index(named: "VGT_HIGH_GM_BASE")!
    }

    /// Where the guest's low and high GM start (PVINFO): the device's placement,
    /// or the source's after a resume (the guest keeps the addresses it was given).
    public var guestLowGMBase: UInt64 { registers[lowBaseIndex] }
    public var guestHighGMBase: UInt64 { registers[highBaseIndex] }

    /// The vGPU's own GGTT slot (0..<gmPages: low GM, then high GM) for the GGTT entry
    /// of GM page `page`, or nil for a page outside the vGPU's ranges.
    @inline(__always)
    func ggttSlot(page: UInt64) -> UInt32? {
        let low = registers[lowBaseIndex] >> 12, high = registers[highBaseIndex] >> 12
        let lowPages = geometry.lowGMBytes >> 12, highPages = geometry.highGMBytes >> 12
        if page >= low, page - low < lowPages { return UInt32(page - low) }
        if page >= high, page - high < highPages { return UInt32(lowPages + page - high) }
        return nil
    }

    public var ggttEntries: Int { geometry.gmPages }

    // MARK: Registers

    public func register(_ name: String) -> UInt64 {
        table.index(named: name).map { registers[$0] } ?? 0
    }

    /// Hardware-side update (the GPU itself, not the guest): no access checks.
    mutating func set(_ name: String, _ value: UInt64) {
        guard let i = table.index(named: name) else { return }
        let spec = table.registers[i]
        let masked = spec.width == 8 ? value : value & 0xffff_ffff
        if registers[i] != masked {
            registers[i] = masked
            dirty.registerBlocks.insert(spec.block)
        }
    }

    // MARK: BAR0 accesses (what the guest does)

    /// A read of `size` bytes (1, 2, 4 or 8, naturally aligned) at `offset` of
    /// BAR0, as GVT-g's MMIO emulation takes the pieces kvmgt splits an access
    /// into: registers are read whole or in part (a 4-byte read of a 64-bit
    /// fence gives one half, an 8-byte read at RING_TAIL gives TAIL and HEAD),
    /// unimplemented space reads as zero, GGTT entries take 4 or 8 bytes.
    public func readBAR0(offset: Int, size: Int) throws(AccessError) -> UInt64 {
        try checkBAR0(offset: offset, size: size)
        if offset >= ggttOffset {
            // Outside the vGPU's ranges an entry reads as zero (GVT-g's emulate_ggtt_mmio_read).
            guard let slot = ggttSlot(page: UInt64((offset - ggttOffset) / GPULayout.pteSize)) else { return 0 }
            let pte = ggtt[slot] ?? 0
            return size == 8 ? pte : (pte >> (UInt64(offset % 8) * 8)) & 0xffff_ffff
        }
        if let i = table.index(at: offset), table.registers[i].width == size { return registers[i] }
        var value: UInt64 = 0
        for b in 0..<size {
            guard let (i, shift) = register(containing: offset + b) else { continue }
            value |= ((registers[i] >> shift) & 0xff) << (UInt64(b) * 8)
        }
        return value
    }

    public mutating func writeBAR0(offset: Int, size: Int, value: UInt64) throws(AccessError) {
        try checkBAR0(offset: offset, size: size)
        if offset >= ggttOffset {
            // Writes outside the vGPU's ranges are dropped (GVT-g's emulate_ggtt_mmio_write).
            guard let index = ggttSlot(page: UInt64((offset - ggttOffset) / GPULayout.pteSize)) else { return }
            var pte = value
            if size == 4 {
                let shift = UInt64(offset % 8) * 8
                pte = ((ggtt[index] ?? 0) & ~(0xffff_ffff << shift)) | (value & 0xffff_ffff) << shift
            }
            // GVT-g validates each guest GGTT write; an entry mapping memory the
            // vGPU does not have is refused (a saved image could not hold it).
            if let problem = pteViolation(index: index, pte) { throw .invalid(problem) }
            setPTE(index, pte)
            return
        }
        if let i = table.index(at: offset), table.registers[i].width == size {
            store(i, value, bytes: UInt64.max)
            return
        }
        // Part of one register, or parts of two: each takes the bytes that fall in it.
        var b = 0
        while b < size {
            guard let (i, _) = register(containing: offset + b) else { b += 1; continue }
            let spec = table.registers[i]
            let end = min(size, spec.offset + spec.width - offset)
            var mask: UInt64 = 0, bits: UInt64 = 0
            for k in b..<end {
                let at = UInt64(offset + k - spec.offset) * 8
                mask |= 0xff << at
                bits |= ((value >> (UInt64(k) * 8)) & 0xff) << at
            }
            store(i, bits, bytes: mask)
            b = end
        }
    }

    /// Applies a guest write of `value` to the register's bytes in `bytes`, by its access rules.
    private mutating func store(_ i: Int, _ value: UInt64, bytes: UInt64) {
        let spec = table.registers[i]
        let old = registers[i]
        let mask = spec.writeMask & bytes
        var new = old
        switch spec.access {
        case .ro: return
        case .rw: new = (old & ~mask) | (value & mask)
        case .rw1c: new = old & ~(value & mask)
        }
        if new != old {
            registers[i] = new
            dirty.registerBlocks.insert(spec.block)
        }
    }

    /// The named register holding byte `offset`, and that byte's bit shift in it.
    func register(containing offset: Int) -> (index: Int, shift: UInt64)? {
        for start in [offset & ~7, offset & ~3] {
            if let i = table.index(at: start), start + table.registers[i].width > offset {
                return (i, UInt64(offset - start) * 8)
            }
        }
        return nil
    }

    private func checkBAR0(offset: Int, size: Int) throws(AccessError) {
        guard offset >= 0, size > 0, size <= 8, size & (size - 1) == 0, offset + size <= bar0Size else {
            throw .invalid("access of \(size) bytes at 0x\(String(offset, radix: 16)) is outside BAR0 (0x\(String(bar0Size, radix: 16)) bytes) or not 1, 2, 4 or 8 bytes")
        }
        guard offset % size == 0 else {
            throw .invalid("MMIO accesses are naturally aligned: \(size) bytes at 0x\(String(offset, radix: 16))")
        }
        if offset >= ggttOffset {
            guard size == 8 || size == 4 else {
                throw .invalid("GGTT entries are accessed 4 or 8 bytes at a time: got \(size) bytes at 0x\(String(offset, radix: 16))")
            }
        }
    }

    // MARK: GGTT and memory

    mutating func setPTE(_ index: UInt32, _ pte: UInt64) {
        let old = ggtt[index] ?? 0
        guard old != pte else { return }
        if pte == 0 { ggtt[index] = nil } else { ggtt[index] = pte }
        dirty.ggttPages.insert(index >> 9)
    }

    /// The frame a graphics address (the guest's, as PVINFO places its GM) maps to,
    /// if its PTE is present and in range.
    public func frame(forGraphicsAddress address: UInt64) -> UInt32? {
        guard let index = ggttSlot(page: address / UInt64(GPULayout.pageSize)), let pte = ggtt[index], pte & 1 == 1 else { return nil }
        let frame = (pte >> 12) & 0x7_ffff_ffff
        guard frame < UInt64(geometry.gmPages) else { return nil }
        return UInt32(frame)
    }

    /// Writes bytes into a frame, allocating the page on first write.
    mutating func writeFrame(_ frame: UInt32, at offset: Int, _ bytes: UnsafeRawBufferPointer) {
        memory.withMutablePage(frame) { page in
            page.baseAddress!.advanced(by: offset).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
        }
        dirty.pages.insert(frame)
    }

    mutating func fillFrame(_ frame: UInt32, _ rng: inout SplitMix64) {
        memory.withMutablePage(frame) { page in
            for i in stride(from: 0, to: GPULayout.pageSize, by: 8) { page.storeBytes(of: rng.next(), toByteOffset: i, as: UInt64.self) }
        }
        dirty.pages.insert(frame)
    }

    // MARK: Reset and dirty tracking

    /// Function-level reset: registers and config space to reset values; the
    /// GGTT and graphics memory are kept, as an FLR of the device leaves them.
    public mutating func functionLevelReset() {
        for (i, spec) in table.registers.enumerated() where registers[i] != table.resets[i] {
            registers[i] = table.resets[i]
            dirty.registerBlocks.insert(spec.block)
        }
        let before = config.bytes
        config.reset()
        if config.bytes != before { dirty.config = true }
    }

    /// Returns what changed since the last call and starts tracking afresh.
    public mutating func takeDirty() -> DirtySet {
        defer { dirty = DirtySet() }
        return dirty
    }

    mutating func markConfigDirty() { dirty.config = true }

    // MARK: Loading saved state (no guest access rules apply)

    /// Why a saved value cannot be register `index`'s, or nil. A value must
    /// fit the register's width, keep its read-only bits at their reset value,
    /// and PV info (the device's own geometry, shown to the guest) must be
    /// this device's; only VGT_ID, the vGPU's number, differs between devices.
    public func registerViolation(index: Int, value: UInt64) -> String? {
        let spec = table.registers[index]
        let digits = spec.width * 2
        if spec.width == 4 && value > 0xffff_ffff {
            return "\(spec.name) is 4 bytes wide; 0x\(hex(value, 16)) does not fit"
        }
        let reset = table.resets[index]
        if spec.access == .rw, (value ^ reset) & ~spec.writeMask != 0 {
            return "\(spec.name) = 0x\(hex(value, digits)) sets read-only bits 0x\(hex((value ^ reset) & ~spec.writeMask, digits))"
        }
        if index == lowBaseIndex || index == highBaseIndex { return gmBaseViolation(index: index, value: value) }
        if spec.block == .pvinfo, spec.name != "VGT_ID", value != reset {
            return "PV info \(spec.name) = 0x\(hex(value, digits)), this device's is 0x\(hex(reset, digits)): the stream describes another device"
        }
        return nil
    }

    /// The GM bases the guest was given travel with it (as XenGT's migration restored
    /// them): any page-aligned base whose range fits, low GM in the aperture, high GM in
    /// the GGTT space, not overlapping the other range as loaded so far.
    func gmBaseViolation(index: Int, value: UInt64) -> String? {
        let low = index == lowBaseIndex
        let size = low ? geometry.lowGMBytes : geometry.highGMBytes
        let limit = low ? geometry.apertureBytes : geometry.gmSpaceBytes
        let name = low ? "VGT_LOW_GM_BASE" : "VGT_HIGH_GM_BASE"
        guard value % UInt64(GPULayout.pageSize) == 0, value <= limit, size <= limit - value else {
            return "PV info \(name) = 0x\(hex(value, 8)) places \(size >> 20) MiB of \(low ? "low" : "high") GM beyond "
                + "\(low ? "the aperture" : "the GGTT space") (0x\(hex(limit, 9)) bytes) or off a page boundary"
        }
        let (otherBase, otherSize) = low ? (guestHighGMBase, geometry.highGMBytes) : (guestLowGMBase, geometry.lowGMBytes)
        if value < otherBase + otherSize, otherBase < value + size, size > 0, otherSize > 0 {
            return "PV info \(name) = 0x\(hex(value, 8)) overlaps the \(low ? "high" : "low") GM range at 0x\(hex(otherBase, 8))"
        }
        return nil
    }

    /// Why a saved GGTT entry cannot be this device's, or nil: a present
    /// entry must map a frame of this vGPU's graphics memory.
    public func pteViolation(index: UInt32, _ pte: UInt64) -> String? {
        guard Int(index) < ggttEntries else { return "ggtt entry \(index) is beyond this device's \(ggttEntries) entries" }
        guard pte & 1 == 1 else { return nil }
        let frame = (pte >> 12) & 0x7_ffff_ffff
        guard frame < UInt64(geometry.gmPages) else {
            return "ggtt entry \(index) maps frame \(frame), beyond this device's \(geometry.gmPages) frames"
        }
        return nil
    }

    /// Sets a register by table index, as a saved image restores it.
    public mutating func restoreRegister(index: Int, value: UInt64) {
        let spec = table.registers[index]
        registers[index] = spec.width == 8 ? value : value & 0xffff_ffff
    }

    public mutating func restorePTE(_ index: UInt32, _ pte: UInt64) {
        if pte == 0 { ggtt[index] = nil } else { ggtt[index] = pte }
    }

    public mutating func restorePage(_ frame: UInt32, _ bytes: ArraySlice<UInt8>) {
        memory.withMutablePage(frame) { page in bytes.withUnsafeBytes { page.copyMemory(from: $0) } }
    }

    public mutating func restoreConfig(_ bytes: [UInt8]) { config.load(bytes) }
}
