import MdevCore

/// The 256-byte type-0 configuration header a parent GPU shows in its sysfs
/// `config` file: ids, command/status, class, BARs and subsystem ids, laid out
/// little-endian as on the bus.
enum PCIConfigSpace {
    static func header(for p: ParentConfig) -> [UInt8] {
        var b = [UInt8](repeating: 0, count: 256)
        func put16(_ offset: Int, _ v: Int) { b[offset] = UInt8(v & 0xff); b[offset + 1] = UInt8((v >> 8) & 0xff) }
        func put32(_ offset: Int, _ v: UInt32) { for i in 0..<4 { b[offset + i] = UInt8((v >> (8 * UInt32(i))) & 0xff) } }
        put16(0x00, p.vendor.value)
        put16(0x02, p.device.value)
        put16(0x04, 0x0007)                  // command: I/O, memory, bus master
        put16(0x06, 0x0010)                  // status: capabilities list
        b[0x08] = UInt8(p.revision.value & 0xff)
        b[0x09] = UInt8(p.pciClass.value & 0xff)           // prog-if
        b[0x0a] = UInt8((p.pciClass.value >> 8) & 0xff)    // subclass
        b[0x0b] = UInt8((p.pciClass.value >> 16) & 0xff)   // class
        put32(0x10, 0xf600_0004)             // BAR0: 64-bit MMIO (GTTMMADR)
        put32(0x18, 0xe000_000c)             // BAR2: 64-bit prefetchable aperture (GMADR)
        put32(0x20, 0x0000_f001)             // BAR4: I/O
        put16(0x2c, p.subsystemVendor.value)
        put16(0x2e, p.subsystemDevice.value)
        b[0x34] = 0x40                       // capabilities pointer
        b[0x3c] = 0xff                       // interrupt line: unassigned
        b[0x3d] = 0x01                       // INTA#
        // Power management capability (id 1), end of list.
        b[0x40] = 0x01; b[0x41] = 0x00; put16(0x42, 0x0022)
        return b
    }
}
