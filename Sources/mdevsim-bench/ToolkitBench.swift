import ArgumentParser
import Foundation

/// `migrate` wall time and downtime of a V5_4 with written memory and its
/// workload running; `inspect` and `verify` throughput on a large blob beside
/// `cat` of the same file, all in one run.
struct ToolkitBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "toolkit",
        abstract: "migrate wall time and downtime; inspect and verify MB/s beside cat.",
        discussion: "  taskset -c 0 .build/release/mdevsim-bench toolkit --written-mib 256 --blob-mib 1024"
    )

    @Option(help: "Memory the V5_4 guest has written before migrating, MiB.") var writtenMib = 256
    @Option(help: "Dirty rate of the running guest during migration, MB/s.") var dirtyRate = 8.0
    @Option(help: "Size of the blob inspect and verify read, MiB.") var blobMib = 1024
    @Option(help: "The mdevsim binary (default: beside this one).") var mdevsim: String?
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let binary = mdevsim ?? URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("mdevsim").path
        let daemon = try Daemon(binary: binary)
        defer { daemon.stop() }
        let parent = daemon.root + "/sys/class/mdev_bus/0000:00:02.0/mdev_supported_types"

        // migrate: a V5_4 whose guest wrote `writtenMib` and keeps running. Its baseline is
        // a twin prepared the same way, saved whole and resumed elsewhere (no pre-copy, no
        // migration logic), unscaled: migrate may send more (pre-copy resends), and lose.
        let ids = (1...4).map { String(format: "30000000-0000-4000-8000-%012x", $0) }
        for id in ids { try put(parent + "/i915-GVTg_V5_4/create", id) }
        let (s, d, twin, twinDst) = (daemon.root + "/vfio/" + ids[0], daemon.root + "/vfio/" + ids[1],
                                     daemon.root + "/vfio/" + ids[2], daemon.root + "/vfio/" + ids[3])
        for dev in [s, twin] {
            try put(dev + "/workload/seed", "7")
            try put(dev + "/workload/working_set_mib", String(writtenMib))
            try put(dev + "/workload/fill", "1")
            try put(dev + "/workload/dirty_rate_mbps", String(dirtyRate))
        }
        var t0 = Date()
        let migrate = try runProcess(binary, ["migrate", s, d, "--json", "--max-downtime", "300", "--bandwidth", "1000"])
        let migrateSeconds = Date().timeIntervalSince(t0)
        guard migrate.status == 0, let report = try JSONSerialization.jsonObject(with: Data(migrate.out.utf8)) as? [String: Any] else {
            throw ValidationError("migrate failed: \(migrate.err)")
        }
        let bytes = report["total_bytes"] as? Int ?? 0
        let blobPath = "/dev/shm/mdevsim-bench-\(getpid()).blob"
        defer { unlink(blobPath) }
        var blob = [UInt8](repeating: 1, count: (Int(try get(twin + "/migration/stop_copy_size").dropLast()) ?? 0) + (64 << 20))
        t0 = Date()
        try put(twin + "/migration/state", "STOP_COPY")
        try readAll(twin + "/migration/data", into: &blob)
        try put(twinDst + "/migration/state", "RESUMING")
        try writeAll(twinDst + "/migration/data", blob)
        try put(twinDst + "/migration/state", "STOP")
        let streamSeconds = Date().timeIntervalSince(t0)

        // inspect / verify on a large blob (the V5_4s give their share of the pool back first).
        for uuid in ids { try put(daemon.root + "/sys/bus/mdev/devices/\(uuid)/remove", "1") }
        let big = "31000000-0000-4000-8000-000000000001"
        try put(parent + "/i915-GVTg_V5_1/create", big)
        let b = daemon.root + "/vfio/" + big
        try put(b + "/workload/working_set_mib", String(blobMib))
        try put(b + "/workload/fill", "1")
        let record = try runProcess(binary, ["record", b, "-o", blobPath])
        guard record.status == 0 else { throw ValidationError("record failed: \(record.err)") }
        let size = Double((try FileManager.default.attributesOfItem(atPath: blobPath)[.size] as? Int) ?? 0)
        // Each as a shell runs it, output to /dev/null.
        func timed(_ command: String) throws -> Double {
            let start = Date()
            let r = try runProcess("/bin/sh", ["-c", command + " > /dev/null"])
            guard r.status == 0 else { throw ValidationError("\(command) failed: \(r.err)") }
            return size / Date().timeIntervalSince(start) / 1e6
        }
        _ = try timed("cat \(blobPath)")     // warm the page cache for all three
        let cat = try timed("cat \(blobPath)")
        let inspect = try timed("\(binary) inspect \(blobPath)")
        let verify = try timed("\(binary) verify \(blobPath)")

        let downtime = report["measured_downtime_ms"] as? Double ?? 0, simulated = report["simulated_downtime_ms"] as? Double ?? 0
        if json {
            print(#"{"benchmark":"toolkit","migrate_bytes":\#(bytes),"migrate_seconds":\#(String(format: "%.3f", migrateSeconds)),"stream_seconds":\#(String(format: "%.3f", streamSeconds)),"migrate_over_stream":\#(String(format: "%.3f", migrateSeconds / streamSeconds)),"measured_downtime_ms":\#(String(format: "%.1f", downtime)),"simulated_downtime_ms":\#(String(format: "%.1f", simulated)),"blob_bytes":\#(Int(size)),"cat_mbps":\#(Int(cat)),"inspect_mbps":\#(Int(inspect)),"verify_mbps":\#(Int(verify))}"#)
        } else {
            print("migrate: V5_4, \(writtenMib) MiB written, guest dirtying \(dirtyRate) MB/s, \(bytes / 1_000_000) MB moved")
            print(String(format: "  wall time %.3f s; saving a twin whole and resuming it elsewhere %.3f s; ratio %.2f", migrateSeconds, streamSeconds, migrateSeconds / streamSeconds))
            print(String(format: "  downtime: %.1f ms measured, %.1f ms simulated at 1000 MB/s", downtime, simulated))
            print("inspect / verify on a \(Int(size / 1e6)) MB blob (whole process, reading the file):")
            print(String(format: "  cat FILE > /dev/null %8.0f MB/s\n  mdevsim inspect      %8.0f MB/s  (%.2f× cat)\n  mdevsim verify       %8.0f MB/s  (%.2f× cat)", cat, inspect, inspect / cat, verify, verify / cat))
        }
    }

    func runProcess(_ program: String, _ args: [String]) throws -> (status: Int32, out: String, err: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: program)
        p.arguments = args
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        // Drain both pipes while the process runs (inspect prints a lot).
        nonisolated(unsafe) var outData = Data(), errData = Data()
        let group = DispatchGroup()
        group.enter()
        DispatchQueue.global().async { outData = out.fileHandleForReading.readDataToEndOfFile(); group.leave() }
        errData = err.fileHandleForReading.readDataToEndOfFile()
        group.wait()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: outData, as: UTF8.self), String(decoding: errData, as: UTF8.self))
    }
}
