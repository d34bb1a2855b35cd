import Yams

/// Decodes YAML (or JSON) that may come from anyone (a config, a fault plan)
/// without letting it crash or stall the process. Two things in Yams would:
///
/// - An integer field given a plain scalar with colons is read as a YAML 1.1
///   base-60 number with unchecked arithmetic, so `9999999999:59:59:59` (or
///   many `:`-separated parts) traps on overflow. Found by the config and
///   fault-plan fuzz targets (testdata/fuzz/*/regressions/sexagesimal-overflow).
/// - Aliases expand: a few lines of anchors can stand for billions of nodes.
///
/// Both are refused before decoding, with a message that says what to change.
public enum SafeYAML {
    public struct Refusal: Error, CustomStringConvertible {
        public let description: String
    }

    /// Nodes a document may expand to, aliases counted each time they are used.
    public static let maxNodes = 1_000_000

    /// Deepest nesting a document may have: Yams composes recursively, and a
    /// few thousand `{` overflow the stack (found by the config fuzz target,
    /// testdata/fuzz/config/regressions/deep-nesting).
    public static let maxDepth = 64

    public static func decode<T: Decodable>(_ type: T.Type, from text: String) throws -> T {
        try checkDepth(text)
        if let root = try Yams.compose(yaml: text) {
            var budget = maxNodes
            try check(root, &budget)
        }
        return try YAMLDecoder().decode(type, from: text)
    }

    static func check(_ node: Node, _ budget: inout Int) throws {
        budget -= 1
        guard budget >= 0 else {
            throw Refusal(description: "the document expands to more than \(maxNodes) nodes (anchors and aliases?); write it out plainly")
        }
        switch node {
        case .scalar(let scalar):
            guard scalar.style == .plain || scalar.style == .any, scalar.string.contains(":") else { return }
            guard base60Fits(scalar.string) else {
                throw Refusal(description: "'\(scalar.string.prefix(60))' reads as a base-60 (YAML 1.1 sexagesimal) number too large for an integer; quote it if it is text")
            }
        case .mapping(let mapping):
            for (key, value) in mapping {
                try check(key, &budget)
                try check(value, &budget)
            }
        case .sequence(let sequence):
            for item in sequence { try check(item, &budget) }
        }
    }

    /// Refuses text nested deeper than `maxDepth`, counted before any parser
    /// recurses: flow collections (`[`, `{`, outside quotes and comments),
    /// block indentation levels and the `- ` entries that open a line.
    static func checkDepth(_ text: String) throws {
        var indents: [Int] = []
        var flow = 0
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let bytes = Array(line.utf8)
            var i = 0
            while i < bytes.count && bytes[i] == UInt8(ascii: " ") { i += 1 }
            guard i < bytes.count, bytes[i] != UInt8(ascii: "#") else { continue }
            var block = 0
            if flow == 0 {
                while let last = indents.last, last >= i { indents.removeLast() }
                indents.append(i)
                // "- - - x" opens a sequence per dash on one line.
                var j = i
                while j + 1 < bytes.count, bytes[j] == UInt8(ascii: "-"), bytes[j + 1] == UInt8(ascii: " ") {
                    block += 1
                    j += 2
                    while j < bytes.count && bytes[j] == UInt8(ascii: " ") { j += 1 }
                }
            }
            var quote: UInt8? = nil
            var k = i
            while k < bytes.count {
                let c = bytes[k]
                if let q = quote {
                    if c == UInt8(ascii: "\\") && q == UInt8(ascii: "\"") { k += 1 } else if c == q { quote = nil }
                } else if (c == UInt8(ascii: "\"") || c == UInt8(ascii: "'")) && opensScalar(bytes, at: k, lineStart: i) {
                    quote = c
                } else if c == UInt8(ascii: "#") && k > 0 && bytes[k - 1] == UInt8(ascii: " ") {
                    break
                } else if c == UInt8(ascii: "[") || c == UInt8(ascii: "{") {
                    flow += 1
                } else if c == UInt8(ascii: "]") || c == UInt8(ascii: "}") {
                    flow = max(0, flow - 1)
                }
                if indents.count + block + flow > maxDepth {
                    throw Refusal(description: "the document nests deeper than \(maxDepth) levels; write it out flatter")
                }
                k += 1
            }
        }
    }

    /// Whether a quote at `k` starts a quoted scalar as libyaml reads it: at the
    /// start of a token (after indentation, white space, `[`, `{` or `,`), or
    /// right after the `:` of a quoted key (`"a":"b"`). Elsewhere (`e:'x`) it is
    /// part of a plain scalar, and the brackets after it still count.
    static func opensScalar(_ bytes: [UInt8], at k: Int, lineStart: Int) -> Bool {
        guard k > lineStart else { return true }
        let p = bytes[k - 1]
        if [UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "["), UInt8(ascii: "{"), UInt8(ascii: ",")].contains(p) { return true }
        return p == UInt8(ascii: ":") && k >= 2 && (bytes[k - 2] == UInt8(ascii: "\"") || bytes[k - 2] == UInt8(ascii: "'"))
    }

    /// Whether Yams's base-60 reading of `text` (each `:`-part that is an
    /// integer, the last the units) stays within Int, multiplying as it does.
    static func base60Fits(_ text: String) -> Bool {
        var s = Substring(text.replacingOccurrences(of: "_", with: ""))
        if s.hasPrefix("-") || s.hasPrefix("+") { s = s.dropFirst() }
        let digits = s.split(separator: ":", omittingEmptySubsequences: false).compactMap { Int($0) }.reversed()
        var base = 1, value = 0
        for digit in digits {
            let (product, o1) = digit.multipliedReportingOverflow(by: base)
            let (sum, o2) = value.addingReportingOverflow(product)
            let (next, o3) = base.multipliedReportingOverflow(by: 60)
            if o1 || o2 || o3 { return false }
            (value, base) = (sum, next)
        }
        return true
    }
}
