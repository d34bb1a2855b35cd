import Migration
import Testing

typealias M = MigrationState

/// Parses "R>RP>S" style paths from the kernel reference's notation.
func states(_ text: String) -> [M] {
    let names: [String: M] = ["S": .stop, "R": .running, "SC": .stopCopy, "RES": .resuming, "RP": .runningP2P, "PC": .preCopy, "PCP": .preCopyP2P]
    return text.split(separator: ">").map { names[String($0)]! }
}

@Suite("v2 state machine against the kernel's table")
struct StateMachineTests {
    /// The arcs the uAPI header documents for a device with every feature.
    static let directArcs = ["R>RP", "RP>R", "RP>S", "S>RP", "S>SC", "SC>S", "S>RES", "RES>S", "R>PC", "PC>R",
                             "PC>PCP", "PCP>PC", "PCP>RP", "RP>PCP", "PCP>SC"]
    /// The multi-step combinations the header lists for every feature ("→" = one arc).
    static let combinations = ["PC>PCP>SC", "PC>R>RP", "PC>R>RP>S", "PC>R>RP>S>RES", "PCP>RP>R", "PCP>RP>S", "PCP>RP>S>RES",
                               "RES>S>RP", "RES>S>RP>PCP", "RES>S>RP>R", "RES>S>RP>R>PC", "RES>S>SC", "R>RP>PCP", "R>RP>S",
                               "R>RP>S>RES", "R>RP>S>SC", "RP>R>PC", "RP>S>RES", "RP>S>SC", "S>RP>PCP", "S>RP>R", "S>RP>R>PC",
                               "SC>S>RES", "SC>S>RP", "SC>S>RP>R"]

    @Test("every (from, to) pair with all features: direct arcs, the listed combinations, SC→PC* refused")
    func allFeatures() {
        var expected: [String: [M]] = [:]
        for path in Self.directArcs + Self.combinations {
            let s = states(path)
            expected["\(s.first!)>\(s.last!)"] = Array(s.dropFirst())
        }
        let usable = M.allCases.filter { $0 != .error }
        var checked = 0
        for from in usable {
            for to in usable {
                let got = MigrationFSM.path(from: from, to: to, features: .all)
                if from == to {
                    #expect(got == [], "\(from)>\(to)")
                } else if from == .stopCopy && (to == .preCopy || to == .preCopyP2P) {
                    #expect(got == nil, "\(from)>\(to) must be EINVAL, not a loop")
                } else {
                    #expect(got == expected["\(from)>\(to)"], "\(from)>\(to)")
                }
                checked += 1
            }
        }
        #expect(checked == 49)
        #expect(expected.count == 40)
    }

    @Test("STOP_COPY only: the reference's table of step sequences")
    func stopCopyOnly() {
        let table: [String: String] = [
            "S>R": "S>R", "S>SC": "S>SC", "S>RES": "S>RES", "R>S": "R>S", "R>SC": "R>S>SC", "R>RES": "R>S>RES",
            "SC>S": "SC>S", "SC>R": "SC>S>R", "SC>RES": "SC>S>RES", "RES>S": "RES>S", "RES>R": "RES>S>R", "RES>SC": "RES>S>SC",
        ]
        for (pair, path) in table {
            let ends = states(pair), steps = states(path)
            #expect(MigrationFSM.path(from: ends[0], to: ends[1], features: [.stopCopy]) == Array(steps.dropFirst()), "\(pair)")
        }
        for optional in [M.runningP2P, .preCopy, .preCopyP2P] {
            #expect(MigrationFSM.path(from: .running, to: optional, features: [.stopCopy]) == nil, "\(optional) is not supported")
            #expect(MigrationFSM.path(from: optional, to: .running, features: [.stopCopy]) == nil)
        }
    }

    @Test("P2P without PRE_COPY and PRE_COPY without P2P take the paths the reference gives")
    func partialFeatures() {
        let p2p: MigrationFeatures = [.stopCopy, .p2p]
        for path in ["R>RP>S>SC", "SC>S>RP>R", "RES>S>RP>R", "S>RP>R"] {
            let s = states(path)
            #expect(MigrationFSM.path(from: s.first!, to: s.last!, features: p2p) == Array(s.dropFirst()), "\(path)")
        }
        #expect(MigrationFSM.path(from: .running, to: .preCopy, features: p2p) == nil)
        let pre: MigrationFeatures = [.stopCopy, .preCopy]
        for path in ["R>PC", "PC>SC", "PC>R>S", "PC>R>S>RES", "S>R>PC", "RES>S>R>PC"] {
            let s = states(path)
            #expect(MigrationFSM.path(from: s.first!, to: s.last!, features: pre) == Array(s.dropFirst()), "\(path)")
        }
        #expect(MigrationFSM.path(from: .stopCopy, to: .preCopy, features: pre) == nil)
        #expect(MigrationFSM.path(from: .running, to: .runningP2P, features: pre) == nil)
    }

    @Test("ERROR can never be requested, and nothing leaves it but reset")
    func errorState() {
        for features in MigrationFeatures.defined {
            for from in M.allCases {
                #expect(MigrationFSM.nextState(from: from, to: .error, features: features) == nil)
                #expect(MigrationFSM.nextState(from: .error, to: from, features: features) == nil)
            }
        }
    }

    @Test("state names and numbers parse as the kernel spells them")
    func names() {
        #expect(M(text: "running") == .running)
        #expect(M(text: "VFIO_DEVICE_STATE_PRE_COPY_P2P\n") == .preCopyP2P)
        #expect(M(text: "3") == .stopCopy)
        #expect(M(text: "8") == nil)
        #expect(M(text: "paused") == nil)
        #expect(MigrationFeatures(names: ["stop_copy", "pre_copy"]) == [.stopCopy, .preCopy])
        #expect(MigrationFeatures(names: ["p2p"]) == nil)        // STOP_COPY is mandatory
    }
}
