/// The framing QEMU's hw/vfio/migration.c puts around a device's data in its
/// migration stream: big-endian 64-bit tags, data chunks as
/// `DEV_DATA_STATE size:be64 bytes`, each pass closed by `END_OF_STATE`.
public enum QEMUFraming {
    public static let endOfState: UInt64 = 0xffff_ffff_ef10_0001
    public static let configState: UInt64 = 0xffff_ffff_ef10_0002
    public static let setupState: UInt64 = 0xffff_ffff_ef10_0003
    public static let dataState: UInt64 = 0xffff_ffff_ef10_0004
    public static let initDataSent: UInt64 = 0xffff_ffff_ef10_0005
    /// QEMU reads at most 1 MiB per data chunk.
    public static let chunk = 1 << 20

    static func be64(_ v: UInt64) -> [UInt8] { (0..<8).reversed().map { UInt8((v >> (8 * UInt64($0))) & 0xff) } }

    /// Wraps raw device data, pass by pass (pre-copy passes, then stop-and-copy),
    /// as QEMU's save_setup / save_live_iterate / save_live_complete_precopy write it.
    public static func wrap(_ blob: [UInt8], passes: [Int]) -> [UInt8] {
        var out = be64(setupState) + be64(endOfState)
        var at = 0
        for size in passes {
            var left = size
            while left > 0 {
                let n = min(chunk, left)
                out += be64(dataState) + be64(UInt64(n)) + blob[at..<at + n]
                at += n
                left -= n
            }
            out += be64(endOfState)
        }
        return out
    }

    /// Whether bytes start with QEMU's VFIO framing rather than a raw stream.
    public static func isFramed(_ bytes: [UInt8]) -> Bool {
        bytes.count >= 8 && readBE64(bytes, 0) & 0xffff_ffff_ffff_0000 == 0xffff_ffff_ef10_0000
    }

    static func readBE64(_ b: [UInt8], _ at: Int) -> UInt64 {
        (0..<8).reduce(0) { $0 << 8 | UInt64(b[at + $1]) }
    }

    /// The device data inside QEMU framing, as load_state reads it; an unknown
    /// tag is refused as QEMU refuses it.
    public static func unwrap(_ bytes: [UInt8]) throws -> [UInt8] {
        var out: [UInt8] = []
        var at = 0
        while at < bytes.count {
            guard at + 8 <= bytes.count else { throw ToolError("QEMU framing truncated at byte \(at)") }
            let tag = readBE64(bytes, at)
            at += 8
            switch tag {
            case dataState:
                guard at + 8 <= bytes.count else { throw ToolError("QEMU framing truncated in a DEV_DATA_STATE size at byte \(at)") }
                let size = readBE64(bytes, at)
                at += 8
                guard size <= UInt64(bytes.count - at) else {
                    throw ToolError("DEV_DATA_STATE at byte \(at - 16) claims \(size) bytes; only \(bytes.count - at) remain")
                }
                out += bytes[at..<at + Int(size)]
                at += Int(size)
            case endOfState, setupState, configState, initDataSent:
                continue
            default:
                throw ToolError("Unknown tag 0x\(String(tag, radix: 16)) at byte \(at - 8) (QEMU's load_state refuses it too)")
            }
        }
        return out
    }

    /// Raw device data from any form: a raw stream, QEMU's VFIO framing, or a whole QEMU
    /// migration file (its only VFIO device, or the one at `slot`).
    public static func raw(_ bytes: [UInt8], slot: String? = nil) throws -> [UInt8] {
        if QEMUMigrationFile.isMigrationFile(bytes) { return try QEMUMigrationFile(bytes).device(slot).payload }
        return isFramed(bytes) ? try unwrap(bytes) : bytes
    }
}
