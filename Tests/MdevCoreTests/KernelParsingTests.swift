import MdevCore
import Testing

@Suite("kernel parsers")
struct KernelParsingTests {
    @Test("guid_parse: 36 bytes plus one optional byte, hex in either case, lowercase name")
    func uuid() throws {
        let u = "83B8F4F2-509F-382F-3C1E-E6BFE0FA1001"
        #expect(try KernelParsing.mdevUUID(Array(u.utf8)) == u.lowercased())
        #expect(try KernelParsing.mdevUUID(Array((u + "\n").utf8)) == u.lowercased())
        // The kernel only parses the first 36 bytes; the 37th may be anything.
        #expect(try KernelParsing.mdevUUID(Array((u + "x").utf8)) == u.lowercased())
        for bad in [String(u.dropLast()), u + "\n\n", "", "83b8f4f2-509f-382f-3c1e_e6bfe0fa1001", "g3b8f4f2-509f-382f-3c1e-e6bfe0fa1001"] {
            #expect(throws: MdevError.self, "\(bad)") { try KernelParsing.mdevUUID(Array(bad.utf8)) }
        }
    }

    @Test("kstrtoul with base 0: prefixes, sign, one newline, overflow")
    func kstrtoul() {
        let cases: [(String, UInt64?)] = [
            ("1", 1), ("0", 0), ("1\n", 1), ("+7", 7), ("0x1f", 31), ("0X1F", 31), ("010", 8), ("08", nil),
            ("", nil), ("\n", nil), ("1\n\n", nil), ("-1", nil), (" 1", nil), ("abc", nil), ("0x", nil),
            ("18446744073709551615", UInt64.max), ("18446744073709551616", nil),
        ]
        for (text, expected) in cases {
            #expect(KernelParsing.kstrtoul(Array(text.utf8)) == expected, "\(text.debugDescription)")
        }
    }
}
