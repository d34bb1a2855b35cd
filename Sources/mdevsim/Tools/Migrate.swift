import ArgumentParser
import Foundation
import Faults
import Migration
import RealDevice
import SysfsSnapshot
import Toolkit

struct Migrate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Live-migrate SRC to DST through their files, as a VMM would.",
        discussion: """
        Checks compatibility first (writes SRC's migration_version to DST's), puts DST in
        RESUMING, iterates PRE_COPY until the remaining dirty data fits --max-downtime at
        --bandwidth (or --max-iterations), then STOP_COPY, loads DST, checks both digests,
        sets DST RUNNING and releases SRC (STOP). On any failure SRC ends RUNNING and DST
        is reset; the message names the step.
          mdevsim migrate /tmp/mdev/vfio/$SRC /tmp/mdev/vfio/$DST \\
              --max-downtime 100 --bandwidth 500
        """
    )
    @Argument(help: "Source device.") var source: String
    @Argument(help: "Destination device.") var destination: String
    @Option(help: "Largest acceptable downtime, ms.") var maxDowntime = 300.0
    @Option(help: "Link bandwidth the downtime is computed for, MB/s.") var bandwidth = 1000.0
    @Option(help: "Pre-copy iterations at most.") var maxIterations = 10
    @Option(help: "Draw bytes sent and dirty bytes left per pre-copy iteration to this SVG file.") var plot: String?
    @Flag(help: "Print JSON.") var json = false
    @Flag(help: "Print progress even when stderr is not a terminal.") var verbose = false
    @Option(help: .hidden) var failAt: String?

    func run() throws {
        try runTool("migrate") {
            Interruption.install()
            var o = Migrator.Options()
            o.maxDowntimeMS = maxDowntime
            o.bandwidthMBps = bandwidth
            o.maxIterations = maxIterations
            o.progress = progress(verbose)
            o.failAt = failAt
            let r = try Migrator.migrate(from: try DeviceHandle(source), to: try DeviceHandle(destination), o)
            if let plot {
                let svg = Plot.bars(title: "pre-copy: \(r.iterations.count) iterations, then \(r.finalBytes) bytes in stop-and-copy",
                                    series: [("bytes sent", "#4a7fc1", r.iterations), ("dirty bytes left", "#d9822b", r.dirtyAfter)],
                                    xLabel: "pre-copy iteration")
                try FileIO.writeAll(plot, Array(svg.utf8))
            }
            if json { printJSON(r); return }
            print("migrated \(source) → \(destination)")
            print("  pre-copy iterations: \(r.iterations.count)\(r.converged ? " (converged)" : " (did not converge: iteration limit)")")
            for (i, n) in r.iterations.enumerated() { print("    \(i + 1): \(n) bytes sent, \(r.dirtyAfter[i]) dirty after") }
            print("  stop-and-copy: \(r.finalBytes) bytes; total \(r.totalBytes) bytes in \(String(format: "%.3f", r.totalSeconds)) s")
            print(String(format: "  downtime: %.1f ms simulated at %.0f MB/s, %.1f ms measured", r.simulatedDowntimeMS, bandwidth, r.measuredDowntimeMS))
            print("  state_digest equal on both sides: \(r.digestsEqual.map { $0 ? "yes" : "no" } ?? "not compared (a side has no state_digest)")")
        }
    }
}


struct Compat: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Explain whether SRC can migrate to DST, rule by rule.",
        discussion: """
        SRC and DST can be devices (DIR/vfio/<uuid>), types (.../mdev_supported_types/<type>)
        or blobs. Exit 0 when compatible, 1 when not. With --candidates, ranks the given
        destinations, compatible ones first, closest driver version first.
          mdevsim compat /tmp/mdev/vfio/$SRC /tmp/mdev/vfio/$DST
          mdevsim compat vgpu.blob --candidates /tmp/mdev/vfio/*
        """
    )
    @Argument(help: "Source: device, type or blob.") var source: String
    @Argument(help: "Destination: device or type.") var destination: String?
    @Option(parsing: .upToNextOption, help: "Destinations to rank.") var candidates: [String] = []
    @Flag(help: "Print JSON.") var json = false

    func validate() throws {
        guard destination != nil || !candidates.isEmpty else { throw ValidationError("give DST or --candidates DEV...") }
    }

    func run() throws {
        try runTool("compat") {
            let src = try Toolkit.Compat.endpoint(source)
            let targets = (destination.map { [$0] } ?? []) + candidates
            let verdicts = try targets.map { Toolkit.Compat.check(src, try Toolkit.Compat.endpoint($0)) }
                .sorted { ($0.compatible ? 0 : 1, $0.rank) < ($1.compatible ? 0 : 1, $1.rank) }
            if json { printJSON(verdicts) } else { verdicts.forEach { print(Toolkit.Compat.text($0), terminator: "") } }
            if !(verdicts.first?.compatible ?? false) { throw ExitCode(1) }
        }
    }
}
