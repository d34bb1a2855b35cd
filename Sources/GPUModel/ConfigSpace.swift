/// A vGPU's 256-byte PCI configuration space: a type-0 header with BARs that
/// size like real ones, a PM → MSI capability list, and per-byte masks that make
/// read-only bits read-only, RW1C bits write-1-to-clear and reserved bits keep
/// their value.
public struct ConfigSpace: Sendable, Equatable {
    public static let size = 256
    public static let pmCapability = 0x40
    public static let msiCapability = 0x50

    public private(set) var bytes: [UInt8]
    let resetBytes: [UInt8]
    /// Bits software may set or clear.
    let writable: [UInt8]
    /// Bits a written 1 clears.
    let clearOnOne: [UInt8]
    /// Size masks of BAR0..BAR5 (0 = unimplemented); 64-bit BARs use two slots.
    let barMasks: [UInt32]

    /// A config space from its bytes and masks (`HostFunction` builds the host's).
    init(bytes: [UInt8], writable: [UInt8], clearOnOne: [UInt8], barMasks: [UInt32]) {
        self.bytes = bytes
        resetBytes = bytes
        self.writable = writable
        self.clearOnOne = clearOnOne
        self.barMasks = barMasks
    }

    public init(geometry g: VGPUGeometry, bar0Size: Int, bar2Size: Int) {
        var b = [UInt8](repeating: 0, count: 256)
        var w = [UInt8](repeating: 0, count: 256)
        var c = [UInt8](repeating: 0, count: 256)
        func put(_ o: Int, _ v: UInt32, _ n: Int) { for i in 0..<n { b[o + i] = UInt8((v >> (8 * UInt32(i))) & 0xff) } }
        func mask(_ m: inout [UInt8], _ o: Int, _ v: UInt32, _ n: Int) { for i in 0..<n { m[o + i] = UInt8((v >> (8 * UInt32(i))) & 0xff) } }
        put(0x00, UInt32(g.vendorID), 2)
        put(0x02, UInt32(g.deviceID), 2)
        mask(&w, 0x04, 0x0547, 2)              // command: IO, MEM, BM, parity, SERR, INTx disable
        put(0x06, 0x0010, 2)                   // status: capabilities list
        mask(&c, 0x06, 0xf900, 2)              // status error bits are RW1C
        b[0x08] = g.revision
        put(0x09, 0x030000, 3)                 // class: VGA-compatible display controller
        mask(&w, 0x0c, 0xff, 1)                // cache line size
        // BAR0: 64-bit memory (MMIO + GGTT); BAR2: 64-bit prefetchable aperture.
        put(0x10, 0x4, 4)
        put(0x18, 0xc, 4)
        put(0x2c, UInt32(g.subsystemVendorID), 2)
        put(0x2e, UInt32(g.subsystemID), 2)
        b[0x34] = UInt8(ConfigSpace.pmCapability)
        mask(&w, 0x3c, 0xff, 1)                // interrupt line
        b[0x3d] = 0x01                         // INTA#
        // PM capability: PMC read-only; PMCSR power state RW, PME_En RW, PME_Status RW1C.
        let pm = ConfigSpace.pmCapability
        b[pm] = 0x01; b[pm + 1] = UInt8(ConfigSpace.msiCapability)
        put(pm + 2, 0x0022, 2)
        mask(&w, pm + 4, 0x0103, 2)
        mask(&c, pm + 4, 0x8000, 2)
        // MSI capability, 32-bit address, one vector: enable RW; address and data RW.
        let msi = ConfigSpace.msiCapability
        b[msi] = 0x05; b[msi + 1] = 0x00
        mask(&w, msi + 2, 0x0001, 2)
        mask(&w, msi + 4, 0xffff_fffc, 4)
        mask(&w, msi + 8, 0xffff, 2)
        bytes = b
        resetBytes = b
        writable = w
        clearOnOne = c
        var bars = [UInt32](repeating: 0, count: 6)
        let m0 = ~UInt64(bar0Size - 1), m2 = ~UInt64(bar2Size - 1)
        bars[0] = UInt32(m0 & 0xffff_fff0); bars[1] = UInt32(m0 >> 32)
        bars[2] = UInt32(m2 & 0xffff_fff0); bars[3] = UInt32(m2 >> 32)
        barMasks = bars
    }

