import CVFIO
import GPUModel
import Synchronization

/// kvmgt's EDID region (VFIO_REGION_TYPE_GFX / VFIO_REGION_SUBTYPE_GFX_EDID,
/// `kvmgt_set_edid` and `handle_edid_regs` in drivers/gpu/drm/i915/gvt/kvmgt.c):
/// `struct vfio_region_gfx_edid` at 0 (six u32: edid_offset, edid_max_size,
/// edid_size, max_xres, max_yres, link_state), accessed 4 bytes at a time, and
/// the 128-byte EDID block at `edid_offset` (PAGE_SIZE / 2). A VMM may write a
/// new block and `edid_size`; writing link_state UP checks the block (header
/// and checksum, as drm_edid_block_valid) and DOWN unplugs the monitor. kvmgt
/// registers the region with size EDID_SIZE (128) though its block lives at
/// 0x800; info reports that size, accesses reach 0x800 + 128, as kvmgt's do.
final class EDIDRegion: Sendable {
    static let blobOffset = 0x800
    static let blockSize = 128
    /// What VFIO_DEVICE_GET_REGION_INFO reports (kvmgt's EDID_SIZE).
    static let reportedSize = 128
    /// How far an access may reach.
    static let extent = blobOffset + blockSize

    struct State {
        var edidSize = UInt32(EDIDRegion.blockSize)
        var linkState: UInt32 = 0
        var blob: [UInt8]
    }
    let maxX: UInt32, maxY: UInt32
    private let state: Mutex<State>

    init(width: Int, height: Int) {
        maxX = UInt32(width)
        maxY = UInt32(height)
        state = Mutex(State(blob: EDIDRegion.block(width: width, height: height)))
    }

    var linkState: UInt32 { state.withLock { $0.linkState } }

    /// handle_edid_regs' rule: one whole u32 of the six, 4 bytes at a time.
    private static func checkRegister(_ offset: Int, _ size: Int, _ verb: String) throws(AccessError) {
        guard size == 4, offset % 4 == 0, offset + 4 <= 24 else {
            throw .invalid("EDID registers are six u32 \(verb) 4 bytes at a time: \(size) bytes at \(offset)")
        }
    }

    /// handle_edid_blob's rule: within edid_size.
    private static func blobRange(_ offset: Int, _ count: Int, _ s: State) throws(AccessError) -> Range<Int> {
        let at = offset - EDIDRegion.blobOffset
        guard at + count <= Int(s.edidSize) else { throw .invalid("\(count) bytes at EDID offset \(at) are beyond edid_size \(s.edidSize)") }
        return at..<at + count
    }

    func read(offset: Int, size: Int) throws(AccessError) -> [UInt8] {
        if offset < EDIDRegion.blobOffset {
            try EDIDRegion.checkRegister(offset, size, "read")
            let value: UInt32 = state.withLock { s in
                [UInt32(EDIDRegion.blobOffset), UInt32(EDIDRegion.blockSize), s.edidSize, maxX, maxY, s.linkState][offset / 4]
            }
            return (0..<4).map { UInt8(truncatingIfNeeded: value >> (8 * UInt32($0))) }
        }
        return try state.withLock { (s: inout State) throws(AccessError) -> [UInt8] in Array(s.blob[try EDIDRegion.blobRange(offset, size, s)]) }
    }

