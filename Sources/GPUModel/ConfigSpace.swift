/// A PCI configuration space of 4096 bytes (PCI_CFG_SPACE_EXP_SIZE, as GVT-g
/// gives a vGPU) with per-byte masks that make read-only bits read-only, RW1C
/// bits write-1-to-clear and reserved bits keep their value, and BARs that
/// size like real ones. `HostFunction` builds the host's and each vGPU's.
public struct ConfigSpace: Sendable, Equatable {
    public static let size = 4096

    public private(set) var bytes: [UInt8]
    let resetBytes: [UInt8]
    /// Bits software may set or clear.
    let writable: [UInt8]
    /// Bits a written 1 clears.
    let clearOnOne: [UInt8]
    /// Size masks of BAR0..BAR5 (0 = unimplemented); 64-bit BARs use two slots.
    let barMasks: [UInt32]

    init(bytes: [UInt8], writable: [UInt8], clearOnOne: [UInt8], barMasks: [UInt32]) {
        self.bytes = bytes
        resetBytes = bytes
        self.writable = writable
        self.clearOnOne = clearOnOne
        self.barMasks = barMasks
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

    /// The offset of capability `id` in the standard list, or nil.
    public func capability(_ id: UInt8) -> Int? {
        var at = Int(bytes[0x34]) & ~3, seen = 0
        while at >= 0x40, at < 0x100, seen < 48 {
            if bytes[at] == id { return at }
            at = Int(bytes[at + 1]) & ~3; seen += 1
        }
        return nil
    }

    /// This device's config bytes for a config saved by stream format 1.0: 256 bytes
    /// laid out as mdevsim's first vGPU (PM capability at 0x40, MSI at 0x50). What
    /// software set there (command, status errors, BAR addresses, cache line,
    /// interrupt line, power state, MSI enable, address and data) is carried into
    /// this layout through the write masks, as if the guest had written it. nil
    /// when `old` is not that layout.
    public func converting(legacy old: [UInt8]) -> [UInt8]? {
        guard old.count == 256, old[0x34] == 0x40, old[0x40] == 0x01, old[0x41] == 0x50, old[0x50] == 0x05,
              let pm = capability(0x01), let msi = capability(0x05) else { return nil }
        func value(_ o: Int, _ n: Int) -> UInt32 { (0..<n).reduce(0) { $0 | UInt32(old[o + $1]) << (8 * UInt32($1)) } }
        var c = self
        c.reset()
        c.write(offset: 0x04, size: 2, value: value(0x04, 2))
        c.write(offset: 0x0c, size: 1, value: value(0x0c, 1))
        c.write(offset: 0x3c, size: 1, value: value(0x3c, 1))
        for bar in stride(from: 0x10, to: 0x28, by: 4) where c.barMasks[(bar - 0x10) / 4] != 0 {
            c.write(offset: bar, size: 4, value: value(bar, 4))
        }
        c.write(offset: pm + 4, size: 2, value: value(0x44, 2) & 0x0103)
        c.write(offset: msi + 2, size: 2, value: value(0x52, 2))
        c.write(offset: msi + 4, size: 4, value: value(0x54, 4))
        c.write(offset: msi + 8, size: 2, value: value(0x58, 2))
        // Bits the device had set for software to clear (status errors, PME status).
        for (from, to) in [(0x06, 0x06), (0x07, 0x07), (0x45, pm + 5)] { c.bytes[to] |= old[from] & c.clearOnOne[to] }
        return c.bytes
    }

    /// Device-side status changes (errors the model signals).
    public mutating func setBits(offset: Int, _ mask: UInt8) { bytes[offset] |= mask }
}

/// `n` hex digits, zero-padded, lowercase.
func hex<T: BinaryInteger>(_ value: T, _ digits: Int) -> String {
    let text = String(value, radix: 16)
    return String(repeating: "0", count: max(0, digits - text.count)) + text
}
