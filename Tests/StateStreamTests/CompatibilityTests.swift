import StateStream
import Testing

/// One definition of compatible: the checks `mdevsim compat` explains are the ones a
/// resume applies, so the two never disagree.
@Suite("compatibility: one set of rules, explained and enforced")
struct CompatibilityTests {
    static func header(_ version: String, _ params: [(String, String)] = [("type", "V5_4")], model: String = "mdevsim.dev/gvt-g") -> StreamHeader {
        StreamHeader(model: model, driverVersion: version, parameters: params.map { (name: $0.0, value: $0.1) })
    }

    @Test("problems are exactly the failed checks, each with its explanation")
    func problemsAreFailedChecks() {
        let cases: [(StreamHeader, StreamHeader, Bool)] = [
            (Self.header("1.2.0"), Self.header("1.2.5"), true),
            (Self.header("1.2.0"), Self.header("1.3.0"), true),
            (Self.header("1.3.0"), Self.header("1.2.0"), false),                 // minor backwards
            (Self.header("2.0.0"), Self.header("1.9.0"), false),                 // across major
            (Self.header("1.2.0"), Self.header("1.2.0", [("type", "V5_8")]), false),
            (Self.header("1.2.0", [("type", "V5_4"), ("x", "1")]), Self.header("1.2.0"), false),
            (Self.header("1.2.0"), Self.header("1.2.0", [("type", "V5_4"), ("x", "1")]), false),
            (Self.header("1.2.0", model: "a/b"), Self.header("1.2.0"), false),
        ]
        for (s, d, compatible) in cases {
            let checks = Compatibility.checks(source: s, destination: d)
            #expect(checks.allSatisfy(\.ok) == compatible, "\(s.driverVersion) → \(d.driverVersion)")
            #expect(Compatibility.problems(source: s, destination: d) == checks.filter { !$0.ok }.map { $0.problem! })
            #expect(checks.allSatisfy { !$0.detail.isEmpty })
        }
        // Across a major version only the major rule fails.
        let major = Compatibility.checks(source: Self.header("2.5.0"), destination: Self.header("1.9.0")).filter { !$0.ok }
        #expect(major.map(\.rule) == ["driver major version"])
    }

    @Test("driver versions are x.y.z exactly: no digits picked out of other text")
    func strictVersions() {
        for bad in ["1.2", "1.x.2.3", "1..2.3", "v1.2.3", "1.2.3.4", "-1.2.3", ""] {
            let checks = Compatibility.checks(source: Self.header(bad), destination: Self.header("1.2.3"))
            #expect(checks.contains { $0.rule == "driver version" && !$0.ok }, "'\(bad)'")
        }
    }
}