    func write(offset: Int, _ bytes: [UInt8]) throws(AccessError) {
        if offset < EDIDRegion.blobOffset {
            try EDIDRegion.checkRegister(offset, bytes.count, "written")
            let value = bytes.enumerated().reduce(UInt32(0)) { $0 | UInt32($1.element) << (8 * UInt32($1.offset)) }
            try state.withLock { (s: inout State) throws(AccessError) in
                switch offset {
                case 20:    // link_state
                    switch value {
                    case UInt32(VFIO_DEVICE_GFX_LINK_STATE_UP):
                        guard EDIDRegion.valid(s.blob) else { throw .invalid("link_state UP with an invalid EDID block (header or checksum)") }
                    case UInt32(VFIO_DEVICE_GFX_LINK_STATE_DOWN): break
                    default: throw .invalid("link_state \(value) is neither UP (1) nor DOWN (2)")
                    }
                    s.linkState = value
                case 8:     // edid_size
                    guard value <= UInt32(EDIDRegion.blockSize) else { throw .invalid("edid_size \(value) is beyond edid_max_size \(EDIDRegion.blockSize)") }
                    s.edidSize = value
                default:
                    throw .invalid("EDID register at \(offset) is read-only (only edid_size and link_state are written)")
                }
            }
            return
        }
        try state.withLock { (s: inout State) throws(AccessError) in
            s.blob.replaceSubrange(try EDIDRegion.blobRange(offset, bytes.count, s), with: bytes)
        }
    }

    /// drm_edid_block_valid's core: the fixed header and a zero byte sum.
    static func valid(_ b: [UInt8]) -> Bool {
        b.count == blockSize && Array(b[0..<8]) == [0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0] && b.reduce(0, &+) == 0
    }

    /// An EDID 1.4 base block for a digital monitor whose preferred mode is
    /// `width`×`height` at 60 Hz (reduced-blanking timing), named "mdevsim".
    static func block(width: Int, height: Int) -> [UInt8] {
        var b = [UInt8](repeating: 0, count: blockSize)
        b.replaceSubrange(0..<8, with: [0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0])
        let vendor = [UInt8]("GVT".utf8).reduce(0) { $0 << 5 | UInt16($1 - 64) }       // EISA id, 5 bits a letter
        b[8] = UInt8(vendor >> 8); b[9] = UInt8(vendor & 0xff)
        b[10] = 0x01; b[16] = 1; b[17] = 26                   // product 1, week 1 of 2016
        b[18] = 1; b[19] = 4                                    // EDID 1.4
        b[20] = 0xa5                                            // digital, 8 bits per colour, DisplayPort
        b[21] = UInt8(min(255, width / 37)); b[22] = UInt8(min(255, height / 37))    // ~96 dpi, in cm
        b[23] = 120                                             // gamma 2.2
        b[24] = 0x06                                            // RGB 4:4:4, preferred timing is native
        b.replaceSubrange(25..<35, with: [0xee, 0x91, 0xa3, 0x54, 0x4c, 0x99, 0x26, 0x0f, 0x50, 0x54])   // sRGB
        for i in stride(from: 38, to: 54, by: 2) { b[i] = 1; b[i + 1] = 1 }     // no standard timings
        // Detailed timing: reduced blanking (CVT-RB), 60 Hz.
        let (hb, hfp, hs, vb, vfp, vs) = (160, 48, 32, 35, 3, 6)
        let clock = ((width + hb) * (height + vb) * 60 + 9_999) / 10_000        // in 10 kHz
        let (wmm, hmm) = (width * 254 / 960, height * 254 / 960)
        let d: [UInt8] = [UInt8(clock & 0xff), UInt8(clock >> 8), UInt8(width & 0xff), UInt8(hb & 0xff),
                          UInt8((width >> 8) << 4 | hb >> 8), UInt8(height & 0xff), UInt8(vb & 0xff), UInt8((height >> 8) << 4 | vb >> 8),
                          UInt8(hfp), UInt8(hs), UInt8(vfp << 4 | vs), 0, UInt8(wmm & 0xff), UInt8(hmm & 0xff),
                          UInt8((wmm >> 8) << 4 | hmm >> 8), 0, 0, 0x1a]
        b.replaceSubrange(54..<72, with: d)
        // Monitor name, then two dummy descriptors.
        var name: [UInt8] = [0, 0, 0, 0xfc, 0] + Array("mdevsim".utf8) + [0x0a]
        while name.count < 18 { name.append(0x20) }
        b.replaceSubrange(72..<90, with: name)
        b[93] = 0x10; b[111] = 0x10
        b[127] = 0 &- b[0..<127].reduce(0, &+)
        return b
    }
}
