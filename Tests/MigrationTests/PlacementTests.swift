import Foundation
import GPUModel
import Migration
import StateStream
import Testing

/// GVT-g places each vGPU's GM somewhere in the host's GGTT space; the guest is
/// told where through PVINFO, and a stream must carry a guest to a vGPU placed
/// elsewhere. Format 1.1 also widened the config record to the 4096 bytes GVT-g
/// gives a vGPU; 1.0 streams still load.
@Suite("GM placement and stream format 1.0")
struct PlacementTests {
    static let testdata = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("testdata").path

    static func device(_ name: String, lowBase: UInt64, highBase: UInt64, seed: UInt64 = 3) -> MigrationDevice {
        let g = VGPUGeometry(lowGMBytes: 128 << 20, highGMBytes: 512 << 20, vgpuID: 1, lowGMBase: lowBase, highGMBase: highBase,
                             apertureBytes: 1 << 30)
        let gpu = VGPU(uuid: name, geometry: g, workload: WorkloadConfig(seed: seed, dirtyRateMBps: 8, workingSetMiB: 2, clock: .stepped))
        return MigrationDevice(gpu: gpu, identity: identity)
    }

    static func save(_ d: MigrationDevice) throws -> [UInt8] {
        try d.setState(.stopCopy)
        var blob: [UInt8] = []
        _ = try drain(d, &blob)
        return blob
    }

    @Test("a guest moves to a vGPU placed elsewhere: it keeps the GM bases it was given, and runs on identically")
    func otherPlacement() throws {
        let src = Self.device("src", lowBase: 128 << 20, highBase: 3584 << 20)
        let dst = Self.device("dst", lowBase: 384 << 20, highBase: 3072 << 20, seed: 99)
        try src.gpu.step(30)
        let (ring, ggttOffset) = src.gpu.withHardware { ($0.register("RING_START"), $0.ggttOffset) }
        #expect(ring == (128 << 20) + GPULayout.ringBase, "the guest's ring sits in its own low GM")
        let pte = try src.gpu.readBAR0(offset: ggttOffset + Int(ring >> 12) * 8, size: 8)
        #expect(pte & 1 == 1)
        let blob = try Self.save(src)
        try resume(dst, blob)
        #expect(dst.gpu.withHardware { ($0.guestLowGMBase, $0.guestHighGMBase) } == (128 << 20, 3584 << 20))
        #expect(try dst.gpu.readBAR0(offset: ggttOffset + Int(ring >> 12) * 8, size: 8) == pte)
        #expect(dst.gpu.stateDigest == src.gpu.stateDigest)
        try src.setState(.running); try dst.setState(.running)
        try src.gpu.step(40); try dst.gpu.step(40)
        #expect(dst.gpu.stateDigest == src.gpu.stateDigest, "the resumed guest renders where its source would have")
    }

    @Test("GM bases that cannot be a guest's are refused, naming the register")
    func impossibleBases() throws {
        let dst = Self.device("dst", lowBase: 384 << 20, highBase: 3072 << 20)
        let hw = dst.gpu.withHardware { $0 }
        let low = hw.table.index(named: "VGT_LOW_GM_BASE")!, high = hw.table.index(named: "VGT_HIGH_GM_BASE")!
        #expect(hw.registerViolation(index: low, value: 0x3c00_0000)?.contains("VGT_LOW_GM_BASE") == true, "beyond the 1 GiB aperture")
        #expect(hw.registerViolation(index: low, value: 0x0100_0800) != nil, "off a page boundary")
        #expect(hw.registerViolation(index: high, value: 0xf000_0000) != nil, "beyond the 4 GiB GGTT space")
        #expect(hw.registerViolation(index: high, value: 0x1c00_0000)?.contains("overlaps") == true)
        #expect(hw.registerViolation(index: low, value: 0) == nil)
        #expect(hw.registerViolation(index: high, value: 0x4000_0000) == nil)
    }

    @Test("a stream of format 1.0 resumes: its 256-byte config is carried into the host-derived 4096-byte layout")
    func formatOneZero() throws {
        let blob = Array(FileManager.default.contents(atPath: Self.testdata + "/streams/format-1.0-5-ticks.bin") ?? Data())
        #expect(blob.count > 1000)
        #expect(blob[10] == 0 && blob[8] == 1, "the file is a format 1.0 stream")
        // Its config record, walked to by the record framing (type u16, flags u16, length u32, payload, crc u32).
        func u32(_ o: Int) -> Int { Int(blob[o]) | Int(blob[o + 1]) << 8 | Int(blob[o + 2]) << 16 | Int(blob[o + 3]) << 24 }
        var record = 16 + u32(12) + 4
        while record + 8 <= blob.count, blob[record] != 1 || blob[record + 1] != 0 { record += 12 + u32(record + 4) }
        try #require(record + 8 <= blob.count && u32(record + 4) == 256, "a 256-byte config record")
        let oldConfig = Array(blob[record + 8..<record + 8 + 256])
        let identity = StreamHeader(model: "mdevsim.dev/gvt-g", driverVersion: "1.2.0",
                                    parameters: [("type", "fuzz"), ("aggregation", "1"), ("low_gm_mb", "2"), ("high_gm_mb", "2"),
                                                 ("fences", "4"), ("resolution", "64x32")])
        let g = VGPUGeometry(lowGMBytes: 2 << 20, highGMBytes: 2 << 20, fences: 4, width: 64, height: 32, vgpuID: 1,
                             apertureBytes: ContentCheck.aperture(lowGMBytes: 2 << 20))
        let dst = MigrationDevice(gpu: VGPU(uuid: "new", geometry: g, workload: WorkloadConfig(seed: 5, dirtyRateMBps: 1, workingSetMiB: 1, clock: .stepped)), identity: identity)
        try resume(dst, blob)
        let c = try dst.gpu.readConfig(offset: 0, count: 4096)
        #expect(c[0x34] == 0x40 && c[0x40] == 0x09 && c[0xac] == 0x05 && c[0xd0] == 0x01, "the host's capability list")
        #expect(c[0x04] & 0x47 == oldConfig[0x04] & 0x47, "the command word the guest set is carried")
        #expect(c[0xae] & 1 == oldConfig[0x52] & 1 && c[0xb0..<0xb6] == oldConfig[0x54..<0x5a], "MSI moved to 0xac")
        // 1.0 placed high GM right after low GM; the guest keeps that.
        #expect(dst.gpu.withHardware { $0.guestHighGMBase } == 2 << 20)
        // The resumed device runs and saves a sound 1.1 stream.
        try dst.setState(.running)
        try dst.gpu.step(5)
        let again = try Self.save(dst)
        var check = try ContentCheck(header: identity)
        var parser = StreamParser()
        var records = 0
        for event in try parser.feed(again) {
            if case .record(let type, _, let payload, let offset) = event { try check.check(type, payload, at: offset); records += 1 }
            if case .end(let offset) = event { try check.finish(at: offset) }
        }
        #expect(records > 5)
        #expect(again[10] == 1, "saved as format 1.1")
    }
}
