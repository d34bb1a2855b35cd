import Toolkit

/// QEMU migration files (`mdevsim extract`, and inspect/verify/diff/replay on them).
/// Invariants: the walk never traps and always ends; what it extracts lies within the input.
enum QEMUFileTarget {
    static func run(_ data: UnsafeRawBufferPointer) {
        let bytes = Array(data)
        guard let file = try? QEMUMigrationFile(bytes) else { return }
        var total = 0
        for d in file.devices { total += d.payload.count + d.config.count }
        precondition(total <= bytes.count, "extracted \(total) bytes from a \(bytes.count)-byte file")
        for s in file.sections { precondition(s.offset >= 0 && s.offset + s.size <= bytes.count, "section \(s.name) lies outside the file") }
    }
}

extension QEMUFileTarget {
    /// A small file as QEMU 7.2 lays it out: configuration, one RAM page, a vGPU's live
    /// and config sections, EOF and the VMDESCRIPTION.
    static var seed: [UInt8] {
        func be(_ v: UInt64, _ n: Int) -> [UInt8] { (0..<n).reversed().map { UInt8((v >> (8 * UInt64($0))) & 0xff) } }
        func str(_ s: String) -> [UInt8] { [UInt8(s.utf8.count)] + Array(s.utf8) }
        let end = be(0xffff_ffff_ef10_0001, 8), slot = str("0000:00:01.0/vfio")
        var f = Array("QEVM".utf8) + be(3, 4) + [0x07] + be(10, 4) + Array("pc-q35-7.2".utf8)
        f += [0x01] + be(2, 4) + str("ram") + be(0, 4) + be(4, 4) + be(4096 | 0x04, 8) + str("pc.ram") + be(4096, 8)
        f += be(0x08, 8) + [UInt8](repeating: 1, count: 4096) + be(0x10, 8) + [0x7e] + be(2, 4)
        f += [0x01] + be(3, 4) + slot + be(0, 4) + be(1, 4) + be(0xffff_ffff_ef10_0004, 8) + be(4, 8) + [1, 2, 3, 4] + end + [0x7e] + be(3, 4)
        f += [0x04] + be(4, 4) + slot + be(0, 4) + be(1, 4) + be(0xffff_ffff_ef10_0002, 8) + [UInt8](repeating: 0, count: 276) + end + [0x7e] + be(4, 4)
        let desc = #"{"devices": [{"name": "0000:00:01.0/vfio", "instance_id": 0, "fields": [{"name": "data", "type": "buffer", "size": 292}]}]}"#
        return f + [0x00, 0x06] + be(UInt64(desc.utf8.count), 4) + Array(desc.utf8)
    }
}
