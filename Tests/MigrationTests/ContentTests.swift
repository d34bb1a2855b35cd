import GPUModel
import Migration
import StateStream
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// An identity with the geometry a header carries (what `ContentCheck` reads).
let fullIdentity = StreamHeader(model: "mdevsim.dev/gvt-g", driverVersion: "1.2.0", parameters: [
    ("type", "i915-GVTg_V5_4"), ("aggregation", "1"), ("low_gm_mb", "128"), ("high_gm_mb", "512"),
    ("fences", "4"), ("resolution", "1920x1200"),
])

/// Blobs whose checksums are sound but whose contents no device could hold:
/// each is refused by resume with its reason, the destination untouched, and
/// reported by the device-less check that verify and inspect use.
@Suite("sound checksums, impossible contents")
struct ContentTests {
    func sound() throws -> StreamRecords {
        let src = makeDevice(identity: fullIdentity)
        try src.gpu.step(60)
        try src.setState(.stopCopy)
        var out: [UInt8] = []
        _ = try drain(src, &out)
        return try StreamRecords(parsing: out)
    }

    /// The blob with one record's payload changed and every checksum recomputed.
    func edited(_ type: RecordType, _ change: (inout [UInt8]) -> Void) throws -> [UInt8] {
        var s = try sound()
        let i = try #require(s.first(type))
        change(&s.records[i].payload)
        return s.sealed()
    }

    func put64(_ p: inout [UInt8], at o: Int, _ v: UInt64) {
        for i in 0..<8 { p[o + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(i))) }
    }

    /// Resume refuses it and leaves the destination as it was; the check
    /// without a device finds the same problem.
    func expectRefused(_ blob: [UInt8], _ message: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let dst = makeDevice(seed: 77, identity: fullIdentity)
        let before = dst.gpu.stateDigest
        do {
            try resume(dst, blob, chunks: [blob.count])
            Issue.record("resume accepted a blob with \(message)", sourceLocation: sourceLocation)
        } catch {
            #expect(error.errno == EINVAL, sourceLocation: sourceLocation)
            #expect(error.message.contains(message), "\(error.message)", sourceLocation: sourceLocation)
        }
        #expect(dst.gpu.stateDigest == before, sourceLocation: sourceLocation)
        // The device still runs its own workload afterwards.
        dst.reset()
        try dst.gpu.step(5)

        var found: StreamError?
        do throws(StreamError) {
            var check: ContentCheck?
            try StreamParser.scan(blob) { event in
                guard found == nil else { return }
                do throws(StreamError) {
                    switch event {
                    case .header(let h, _): check = try ContentCheck(header: h)
                    case .record(let t, _, let p, let o): try check?.check(t, p, at: o)
                    case .end(let o): try check?.finish(at: o)
                    case .skipped: break
                    }
                } catch { found = error }
            }
        } catch { found = found ?? error }
        #expect(found?.message.contains(message) == true, "\(String(describing: found))", sourceLocation: sourceLocation)
    }

    @Test("the unedited blob passes the check and resumes")
    func control() throws {
        let blob = try sound().sealed()
        let dst = makeDevice(seed: 77, identity: fullIdentity)
        try resume(dst, blob)
        var check = try ContentCheck(header: fullIdentity)
        try StreamParser.scan(blob) { event in
            if case .record(let t, _, let p, let o) = event { #expect(throws: Never.self) { try check.check(t, p, at: o) } }
        }
    }

    @Test("a workload with front_buffer 2 or a budget near 2^64 (each crashed the daemon at its next step)")
    func workload() throws {
        try expectRefused(try edited(.workload) { put64(&$0, at: 24, 2) }, "front_buffer is 2")
        try expectRefused(try edited(.workload) { put64(&$0, at: 16, .max - 5) }, "workload budget is 18446744073709551610 bytes")
        try expectRefused(try edited(.workload) { put64(&$0, at: 40, 4096) }, "working set is 4096 MiB; this device has 512 MiB")
    }

    @Test("a 2-byte config record, and config bytes no device can hold (vendor, BAR size bits)")
    func config() throws {
        try expectRefused(try edited(.config) { $0 = Array($0.prefix(2)) }, "config space is 2 bytes")
        try expectRefused(try edited(.config) { $0[0] = 0xde }, "config byte 0x00 is 0xde")
        try expectRefused(try edited(.config) { $0[0x10] |= 0xf0 }, "config byte 0x10")
    }

    @Test("register values wider than the register, read-only bits set, another device's PV info")
    func registers() throws {
        // The ring block's first pair is RING_TAIL (4 bytes, write mask 0x1ffff8).
        try expectRefused(try edited(.mmio) { put64(&$0, at: 5, 1 << 40) }, "RING_TAIL is 4 bytes wide")
        try expectRefused(try edited(.mmio) { put64(&$0, at: 5, 0x7) }, "RING_TAIL = 0x00000007 sets read-only bits 0x00000007")
        var s = try sound()
        let pv = try #require(s.records.firstIndex { $0.rawType == RecordType.mmio.rawValue && $0.payload.first == 4 })   // RegisterBlock.pvinfo
        // VGT_MAGIC is the PV info block's first register.
        put64(&s.records[pv].payload, at: 5, 0x1234)
        try expectRefused(s.sealed(), "PV info VGT_MAGIC")
        try expectRefused(try edited(.fences) { put64(&$0, at: 0, 0xfff) }, "FENCE_0")
    }

    @Test("a GGTT entry mapping a frame outside the vGPU, a page outside its memory")
    func memory() throws {
        try expectRefused(try edited(.ggtt) { put64(&$0, at: 4, UInt64(1 << 30) << 12 | 1) }, "maps frame 1073741824, beyond this device's 163840 frames")
        try expectRefused(try edited(.memory) { for i in 0..<4 { $0[i] = 0xff } }, "memory frame 4294967295 is beyond")
    }

    @Test("a stream without a workload record is not a device image")
    func missingRecord() throws {
        var s = try sound()
        s.records.remove(at: try #require(s.first(.workload)))
        try expectRefused(s.sealed(), "no config or workload record")
    }
}
