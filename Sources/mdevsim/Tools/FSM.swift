import ArgumentParser
import Foundation
import Faults
import Migration
import RealDevice
import SysfsSnapshot
import Toolkit

struct FSM: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fsm",
        abstract: "Draw the VFIO v2 migration state machine and the kernel's path between two states.",
        discussion: """
          mdevsim fsm --features stop_copy,p2p --from RUNNING --to STOP_COPY
          mdevsim fsm --format dot | dot -Tpng > fsm.png
          mdevsim fsm --format svg --from RESUMING --to PRE_COPY > fsm.svg
        """
    )
    @Option(help: "Feature flags: stop_copy, p2p, pre_copy (comma-separated).") var features = "stop_copy,p2p,pre_copy"
    @Option(help: "text, dot or svg.") var format = "text"
    @Option(help: "Start state of a path to show.") var from: String?
    @Option(help: "Target state of a path to show.") var to: String?

    func validate() throws {
        guard MigrationFeatures(names: features.split(separator: ",").map(String.init)) != nil else {
            throw ValidationError("--features must be stop_copy, optionally with p2p and/or pre_copy")
        }
        guard ["text", "dot", "svg"].contains(format) else { throw ValidationError("--format is text, dot or svg") }
        guard (from == nil) == (to == nil) else { throw ValidationError("give both --from and --to") }
        for s in [from, to].compactMap({ $0 }) where MigrationState(text: s) == nil {
            throw ValidationError("unknown state '\(s)'")
        }
    }

    func run() throws {
        let f = MigrationFeatures(names: features.split(separator: ",").map(String.init))!
        let path = from.flatMap { a in to.map { (MigrationState(text: a)!, MigrationState(text: $0)!) } }
        switch format {
        case "dot": print(FSMDiagram.dot(f, path: path), terminator: "")
        case "svg": print(FSMDiagram.svg(f, path: path), terminator: "")
        default: print(FSMDiagram.text(f, path: path), terminator: "")
        }
    }
}
