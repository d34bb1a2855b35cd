import ArgumentParser
import Foundation

/// Time from starting `mdevsim mount` to its first answered stat, beside the
/// C baseline server's in the same run.
struct Startup: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "startup",
        abstract: "Milliseconds from the command to the first answered stat (goal: 100 ms).",
        discussion: "Example: mdevsim-bench startup --c-server bench/out/c_attr_server"
    )

    @Option(help: "Rounds; the median is reported.") var rounds = 5
    @Option(help: "The mdevsim binary (default: beside this one).") var mdevsim: String?
    @Option(help: "The C baseline server (bench/c_attr_server.c), for the ratio.") var cServer: String?
    @Flag(help: "Print JSON.") var json = false

    /// Starts a server and spins on stat of `probe` until it answers; ms.
    func firstStat(_ program: String, _ arguments: [String], root: String, probe: String) throws -> Double {
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: program)
        p.arguments = arguments
        p.standardError = FileHandle.nullDevice
        var st = stat()
        let t0 = Date()
        try p.run()
        while stat(root + "/" + probe, &st) != 0 {
            guard p.isRunning, Date().timeIntervalSince(t0) < 10 else { throw ValidationError("\(program) did not answer a stat of \(probe) within 10 s") }
        }
        let ms = Date().timeIntervalSince(t0) * 1000
        kill(p.processIdentifier, SIGTERM)
        p.waitUntilExit()
        try? FileManager.default.removeItem(atPath: root)
        return ms
    }

    func run() throws {
        let binary = mdevsim ?? URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("mdevsim").path
        let probe = "sys/class/mdev_bus/0000:00:02.0/mdev_supported_types/i915-GVTg_V5_4/available_instances"
        var ours: [Double] = [], theirs: [Double] = []
        for round in 0..<rounds {
            let root = NSTemporaryDirectory() + "mdevsim-startup-\(getpid())-\(round)"
            if let cServer { theirs.append(try firstStat(cServer, [root + "-c", probe, "5\\n", "-s"], root: root + "-c", probe: probe)) }
            ours.append(try firstStat(binary, ["mount", root], root: root, probe: probe))
        }
        func median(_ v: [Double]) -> Double { v.sorted()[v.count / 2] }
        let m = median(ours)
        let c = theirs.isEmpty ? nil : median(theirs)
        if json {
            print(#"{"benchmark":"start-up to first stat","rounds":\#(rounds),"mdevsim_ms":\#(String(format: "%.1f", m)),"c_ms":\#(c.map { String(format: "%.1f", $0) } ?? "null"),"goal_ms":100}"#)
        } else {
            print(String(format: "start-up to first stat: mdevsim %.1f ms (goal 100 ms: %@)", m, m <= 100 ? "met" : "NOT met")
                  + (c.map { String(format: ", C libfuse server %.1f ms, ratio %.2f", $0, m / $0) } ?? ""))
        }
    }
}
