import ArgumentParser
import Foundation
import Faults
import Migration
import RealDevice
import SysfsSnapshot
import Toolkit

struct SnapshotCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "snapshot",
        abstract: "Record real sysfs subtrees (attributes with content and mode, links, directories) to a file.",
        discussion: """
        Unreadable attributes are noted, not fatal. Serve the file with mdevsim mount DIR --tree FILE,
        beside simulated parents (which must use other PCI addresses).
          mdevsim snapshot /sys/devices/pci0000:00 /sys/bus/pci/devices \\
              -o host-pci.json
          mdevsim snapshot --from-umockdev gpu.umockdev -o gpu.json
        """
    )
    @Argument(help: "Absolute paths to record.") var sources: [String] = []
    @Option(name: .shortAndLong, help: "Output file, or - for stdout.") var output: String
    @Option(help: "Convert a .umockdev recording (umockdev-record) instead of recording live paths.") var fromUmockdev: String?

    func run() throws {
        try runTool("snapshot") {
            if let fromUmockdev {
                guard let text = try? String(contentsOfFile: fromUmockdev, encoding: .utf8) else {
                    throw ToolError("cannot read \(fromUmockdev)", exitCode: 2)
                }
                do { try Snapshot.importUmockdev(text, source: fromUmockdev).write(to: output) } catch let e as SnapshotError {
                    throw ToolError("\(fromUmockdev): \(e)")
                }
                return
            }
            var all: Snapshot?
            for source in sources {
                do {
                    let s = try Snapshot.capture(source)
                    if all == nil { all = s } else { all!.entries += s.entries; all!.source += " " + source }
                } catch { throw ToolError("\(error)", exitCode: 2) }
            }
            guard let all else { throw ToolError("give at least one path to record", exitCode: 64) }
            try all.write(to: output)
            if output != "-" {
                let unreadable = all.entries.filter { $0.unreadable != nil }.count
                print("recorded \(all.entries.count) entries to \(output)\(unreadable > 0 ? " (\(unreadable) unreadable attributes noted)" : "")")
            }
        }
    }
}
