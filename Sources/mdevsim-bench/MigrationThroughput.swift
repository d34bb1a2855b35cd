import ArgumentParser
import Foundation

/// Save and resume throughput of a V5_4 with its working set filled, through a
/// real mount, beside the same bytes through tmpfs in the same run.
struct MigrationThroughput: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migration",
        abstract: "Save and resume throughput (MB/s) through the mount vs tmpfs.",
        discussion: """
        Creates two V5_4 vGPUs on a stepped clock, has the source's guest fill a working set,
        saves it through migration/data (STOP_COPY, 1 MiB reads), resumes it on the other
        (1 MiB writes, then STOP), checks the digests match, and does the same reads and
        writes against a file on /dev/shm. Run pinned for repeatable numbers:
          taskset -c 0 .build/release/mdevsim-bench migration --working-set-mib 256
        """
    )

    @Option(help: "Texture pool the guest fills, in MiB.") var workingSetMib = 256
    @Option(help: "Rounds; the median is reported.") var rounds = 3
    @Option(help: "The mdevsim binary (default: beside this one).") var mdevsim: String?
    @Option(help: "Baseline file to write and read the same bytes through instead of /dev/shm: the C libfuse server's `big` file (bench/c_attr_server.c, direct I/O).")
    var baselineFile: String?
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let binary = mdevsim ?? URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("mdevsim").path
        let daemon = try Daemon(binary: binary, arguments: ["--clock", "stepped"])
        defer { daemon.stop() }
        let types = daemon.root + "/sys/class/mdev_bus/0000:00:02.0/mdev_supported_types/i915-GVTg_V5_4"
        var saves: [Double] = [], resumes: [Double] = [], shmReads: [Double] = [], shmWrites: [Double] = []
        var bytes = 0
        let shm = baselineFile ?? "/dev/shm/mdevsim-bench-\(getpid()).blob"
        defer { if baselineFile == nil { unlink(shm) } }
        for round in 0..<rounds {
            let src = String(format: "10000000-0000-4000-8000-%012x", round), dst = String(format: "20000000-0000-4000-8000-%012x", round)
            try put(types + "/create", src)
            try put(types + "/create", dst)
            let s = daemon.root + "/vfio/" + src, d = daemon.root + "/vfio/" + dst
            try put(s + "/workload/working_set_mib", String(workingSetMib))
            try put(s + "/workload/fill", "1")
            try put(s + "/migration/state", "STOP_COPY")

            var blob = [UInt8](repeating: 1, count: (Int(try get(s + "/migration/stop_copy_size").dropLast()) ?? 0) + (16 << 20))
            var t0 = Date()
            try readAll(s + "/migration/data", into: &blob)
            saves.append(Double(blob.count) / Date().timeIntervalSince(t0) / 1e6)
            bytes = blob.count

            try put(d + "/migration/state", "RESUMING")
            t0 = Date()
            try writeAll(d + "/migration/data", blob)
            try put(d + "/migration/state", "STOP")
            resumes.append(Double(blob.count) / Date().timeIntervalSince(t0) / 1e6)
            guard try get(s + "/state_digest") == (try get(d + "/state_digest")) else {
                throw ValidationError("the resumed device's state_digest differs from the source's")
            }

            if baselineFile == nil { unlink(shm) }
            t0 = Date()
            try writeAll(shm, blob, create: baselineFile == nil)
            shmWrites.append(Double(blob.count) / Date().timeIntervalSince(t0) / 1e6)
            var back = [UInt8](repeating: 1, count: blob.count + 1)
            t0 = Date()
            try readAll(shm, into: &back, limit: blob.count)
            shmReads.append(Double(blob.count) / Date().timeIntervalSince(t0) / 1e6)
            guard back == blob else { throw ValidationError("the baseline file did not give back the bytes written to it") }
            try put(daemon.root + "/sys/bus/mdev/devices/\(src)/remove", "1")
            try put(daemon.root + "/sys/bus/mdev/devices/\(dst)/remove", "1")
        }
        func median(_ v: [Double]) -> Double { v.sorted()[v.count / 2] }
        let (save, resume, rd, wr) = (median(saves), median(resumes), median(shmReads), median(shmWrites))
        if json {
            print(#"{"benchmark":"migration throughput","type":"i915-GVTg_V5_4","stream_bytes":\#(bytes),"rounds":\#(rounds),"baseline":"\#(baselineFile == nil ? "tmpfs" : "c-libfuse")","save_mbps":\#(Int(save)),"baseline_read_mbps":\#(Int(rd)),"save_ratio":\#(String(format: "%.3f", save / rd)),"resume_mbps":\#(Int(resume)),"baseline_write_mbps":\#(Int(wr)),"resume_ratio":\#(String(format: "%.3f", resume / wr))}"#)
        } else {
            let base = baselineFile == nil ? "tmpfs" : "C libfuse"
            print("V5_4 with a \(workingSetMib) MiB working set filled: \(bytes / 1_000_000) MB stream, median of \(rounds) rounds, 1 MiB I/O")
            print(String(format: "  save   (STOP_COPY read of migration/data): %8.0f MB/s   \(base) read:  %8.0f MB/s   ratio %.3f", save, rd, save / rd))
            print(String(format: "  resume (RESUMING write, then STOP):         %8.0f MB/s   \(base) write: %8.0f MB/s   ratio %.3f", resume, wr, resume / wr))
            print("  resumed state_digest matches the source's")
        }
    }
}

