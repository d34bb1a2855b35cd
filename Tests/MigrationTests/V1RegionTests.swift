import GPUModel
import Migration
import Testing
#if canImport(Glibc)
import Glibc
#endif

func le32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8((v >> (8 * UInt32($0))) & 0xff) } }
func le64(_ v: UInt64) -> [UInt8] { (0..<8).map { UInt8((v >> (8 * UInt64($0))) & 0xff) } }
func value(_ b: [UInt8]) -> UInt64 { b.enumerated().reduce(0) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) } }

extension V1Region {
    func state() throws -> UInt32 { UInt32(value(try read(offset: 0, size: 4))) }
    func setState(_ bits: UInt32) throws { try write(offset: 0, bytes: le32(bits)) }
    func u64(_ offset: Int) throws -> UInt64 { value(try read(offset: offset, size: 8)) }

    /// The documented save loop: pending_bytes → data_offset → data_size → data → pending_bytes;
    /// with `askAgain`, pending_bytes is read that many more times before each chunk, as QEMU's
    /// save_pending does to decide convergence, and must not change.
    func saveIteration(into blob: inout [UInt8], askAgain: Int = 0) throws {
        var pending = try u64(8)
        while pending > 0 {
            for _ in 0..<askAgain { #expect(try u64(8) == pending) }
            let offset = Int(try u64(16))
            let size = Int(try u64(24))
            #expect(offset == V1Region.dataOffset)
            blob += try read(offset: offset, size: size)
            pending = try u64(8)
        }
    }

    /// The documented resume loop: data_offset → write data → write data_size, in the source's chunk sizes.
    func resume(_ blob: [UInt8], chunk: Int) throws {
        var at = 0
        while at < blob.count {
            let n = min(chunk, blob.count - at)
            let offset = Int(try u64(16))
            try write(offset: offset, bytes: Array(blob[at..<at + n]))
            try write(offset: 24, bytes: le64(UInt64(n)))
            at += n
        }
    }
}

@Suite("v1 migration region")
struct V1RegionTests {
    @Test("every device_state write: the five valid states, 101b and 111b invalid, 110b not requestable")
    func stateWrites() throws {
        let dev = makeDevice()
        let v1 = V1Region(device: dev)
        #expect(try v1.state() == 0b001)
        for (bits, expected) in [(UInt32(0b000), MigrationState.stop), (0b001, .running), (0b011, .preCopy), (0b010, .stopCopy), (0b000, .stop), (0b100, .resuming)] {
            try v1.setState(bits)
            #expect(try v1.state() == bits, "\(bits)")
            #expect(dev.state == expected)
        }
        for bad: UInt32 in [0b101, 0b111, 0b110] {
            #expect(throws: MigrationError.self) { try v1.setState(bad) }
            #expect(try v1.state() == 0b100, "a refused write leaves the previous state")
        }
        dev.reset()
        #expect(try v1.state() == 0b001)
    }

    @Test("reserved bits 3-31 survive a read-modify-write")
    func reservedBits() throws {
        let v1 = V1Region(device: makeDevice())
        try v1.setState(0xabcd_0000 | 0b001)
        #expect(try v1.state() == 0xabcd_0001)
        try v1.setState((try v1.state() & ~0b111) | 0b000)
        #expect(try v1.state() == 0xabcd_0000)
        #expect(value(try v1.read(offset: 4, size: 4)) == 0)                 // reserved field reads 0
        try v1.write(offset: 4, bytes: le32(0xffff_ffff))
        #expect(value(try v1.read(offset: 4, size: 4)) == 0)
    }

    @Test("fields only at their native width and alignment")
    func widths() throws {
        let v1 = V1Region(device: makeDevice())
        #expect(throws: MigrationError.self) { _ = try v1.read(offset: 0, size: 8) }
        #expect(throws: MigrationError.self) { _ = try v1.read(offset: 8, size: 4) }
        #expect(throws: MigrationError.self) { _ = try v1.read(offset: 2, size: 2) }
        #expect(throws: MigrationError.self) { _ = try v1.read(offset: 32, size: 4) }
        #expect(throws: MigrationError.self) { try v1.write(offset: 8, bytes: le64(1)) }       // pending_bytes is RO
        #expect(throws: MigrationError.self) { _ = try v1.read(offset: V1Region.size - 4, size: 8) }
    }

    @Test("save with pre-copy then stop-and-copy through the v1 loop; resume through the v1 loop; identical digests")
    func saveAndResume() throws {
        let src = makeDevice(seed: 21), dst = makeDevice(seed: 22)
        let s1 = V1Region(device: src), d1 = V1Region(device: dst)
        try src.gpu.step(120)
        var blob: [UInt8] = []
        var chunks: [Int] = []
        try s1.setState(0b011)                 // pre-copy
        try s1.saveIteration(into: &blob)
        try src.gpu.step(10)
        try s1.saveIteration(into: &blob)
        try s1.setState(0b010)                 // stop-and-copy
        try s1.saveIteration(into: &blob)
        #expect(try s1.u64(8) == 0)
        chunks.append(V1Region.windowSize)
        try s1.setState(0b000)
        try d1.setState(0b100)
        try d1.resume(blob, chunk: 300_000)
        try d1.setState(0b001)                 // RESUMING → RUNNING (through STOP)
        #expect(dst.state == .running)
        try src.setState(.running)
        try src.gpu.step(7)
        try dst.gpu.step(7)
        #expect(dst.gpu.stateDigest == src.gpu.stateDigest)
    }

    @Test("repeated pending_bytes reads between iterations have no side effect: no chunk is lost (QEMU asks to decide convergence)")
    func repeatedPendingBytes() throws {
        let src = makeDevice(seed: 23), dst = makeDevice(seed: 24)
        let s1 = V1Region(device: src), d1 = V1Region(device: dst)
        try src.gpu.step(120)
        var blob: [UInt8] = []
        try s1.setState(0b011)
        try s1.saveIteration(into: &blob, askAgain: 2)
        try s1.setState(0b010)
        try s1.saveIteration(into: &blob)
        try s1.setState(0b000)
        try d1.setState(0b100)
        try d1.resume(blob, chunk: V1Region.windowSize)
        try d1.setState(0b000)
        #expect(dst.state == .stop, "\(dst.lastError)")
        #expect(dst.gpu.stateDigest == src.gpu.stateDigest)
    }

    @Test("a failed transition leaves the previous state, or 110b under the error policy; only reset leaves 110b")
    func failedTransition() throws {
        let keep = V1Region(device: makeDevice(seed: 3))
        try keep.setState(0b100)
        #expect(throws: MigrationError.self) { try keep.setState(0b001) }          // nothing was resumed
        #expect(try keep.state() == 0b100)

        let dev = makeDevice(seed: 4, policy: .error)
        let strict = V1Region(device: dev)
        try strict.setState(0b100)
        try strict.write(offset: V1Region.dataOffset, bytes: Array("garbage!".utf8))
        #expect(throws: MigrationError.self) { try strict.write(offset: 24, bytes: le64(8)) }
        #expect(throws: MigrationError.self) { try strict.setState(0b000) }
        #expect(try strict.state() == 0b110)
        #expect(throws: MigrationError.self) { try strict.setState(0b001) }
        #expect(try strict.state() == 0b110)
        dev.reset()
        #expect(try strict.state() == 0b001)
    }
}
