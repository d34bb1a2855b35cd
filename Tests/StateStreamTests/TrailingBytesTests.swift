import StateStream
import Testing

/// Found by the stream fuzz target: bytes after the end record were accepted
/// by one reader and refused by the other, depending on how they arrived.
@Suite("nothing may follow the end record, however the bytes arrive")
struct TrailingBytesTests {
    func stream(trailing: [UInt8]) -> [UInt8] {
        var w = StreamWriter()
        w.header(StreamHeader(model: "m", driverVersion: "1.0.0", parameters: []))
        w.record(.workload) { $0.putBytes([UInt8](repeating: 0, count: 48)) }
        w.end()
        return w.take() + trailing
    }

    @Test("a whole-buffer scan refuses trailing bytes")
    func scan() {
        #expect(throws: StreamError.self) { try StreamParser.scan(stream(trailing: [1, 2, 3])) { _ in } }
        #expect(throws: Never.self) { try StreamParser.scan(stream(trailing: [])) { _ in } }
    }

    @Test("incremental parsing refuses them in the end record's chunk and in a later one", arguments: [0, 1])
    func incremental(laterChunk: Int) throws {
        let good = stream(trailing: [])
        var p = StreamParser()
        if laterChunk == 1 {
            _ = try p.feed(good)
            #expect(throws: StreamError.self) { _ = try p.feed([9]) }
        } else {
            _ = try p.feed(good + [9])
            #expect(throws: StreamError.self) { try p.finish() }
        }
    }
}
