import Foundation
import FuzzTargets
import Testing

/// The fuzz targets' short run in the test suite: every committed seed and
/// every regression input (testdata/fuzz/TARGET/{,regressions/}), then
/// deterministic mutations of them. A broken invariant traps, as under
/// libFuzzer; scripts/fuzz.sh is the long, coverage-guided run.
@Suite("Fuzz targets: seeds, regressions and a short mutation run")
struct FuzzTests {
    static let testdata = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("testdata/fuzz").path

    static func inputs(_ target: FuzzTarget) -> [[UInt8]] {
        var out: [[UInt8]] = []
        for dir in [testdata + "/" + target.rawValue, testdata + "/" + target.rawValue + "/regressions"] {
            for name in ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).sorted() {
                var isDir: ObjCBool = false
                guard FileManager.default.fileExists(atPath: dir + "/" + name, isDirectory: &isDir), !isDir.boolValue,
                      let data = FileManager.default.contents(atPath: dir + "/" + name) else { continue }
                out.append(Array(data))
            }
        }
        return out
    }

    /// A byte-level mutator with a fixed seed: flips, overwrites with edge
    /// values, inserts, erases, truncates, and splices two inputs.
    struct Mutator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        mutating func below(_ n: Int) -> Int { n <= 0 ? 0 : Int(next() % UInt64(n)) }

        mutating func mutate(_ input: [UInt8], other: [UInt8]) -> [UInt8] {
            var b = input
            for _ in 0..<(1 + below(4)) {
                switch below(6) {
                case 0 where !b.isEmpty: b[below(b.count)] ^= UInt8(1 << below(8))
                case 1 where !b.isEmpty: b[below(b.count)] = [0, 0xff, 0x7f, 0x80, 1][below(5)]
                case 2: b.insert(contentsOf: (0..<(1 + below(8))).map { _ in UInt8(truncatingIfNeeded: next()) }, at: below(b.count + 1))
                case 3 where b.count > 1:
                    let at = below(b.count)
                    b.removeSubrange(at..<min(b.count, at + 1 + below(16)))
                case 4: b = Array(b.prefix(below(b.count + 1)))
                default:
                    let at = below(b.count + 1)
                    b = Array(b.prefix(at)) + Array(other.dropFirst(below(other.count + 1)).prefix(64))
                }
            }
            return b
        }
    }

    @Test("every target's seeds and regressions run without a broken invariant", arguments: FuzzTarget.allCases)
    func seeds(_ target: FuzzTarget) {
        let inputs = FuzzTests.inputs(target)
        #expect(!inputs.isEmpty, "testdata/fuzz/\(target.rawValue) has no seed corpus")
        for input in inputs { target.run(input) }
        // The empty input and a byte of each value are valid programs too.
        target.run([])
        for b in 0...255 { target.run([UInt8(b)]) }
    }

    @Test("a short deterministic mutation run of each target", arguments: FuzzTarget.allCases)
    func mutations(_ target: FuzzTarget) {
        let inputs = FuzzTests.inputs(target)
        var m = Mutator(state: 0x6D64_6576_7369_6D00 ^ UInt64(target.rawValue.utf8.count))
        let deadline = Date().addingTimeInterval(1.5)
        var runs = 0
        while Date() < deadline && runs < 3000 {
            let a = inputs[m.below(inputs.count)], b = inputs[m.below(inputs.count)]
            target.run(m.mutate(a, other: b))
            runs += 1
        }
        #expect(runs > 10, "\(target.rawValue): only \(runs) inputs in 1.5 s")
    }

    @Test("the seed corpora in testdata match what the current code writes")
    func seedsCurrent() {
        for target in FuzzTarget.allCases {
            for seed in FuzzSeeds.seeds(for: target) {
                let path = FuzzTests.testdata + "/\(target.rawValue)/\(seed.name)"
                let committed = FileManager.default.contents(atPath: path).map(Array.init)
                #expect(committed == seed.bytes, "\(path) is stale: run `swift run mdevsim-fuzz seeds testdata/fuzz`")
            }
        }
    }
}
