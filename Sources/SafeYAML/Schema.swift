import Yams

/// The shape a document must have: which keys each mapping may hold. Checked
/// on the composed document before decoding, so an unknown key (a typo that
/// would otherwise be ignored), a duplicated key (of which YAML keeps one in
/// silence) or a value of the wrong kind is refused with its place and, for a
/// typo, the nearest known key.
public indirect enum Schema: Sendable {
    /// A scalar of this kind.
    case scalar(ScalarKind)
    /// A mapping with these keys, each with its own schema.
    case mapping([String: Schema])
    /// A sequence whose items all have this schema.
    case list(Schema)
    /// A sequence or a mapping of anything (not checked further).
    case any

    var expected: String {
        switch self {
        case .scalar(let kind): kind.words
        case .mapping: "a mapping of key: value"
        case .list: "a list"
        case .any: "anything"
        }
    }
}

extension SafeYAML {
    /// Decodes `text` after checking it against `schema`; an empty document is refused.
    public static func decode<T: Decodable>(_ type: T.Type, from text: String, schema: Schema) throws -> T {
        try checkDepth(text)
        guard let root = try Yams.compose(yaml: text) else {
            throw Refusal(description: "the file is empty (no YAML or JSON document in it)")
        }
        var budget = maxNodes
        try check(root, &budget)
        try conform(root, to: schema, at: "")
        return try YAMLDecoder().decode(type, from: text)
    }

    static func conform(_ node: Node, to schema: Schema, at path: String) throws {
        let place = path.isEmpty ? "the top level" : path
        switch (schema, node) {
        case (.any, _):
            return
        case (.scalar(let kind), .scalar(let scalar)):
            guard kind.accepts(scalar.string) else {
                throw Refusal(description: "\(place): expected \(kind.words), got '\(scalar.string.prefix(40))'")
            }
        case (.mapping(let keys), .mapping(let mapping)):
            var seen = Set<String>()
            for (key, value) in mapping {
                guard case .scalar(let k) = key else { throw Refusal(description: "\(place): a key must be plain text") }
                guard seen.insert(k.string).inserted else {
                    throw Refusal(description: "\(place): '\(k.string)' is given twice; keep one")
                }
                guard let sub = keys[k.string] else {
                    let hint = nearest(k.string, in: Array(keys.keys)).map { "; did you mean '\($0)'?" } ?? ""
                    throw Refusal(description: "\(place): unknown key '\(k.string)'\(hint) (known: \(keys.keys.sorted().joined(separator: ", ")))")
                }
                try conform(value, to: sub, at: path.isEmpty ? k.string : "\(path).\(k.string)")
            }
        case (.list(let item), .sequence(let sequence)):
            for (i, value) in sequence.enumerated() { try conform(value, to: item, at: "\(path)[\(i)]") }
        default:
            throw Refusal(description: "\(place): expected \(schema.expected), got \(describe(node))")
        }
    }

    static func describe(_ node: Node) -> String {
        switch node {
        case .scalar(let s): "'\(s.string.prefix(40))'"
        case .mapping: "a mapping"
        case .sequence: "a list"
        }
    }

    /// The known key closest to `word` by edit distance, if close enough to be a typo.
    static func nearest(_ word: String, in candidates: [String]) -> String? {
        func distance(_ a: [Character], _ b: [Character]) -> Int {
            var row = Array(0...b.count)
            for (i, ca) in a.enumerated() {
                var previous = row[0]
                row[0] = i + 1
                for (j, cb) in b.enumerated() {
                    let current = row[j + 1]
                    row[j + 1] = min(row[j + 1] + 1, row[j] + 1, previous + (ca == cb ? 0 : 1))
                    previous = current
                }
            }
            return row[b.count]
        }
        let w = Array(word.lowercased())
        let best = candidates.map { ($0, distance(w, Array($0))) }.min { $0.1 < $1.1 || ($0.1 == $1.1 && $0.0 < $1.0) }
        guard let best, best.1 <= max(2, w.count / 3) || best.0.hasPrefix(word) || word.hasPrefix(best.0) else { return nil }
        return best.0
    }
}

/// What a scalar must be, checked as text before any decoder sees it.
public enum ScalarKind: Sendable {
    case integer, number, boolean, text
    /// A PCI id: a number, or hex text such as "0x591d".
    case hex

    var words: String {
        switch self {
        case .integer: "a whole number"
        case .number: "a number"
        case .boolean: "true or false"
        case .text: "text"
        case .hex: "a number or hex such as 0x591d"
        }
    }

    func accepts(_ s: String) -> Bool {
        switch self {
        case .integer: Int(s) != nil || UInt64(s) != nil
        case .number: Double(s) != nil
        case .boolean: s == "true" || s == "false"
        case .text: true
        case .hex:
            Int(s) != nil || (s.lowercased().hasPrefix("0x") && Int(s.dropFirst(2), radix: 16) != nil) || Int(s, radix: 16) != nil
        }
    }
}
