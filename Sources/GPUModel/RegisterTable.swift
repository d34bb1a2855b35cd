/// How software may access a register.
public enum RegisterAccess: String, Sendable, Codable {
    /// Read-write (within `writeMask`; other bits keep their value).
    case rw
    /// Read-only: writes are ignored.
    case ro
    /// Read, write 1 to clear: a written 1 clears that bit, a 0 leaves it.
    case rw1c
}

/// The register blocks dirty tracking and the tools group registers by.
public enum RegisterBlock: String, Sendable, CaseIterable, Codable {
    case ring, interrupts, fences, display, pvinfo
}

/// One named MMIO register of BAR0.
public struct RegisterSpec: Sendable, Equatable {
    public let name: String
    public let offset: Int
    /// Native width in bytes (4 or 8); other access sizes are refused.
    public let width: Int
    public let access: RegisterAccess
    public let reset: UInt64
    /// Bits software can change (for rw) or clear (for rw1c).
    public let writeMask: UInt64
    public let block: RegisterBlock

    public init(_ name: String, _ offset: Int, width: Int = 4, _ access: RegisterAccess = .rw, reset: UInt64 = 0,
                writeMask: UInt64? = nil, block: RegisterBlock) {
        self.name = name
        self.offset = offset
        self.width = width
        self.access = access
        self.reset = width == 8 ? reset : reset & 0xffff_ffff
        self.writeMask = writeMask ?? (width == 8 ? .max : 0xffff_ffff)
        self.block = block
    }
}

/// What a vGPU looks like to its guest: the figures that size its hardware.
public struct VGPUGeometry: Sendable, Equatable, Codable {
    public var lowGMBytes: UInt64
    public var highGMBytes: UInt64
    public var fences: Int
    public var width: Int
    public var height: Int
    public var vgpuID: Int
    public var vendorID: UInt16
    public var deviceID: UInt16
    public var subsystemVendorID: UInt16
    public var subsystemID: UInt16
    public var revision: UInt8
    /// Where the vGPU's low and high GM start in the host's GGTT space (PVINFO's
    /// bases; GVT-g's allocator places them, `MdevCore.GMPlacement`).
    public var lowGMBase: UInt64
    public var highGMBase: UInt64
    /// The host's aperture (BAR2 of the host function and of every vGPU) and the
    /// whole GGTT address space (gen9: 4 GiB, aperture plus hidden range).
    public var apertureBytes: UInt64
    public var gmSpaceBytes: UInt64

    /// Without a host's placement (a model on its own, a stream checked without a
    /// device): low GM at the start of an aperture just large enough, high GM after it.
    public init(lowGMBytes: UInt64, highGMBytes: UInt64, fences: Int = 4, width: Int = 1920, height: Int = 1200,
                vgpuID: Int = 1, vendorID: UInt16 = 0x8086, deviceID: UInt16 = 0x591d,
                subsystemVendorID: UInt16 = 0x8086, subsystemID: UInt16 = 0x2212, revision: UInt8 = 0x04,
                lowGMBase: UInt64 = 0, highGMBase: UInt64? = nil, apertureBytes: UInt64? = nil, gmSpaceBytes: UInt64 = 4 << 30) {
        self.lowGMBytes = lowGMBytes
        self.highGMBytes = highGMBytes
        self.fences = fences
        self.width = width
        self.height = height
        self.vgpuID = vgpuID
        self.vendorID = vendorID
        self.deviceID = deviceID
        self.subsystemVendorID = subsystemVendorID
        self.subsystemID = subsystemID
        self.revision = revision
        self.apertureBytes = apertureBytes ?? GPULayout.aperture(holding: lowGMBase + lowGMBytes)
        self.lowGMBase = lowGMBase
        self.highGMBase = highGMBase ?? self.apertureBytes
        self.gmSpaceBytes = max(gmSpaceBytes, self.highGMBase + highGMBytes)
    }

    public var gmBytes: UInt64 { lowGMBytes + highGMBytes }
    public var gmPages: Int { Int(gmBytes / UInt64(GPULayout.pageSize)) }
    /// GGTT entries the guest addresses through BAR0: one per page of the GGTT space.
    public var ggttSpaceEntries: Int { Int(gmSpaceBytes / UInt64(GPULayout.pageSize)) }
}

/// Fixed layout facts of the simulated GPU (Gen9-like).
public enum GPULayout {
    public static let pageSize = 4096
    public static let pteSize = 8
    /// Number of fence registers in the MMIO file.
    public static let fenceCount = 32
    public static let fenceBase = 0x100000
    /// Ring buffer and framebuffer placement in the vGPU's graphics memory.
    public static let ringBase: UInt64 = 0x10000
    public static let ringPages = 8

    /// BAR0: registers in the lower half, the GGTT in the upper half; at least
    /// 16 MiB, as on Gen9, and large enough for one PTE per page of the GGTT space.
    public static func bar0Size(for geometry: VGPUGeometry) -> Int {
        var half = 8 << 20
        while half < geometry.ggttSpaceEntries * pteSize { half <<= 1 }
        return half * 2
    }

    /// The smallest aperture (a power of two, at least `minimum`) that holds `bytes` of low GM.
    public static func aperture(holding bytes: UInt64, atLeast minimum: UInt64 = 1 << 20) -> UInt64 {
        var a = minimum
        while a < bytes { a <<= 1 }
        return a
    }

    public static func ggttOffset(for geometry: VGPUGeometry) -> Int { bar0Size(for: geometry) / 2 }
}