/// An `mdevsim mount` daemon on a temporary directory.
final class Daemon {
    let root: String
    let process = Process()

    init(binary: String, arguments: [String] = []) throws {
        root = NSTemporaryDirectory() + "mdevsim-bench-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["mount", root, "--log-level", "warning"] + arguments
        try process.run()
        let deadline = Date().addingTimeInterval(30)
        while !FileManager.default.fileExists(atPath: root + "/sys/class/mdev_bus") && Date() < deadline { usleep(5_000) }
        guard FileManager.default.fileExists(atPath: root + "/sys/class/mdev_bus") else { throw ValidationError("mdevsim did not mount \(root)") }
    }

    func stop() {
        kill(process.processIdentifier, SIGTERM)
        process.waitUntilExit()
        try? FileManager.default.removeItem(atPath: root)
    }
}

func put(_ path: String, _ text: String) throws {
    let fd = open(path, O_WRONLY)
    guard fd >= 0 else { throw ValidationError("open \(path): \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    guard write(fd, text, text.utf8.count) == text.utf8.count else { throw ValidationError("write \(path): \(String(cString: strerror(errno)))") }
}

func get(_ path: String) throws -> String { try String(contentsOfFile: path, encoding: .utf8) }

/// Reads `path` to its end (or `limit` bytes) in `chunk`-sized reads straight
/// into `out`, which the caller sized (and so touched) before timing: the
/// figure is of the reads alone, not of growing or faulting in an array.
/// `out` is cut to the bytes read.
func readAll(_ path: String, into out: inout [UInt8], chunk: Int = 1 << 20, limit: Int = .max) throws {
    let fd = open(path, O_RDONLY)
    guard fd >= 0 else { throw ValidationError("open \(path): \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    var total = 0
    var failure: Int32 = 0
    out.withUnsafeMutableBytes { raw in
        while total < limit {
            let n = read(fd, raw.baseAddress! + total, min(chunk, limit - total, raw.count - total))
            if n < 0 { failure = errno; return }
            if n == 0 { return }
            total += n
        }
    }
    if failure != 0 { throw ValidationError("read \(path): \(String(cString: strerror(failure)))") }
    guard total < out.count || total == limit else { throw ValidationError("\(path) holds more than the \(out.count) bytes expected") }
    out.removeSubrange(total...)
}

func writeAll(_ path: String, _ bytes: [UInt8], create: Bool = false, chunk: Int = 1 << 20) throws {
    let fd = create ? open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600) : open(path, O_WRONLY)
    guard fd >= 0 else { throw ValidationError("open \(path): \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    var at = 0
    try bytes.withUnsafeBytes { raw in
        while at < raw.count {
            let n = write(fd, raw.baseAddress! + at, min(chunk, raw.count - at))
            if n <= 0 { throw ValidationError("write \(path): \(String(cString: strerror(errno)))") }
            at += n
        }
    }
}
