import ArgumentParser
import Foundation

/// How cost grows with the number of vGPUs in one mount: at each count,
/// creating the batch, listing sys/bus/mdev/devices, `mdevctl list` through
/// `mdevsim exec`, looking up one device, and resident memory per idle vGPU.
struct Scale: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scale",
        abstract: "Create, list, mdevctl list, lookup and memory at 10 to 10,000 vGPUs.",
        discussion: "Example: taskset -c 0 .build/release/mdevsim-bench scale --counts 10,100,1000,10000"
    )

    @Option(help: "Device counts to reach, comma-separated.") var counts = "10,100,1000,10000"
    @Option(help: "The mdevsim binary (default: beside this one).") var mdevsim: String?
    @Flag(help: "Skip mdevctl list (when mdevctl is not installed).") var noMdevctl = false
    @Option(help: "Run the daemon with --cache-entries SECONDS (default: the daemon's default; 0: live lookups).") var cacheEntries: Double?
    @Flag(help: "Print JSON.") var json = false

    struct Row: Encodable {
        var count = 0
        var createSeconds = 0.0
        var createsPerSecond = 0.0
        var lsMS = 0.0
        var mdevctlListMS: Double?
        var lookupUS = 0.0
        var kibPerVGPU = 0.0
        enum CodingKeys: String, CodingKey {
            case count, createSeconds = "create_batch_seconds", createsPerSecond = "creates_per_second", lsMS = "ls_ms"
            case mdevctlListMS = "mdevctl_list_ms", lookupUS = "lookup_us", kibPerVGPU = "kib_per_idle_vgpu"
        }
    }

    func run() throws {
        let binary = mdevsim ?? URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("mdevsim").path
        let targets = counts.split(separator: ",").compactMap { Int($0) }.sorted()
        guard let most = targets.last, most > 0 else { throw ValidationError("--counts needs positive numbers") }
        let perParent = IdleMemory.perParent
        let (config, _) = try IdleMemory.writeHostConfig(vGPUs: most)
        defer { unlink(config) }
        let daemon = try Daemon(binary: binary, arguments: ["--config", config] + (cacheEntries.map { ["--cache-entries", String($0)] } ?? []))
        defer { daemon.stop() }
        let bus = daemon.root + "/sys/class/mdev_bus"
        let devices = daemon.root + "/sys/bus/mdev/devices"
        let base = IdleMemory.residentKiB(daemon.process.processIdentifier)
        let useMdevctl = !noMdevctl && FileManager.default.isExecutableFile(atPath: "/usr/bin/mdevctl")

        var rows: [Row] = []
        var created = 0
        for target in targets {
            var row = Row(count: target)
            let t0 = Date()
            while created < target {
                let parent = String(format: "0000:%02x:%02x.0", 1 + (created / perParent) / 32, (created / perParent) % 32)
                let uuid = String(format: "00000000-0000-4000-8000-%012x", created + 1)
                try put("\(bus)/\(parent)/mdev_supported_types/\(IdleMemory.type)/create", uuid)
                created += 1
            }
            row.createSeconds = Date().timeIntervalSince(t0)
            row.createsPerSecond = Double(target - (rows.last?.count ?? 0)) / row.createSeconds
            row.lsMS = try timed { let r = try runProcess("/bin/ls", [devices]); guard r.lines == target else { throw ValidationError("ls listed \(r.lines), expected \(target)") } } * 1000
            if useMdevctl {
                row.mdevctlListMS = try timed {
                    let r = try runProcess(binary, ["exec", daemon.root, "--", "mdevctl", "list"])
                    guard r.lines == target else { throw ValidationError("mdevctl list printed \(r.lines) lines, expected \(target)") }
                } * 1000
            }
            // One device, looked up from the root each time (no dentry cache: zero timeouts).
            let one = devices + "/00000000-0000-4000-8000-000000000001/mdev_type/name"
            var st = stat()
            let lookups = 2000
            row.lookupUS = try timed {
                for _ in 0..<lookups { guard stat(one, &st) == 0 else { throw ValidationError("stat \(one): \(String(cString: strerror(errno)))") } }
            } * 1e6 / Double(lookups)
            row.kibPerVGPU = Double(IdleMemory.residentKiB(daemon.process.processIdentifier) - base) / Double(target)
            rows.append(row)
            if !json {
                print(String(format: "%6d vGPUs: batch created in %6.2f s (%5.0f/s)  ls %7.1f ms  mdevctl list %8@  lookup %6.1f µs  %5.1f KiB/idle vGPU",
                             target, row.createSeconds, row.createsPerSecond, row.lsMS,
                             row.mdevctlListMS.map { String(format: "%.0f ms", $0) } ?? "-", row.lookupUS, row.kibPerVGPU))
            }
        }
        if json {
            let data = try JSONEncoder().encode(["rows": rows])
            print(String(decoding: data, as: UTF8.self))
        }
    }

    func timed(_ body: () throws -> Void) throws -> Double {
        let t0 = Date()
        try body()
        return Date().timeIntervalSince(t0)
    }
}

/// Runs a program to completion; the number of non-empty lines it printed.
func runProcess(_ program: String, _ arguments: [String]) throws -> (status: Int32, lines: Int) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: program)
    p.arguments = arguments
    let out = Pipe()
    p.standardOutput = out
    p.standardError = FileHandle.nullDevice
    try p.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    guard p.terminationStatus == 0 else { throw ValidationError("\(program) \(arguments.joined(separator: " ")) exited \(p.terminationStatus)") }
    return (p.terminationStatus, String(decoding: data, as: UTF8.self).split(separator: "\n").count)
}
