import StateStream
import Testing

@Suite("CRC-32C")
struct CRC32CTests {
    @Test("the standard check value: CRC-32C of \"123456789\" is 0xE3069283")
    func checkValue() {
        let bytes = Array("123456789".utf8)
        #expect(CRC32C.checksum(bytes) == 0xe306_9283)
        #expect(bytes.withUnsafeBytes { CRC32C.software($0) } == 0xe306_9283)
    }

    @Test("the hardware and table paths agree on every length and alignment, and chain through seeds")
    func pathsAgree() {
        var state: UInt64 = 12345
        let data: [UInt8] = (0..<40_000).map { _ in
            state = state &* 6_364_136_223_846_793_005 &+ 1
            return UInt8(truncatingIfNeeded: state >> 33)
        }
        data.withUnsafeBytes { raw in
            // Lengths around the three interleaved 2 KiB lanes (6144 bytes a block) and several blocks.
            for (start, length) in [(0, 0), (0, 1), (3, 7), (1, 8), (5, 63), (7, 4093), (0, 5000), (0, 6143), (0, 6144), (1, 6145),
                                    (3, 12_288), (5, 20_000), (0, 39_999)] {
                let slice = UnsafeRawBufferPointer(rebasing: raw[start..<start + length])
                #expect(CRC32C.checksum(slice) == CRC32C.software(slice), "\(start)+\(length)")
            }
            let whole = CRC32C.checksum(raw)
            let first = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: raw[0..<1234]))
            #expect(CRC32C.checksum(UnsafeRawBufferPointer(rebasing: raw[1234...]), seed: first) == whole)
        }
    }
}
