import MdevCore
import Testing

/// Found by the config and fault-plan fuzz targets: inputs that used to crash
/// (or could stall) the YAML decoder are refused with a reason.
@Suite("hostile YAML in a config")
struct HostileYAMLTests {
    func refusal(_ yaml: String) -> String? {
        do { _ = try HostConfig.parse(yaml, source: "c.yaml"); return nil } catch { return "\(error)" }
    }

    @Test("a base-60 number too large for an integer is refused, not a trap")
    func sexagesimal() {
        let why = refusal("parents:\n  - {address: '0000:00:02.0', fences: 99999999999999:59:59:59}\n")
        #expect(why?.contains("base-60") == true, "\(why ?? "accepted")")
        let many = refusal("parents:\n  - {address: '0000:00:02.0', fences: 1:1:1:1:1:1:1:1:1:1:1:1:1}\n")
        #expect(many?.contains("base-60") == true, "\(many ?? "accepted")")
    }

    @Test("nesting that would overflow the YAML parser's stack is refused first (flow, block and dash forms)")
    func deepNesting() {
        for text in ["parents: " + String(repeating: "[", count: 5000),
                     "parents: " + String(repeating: "{a: ", count: 3000),
                     "parents:\n" + (1...200).map { String(repeating: " ", count: $0) + "a:" }.joined(separator: "\n"),
                     "parents:\n  " + String(repeating: "- ", count: 500) + "x",
                     // A quote inside a plain scalar opens no string: the brackets after it count.
                     "parents: {e:'V5_4, " + String(repeating: "{", count: 3000)] {
            let why = refusal(text)
            #expect(why?.contains("nests deeper than 64 levels") == true, "\(why ?? "accepted")")
        }
        // Ordinary nesting, and brackets inside quotes or comments, are not counted.
        #expect(refusal("parents: [{address: '0000:00:02.0', driver: i915}]   # [[[[[[[[[[[[[[[[[\n") == nil)
        #expect(refusal("parents:\n  - address: \"0000:00:02.0\"\n    type_prefix: \"GVTg_V5\"\n") == nil)
    }

    @Test("aliases that expand past a million nodes are refused")
    func aliasExpansion() {
        var yaml = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
        for i in 1...7 { yaml += "a\(i): &a\(i) [" + Array(repeating: "*a\(i - 1)", count: 10).joined(separator: ", ") + "]\n" }
        yaml += "parents:\n  - {address: '0000:00:02.0'}\n"
        let why = refusal(yaml)
        #expect(why?.contains("more than 1000000 nodes") == true, "\(why ?? "accepted")")
    }

    @Test("an ordinary config with colons in quoted and plain text still loads")
    func ordinary() {
        #expect(refusal("parents:\n  - address: 0000:00:02.0\n") == nil)
    }
}