/// The named registers of BAR0: data used by the model, by `inspect` and by `diff`.
public struct RegisterTable: Sendable {
    /// Names, offsets, widths, access rules, masks and blocks. In a vGPU's table these are
    /// shared with every other vGPU, and so is their `reset`: read `resets` for this device's.
    public let registers: [RegisterSpec]
    /// This table's reset values, by index (PVINFO, the plane size... differ per vGPU).
    public let resets: [UInt64]
    private let byOffset: [Int: Int]
    private let byName: [String: Int]

    public init(registers: [RegisterSpec]) {
        self.registers = registers
        resets = registers.map(\.reset)
        byOffset = Dictionary(uniqueKeysWithValues: registers.enumerated().map { ($1.offset, $0) })
        byName = Dictionary(uniqueKeysWithValues: registers.enumerated().map { ($1.name, $0) })
    }

    /// `layout`'s registers with this device's reset values: the specs and lookup
    /// dictionaries are shared by every vGPU, only the reset values are its own.
    init(layout: RegisterTable, resets: [UInt64]) {
        registers = layout.registers
        self.resets = resets
        byOffset = layout.byOffset
        byName = layout.byName
    }

    /// GVT-g's names and offsets, the same for every geometry.
    private static let gvtLayout = RegisterTable(registers: gvtRegisters(VGPUGeometry(lowGMBytes: 0, highGMBytes: 0)))

    public func index(at offset: Int) -> Int? { byOffset[offset] }
    public func index(named name: String) -> Int? { byName[name] }
    public subscript(name: String) -> RegisterSpec? { byName[name].map { registers[$0] } }

    /// Offsets follow i915 Gen9 (render ring, GT and DE pipe A interrupts, fence
    /// registers, plane 1 of pipe A, and GVT-g's PV info page at 0x78000).
    public static func gvt(_ g: VGPUGeometry) -> RegisterTable {
        RegisterTable(layout: gvtLayout, resets: gvtRegisters(g).map(\.reset))
    }

    private static func gvtRegisters(_ g: VGPUGeometry) -> [RegisterSpec] {
        var regs: [RegisterSpec] = [
            RegisterSpec("RING_TAIL", 0x2030, reset: 0, writeMask: 0x001f_fff8, block: .ring),
            RegisterSpec("RING_HEAD", 0x2034, reset: 0, writeMask: 0x001f_fffc, block: .ring),
            RegisterSpec("RING_START", 0x2038, reset: 0, writeMask: 0xffff_f000, block: .ring),
            RegisterSpec("RING_CTL", 0x203c, reset: 0, writeMask: 0x001f_f001, block: .ring),
            RegisterSpec("GT_ISR", 0x44300, .ro, block: .interrupts),
            RegisterSpec("GT_IMR", 0x44304, reset: 0xffff_ffff, block: .interrupts),
            RegisterSpec("GT_IIR", 0x44308, .rw1c, block: .interrupts),
            RegisterSpec("GT_IER", 0x4430c, block: .interrupts),
            RegisterSpec("DE_PIPE_A_ISR", 0x44400, .ro, block: .interrupts),
            RegisterSpec("DE_PIPE_A_IMR", 0x44404, reset: 0xffff_ffff, block: .interrupts),
            RegisterSpec("DE_PIPE_A_IIR", 0x44408, .rw1c, block: .interrupts),
            RegisterSpec("DE_PIPE_A_IER", 0x4440c, block: .interrupts),
            RegisterSpec("PIPE_A_FRMCNT", 0x70040, .ro, block: .display),
            RegisterSpec("PLANE_1_A_CTL", 0x70180, writeMask: 0xffff_ffff, block: .display),
            RegisterSpec("PLANE_1_A_STRIDE", 0x70188, writeMask: 0x0000_03ff, block: .display),
            RegisterSpec("PLANE_1_A_POS", 0x7018c, block: .display),
            RegisterSpec("PLANE_1_A_SIZE", 0x70190, reset: UInt64((g.height - 1) << 16 | (g.width - 1)), block: .display),
            RegisterSpec("PLANE_1_A_SURF", 0x7019c, writeMask: 0xffff_f000, block: .display),
            RegisterSpec("VGT_MAGIC", 0x78000, width: 8, .ro, reset: 0x4776_5447_7654_4776, block: .pvinfo),
            RegisterSpec("VGT_VERSION", 0x78008, .ro, reset: 1, block: .pvinfo),
            RegisterSpec("VGT_ID", 0x7800c, .ro, reset: UInt64(g.vgpuID), block: .pvinfo),
            RegisterSpec("VGT_LOW_GM_BASE", 0x78040, .ro, reset: g.lowGMBase, block: .pvinfo),
            RegisterSpec("VGT_LOW_GM_SIZE", 0x78044, .ro, reset: g.lowGMBytes, block: .pvinfo),
            RegisterSpec("VGT_HIGH_GM_BASE", 0x78048, .ro, reset: g.highGMBase, block: .pvinfo),
            RegisterSpec("VGT_HIGH_GM_SIZE", 0x7804c, .ro, reset: g.highGMBytes, block: .pvinfo),
            RegisterSpec("VGT_FENCE_NUM", 0x78050, .ro, reset: UInt64(g.fences), block: .pvinfo),
        ]
        for i in 0..<GPULayout.fenceCount {
            regs.append(RegisterSpec("FENCE_\(i)", GPULayout.fenceBase + i * 8, width: 8, writeMask: 0xffff_f000_ffff_f001, block: .fences))
        }
        return regs.sorted { $0.offset < $1.offset }
    }
}
