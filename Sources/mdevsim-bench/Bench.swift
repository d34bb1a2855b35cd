// mdevsim-bench: benchmarks that print their numbers. Build in release:
//   swift build -c release --product mdevsim-bench && .build/release/mdevsim-bench memory
import ArgumentParser
import Foundation

@main
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mdevsim-bench",
        abstract: "Benchmarks of mdevsim that print their numbers.",
        subcommands: [IdleMemory.self, Scale.self, MigrationThroughput.self, Codec.self, Startup.self, ToolkitBench.self]
    )
}

/// Creates many idle vGPUs of the largest type through `create` and reports the
/// daemon's resident memory per vGPU and the creation rate.
struct IdleMemory: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "memory",
        abstract: "Resident memory per idle vGPU and the time to create them.",
        discussion: "Example: mdevsim-bench memory --count 1000 (goal: at most 32 KiB per idle vGPU)"
    )

    @Option(help: "vGPUs to create.") var count = 1000
    @Option(help: "The mdevsim binary (default: beside this one).") var mdevsim: String?
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let binary = mdevsim ?? URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("mdevsim").path
        let perParent = IdleMemory.perParent
        let (config, parents) = try IdleMemory.writeHostConfig(vGPUs: count)
        defer { unlink(config) }
        let daemon = try Daemon(binary: binary, arguments: ["--config", config])
        defer { daemon.stop() }
        let bus = daemon.root + "/sys/class/mdev_bus"

        let before = IdleMemory.residentKiB(daemon.process.processIdentifier)
        let start = Date()
        for n in 0..<count {
            let parent = String(format: "0000:%02x:%02x.0", 1 + (n / perParent) / 32, (n / perParent) % 32)
            let uuid = String(format: "00000000-0000-4000-8000-%012x", n + 1)
            let path = "\(bus)/\(parent)/mdev_supported_types/\(IdleMemory.type)/create"
            let fd = open(path, O_WRONLY)
            guard fd >= 0, write(fd, uuid, 36) == 36 else { throw ValidationError("create \(uuid) on \(parent) failed: \(String(cString: strerror(errno)))") }
            close(fd)
        }
        let seconds = Date().timeIntervalSince(start)
        let after = IdleMemory.residentKiB(daemon.process.processIdentifier)
        let listed = try FileManager.default.contentsOfDirectory(atPath: daemon.root + "/sys/bus/mdev/devices").count
        guard listed == count else { throw ValidationError("expected \(count) devices, found \(listed)") }
        let perVGPU = Double(after - before) / Double(count)
        if json {
            print(#"{"benchmark":"idle vGPU memory","type":"\#(IdleMemory.type)","count":\#(count),"parents":\#(parents),"rss_before_kib":\#(before),"rss_after_kib":\#(after),"kib_per_vgpu":\#(String(format: "%.2f", perVGPU)),"goal_kib_per_vgpu":32,"create_seconds":\#(String(format: "%.3f", seconds)),"creates_per_second":\#(String(format: "%.0f", Double(count) / seconds))}"#)
        } else {
            print("idle vGPUs of \(IdleMemory.type) (64 MB low + 384 MB high GM each, 7 per real-shaped parent) on \(parents) parents")
            print("  created:          \(count) in \(String(format: "%.3f", seconds)) s (\(String(format: "%.0f", Double(count) / seconds)) creates/s)")
            print("  daemon RSS:       \(before) KiB before, \(after) KiB after")
            print("  per idle vGPU:    \(String(format: "%.2f", perVGPU)) KiB   (goal: <= 32 KiB)  \(perVGPU <= 32 ? "met" : "NOT met")")
        }
    }

    /// vGPUs of `type` a real Kaby Lake host takes: GVT-g's formula on the default
    /// parent (1 GiB aperture, 3 GiB hidden, 32 fences, the host's reserve) gives 7 V5_8.
    static let type = "i915-GVTg_V5_8"
    static let perParent = 7

    /// A host of enough default (real-shaped) parents for `vGPUs` V5_8, `perParent` on
    /// each; returns the config's path and the parent count.
    static func writeHostConfig(vGPUs: Int, perParent: Int = IdleMemory.perParent) throws -> (path: String, parents: Int) {
        let parents = (vGPUs + perParent - 1) / perParent
        var yaml = "parents:\n"
        for i in 0..<parents {
            yaml += "  - { address: \"0000:\(String(format: "%02x", 1 + i / 32)):\(String(format: "%02x", i % 32)).0\" }\n"
        }
        let path = NSTemporaryDirectory() + "mdevsim-bench-\(getpid())-\(vGPUs)-host.yaml"
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        return (path, parents)
    }

    static func residentKiB(_ pid: Int32) -> Int {
        let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            return Int(line.split(separator: " ").dropFirst().first ?? "0") ?? 0
        }
        return 0
    }
}