    /// Reads `size` bytes (1, 2 or 4, naturally aligned) as a little-endian value.
    public func read(offset: Int, size: Int) -> UInt32 {
        var v: UInt32 = 0
        for i in 0..<size { v |= UInt32(bytes[offset + i]) << (8 * UInt32(i)) }
        return v
    }

    /// Writes one naturally aligned 1-, 2- or 4-byte value, honouring the masks.
    /// Returns whether anything changed.
    @discardableResult
    public mutating func write(offset: Int, size: Int, value: UInt32) -> Bool {
        if (0x10..<0x28).contains(offset) {
            return writeBAR(offset: offset, size: size, value: value)
        }
        var changed = false
        for i in 0..<size {
            let o = offset + i
            let byte = UInt8((value >> (8 * UInt32(i))) & 0xff)
            let old = bytes[o]
            var new = (old & ~writable[o]) | (byte & writable[o])
            new &= ~(byte & clearOnOne[o])
            if new != old { bytes[o] = new; changed = true }
        }
        return changed
    }

    /// BAR registers: the address bits above the size are writable, the low
    /// type bits are fixed, so writing all-ones reads back the size mask.
    private mutating func writeBAR(offset: Int, size: Int, value: UInt32) -> Bool {
        let bar = (offset - 0x10) / 4
        let shift = UInt32((offset - 0x10) % 4) * 8
        var dword = read(offset: 0x10 + bar * 4, size: 4)
        let typeBits = UInt32(resetBytes[0x10 + bar * 4]) & (bar % 2 == 0 ? 0xf : 0)
        let widthMask: UInt32 = size == 4 ? 0xffff_ffff : ((1 << (UInt32(size) * 8)) - 1)
        dword = (dword & ~(widthMask << shift)) | ((value & widthMask) << shift)
        dword = (dword & barMasks[bar]) | typeBits
        let old = read(offset: 0x10 + bar * 4, size: 4)
        for i in 0..<4 { bytes[0x10 + bar * 4 + i] = UInt8((dword >> (8 * UInt32(i))) & 0xff) }
        return old != dword
    }

    /// Function-level reset: every register back to its reset value.
    public mutating func reset() { bytes = resetBytes }

    /// Loads saved bytes (a resumed device); masks are the device's own.
    /// Check them with `violation(in:)` first.
    public mutating func load(_ saved: [UInt8]) { bytes = saved }

    /// Why `saved` cannot be this device's config space, or nil: a saved
    /// config may differ from the reset state only in bits software can
    /// write, bits the device sets for software to clear, and BAR address bits.
    public func violation(in saved: [UInt8]) -> String? {
        guard saved.count == bytes.count else {
            return "config space is \(saved.count) bytes; this device's is \(bytes.count)"
        }
        for o in 0..<saved.count {
            var changeable = writable[o] | clearOnOne[o]
            if (0x10..<0x28).contains(o) {
                let bar = (o - 0x10) / 4, shift = UInt32((o - 0x10) % 4) * 8
                changeable |= UInt8((barMasks[bar] >> shift) & 0xff)
            }
            let fixed = (saved[o] ^ resetBytes[o]) & ~changeable
            if fixed != 0 {
                return "config byte 0x\(hex(o, 2)) is 0x\(hex(Int(saved[o]), 2)) where this device has 0x\(hex(Int(resetBytes[o]), 2))"
                    + " and only bits 0x\(hex(Int(changeable), 2)) can change (vendor, device, class, capabilities and BAR sizes are the device's own)"
            }
        }
        return nil
    }

    /// Device-side status changes (errors the model signals).
    public mutating func setBits(offset: Int, _ mask: UInt8) { bytes[offset] |= mask }
}

/// `n` hex digits, zero-padded, lowercase.
func hex<T: BinaryInteger>(_ value: T, _ digits: Int) -> String {
    let text = String(value, radix: 16)
    return String(repeating: "0", count: max(0, digits - text.count)) + text
}
