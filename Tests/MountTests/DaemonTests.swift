import Foundation
import Testing

/// The `mdevsim` executable as a user runs it: its own process, signals, exit codes.
@Suite("mdevsim daemon process", .requires(canMount && haveMdevsimBinary, "needs /dev/fuse, fusermount3 and the mdevsim binary"), .timeLimit(.minutes(1)))
struct DaemonTests {
    func startDaemon(_ dir: String, _ extra: [String] = []) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: mdevsimBinary)
        p.arguments = ["mount", dir] + extra
        p.standardError = FileHandle.nullDevice
        try p.run()
        return p
    }

    @Test("SIGTERM unmounts cleanly and exits 0")
    func sigterm() throws {
        let dir = makeTempDirectory("daemon")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let p = try startDaemon(dir)
        defer { if p.isRunning { p.terminate() } }
        #expect(waitFor { FileManager.default.fileExists(atPath: dir + "/sys/class/mdev_bus/0000:00:02.0") })
        #expect(try readText(dir + "/sys/bus/pci/devices/0000:00:02.0/vendor") == "0x8086\n")
        kill(p.processIdentifier, SIGTERM)
        p.waitUntilExit()
        #expect(p.terminationStatus == 0)
        #expect(!isMounted(dir))
    }

    @Test("kill -9 leaves no stale mount (auto_unmount) and a new mount works at once")
    func killNine() throws {
        let dir = makeTempDirectory("daemon")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let p = try startDaemon(dir)
        #expect(waitFor { FileManager.default.fileExists(atPath: dir + "/sys/class/mdev_bus") })
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        #expect(waitFor { !isMounted(dir) })
        let again = try startDaemon(dir)
        #expect(waitFor { FileManager.default.fileExists(atPath: dir + "/sys/class/mdev_bus") })
        let r = try run(mdevsimBinary, ["unmount", dir])
        #expect(r.status == 0, "\(r)")
        again.waitUntilExit()
        #expect(again.terminationStatus == 0)
    }

    @Test("start-up errors name the file and the rule, and exit 1")
    func badConfig() throws {
        let dir = makeTempDirectory("daemon")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let config = dir + ".yaml"
        try "parents: [{address: '0000:00:02.0', driver_version: 'one'}]".write(toFile: config, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: config) }
        var r = try run(mdevsimBinary, ["mount", dir, "--config", config])
        #expect(r.status == 1)
        #expect(r.err.contains("\(config): parents[0] (0000:00:02.0): driver_version must be x.y.z"), "\(r)")
        r = try run(mdevsimBinary, ["mount", dir, "--config", dir + "/missing.yaml"])
        #expect(r.status == 1)
        #expect(r.err.contains("missing.yaml: cannot read the config file"), "\(r)")
        r = try run(mdevsimBinary, ["mount", dir, "--cache-entries=-1"])
        #expect(r.status == 64)
        #expect(r.err.contains("--cache-entries must be 0 or more seconds"), "\(r)")
        #expect(!isMounted(dir))
    }

    @Test("unmount and exec explain what is wrong with a directory that is not a mount")
    func notAMount() throws {
        let dir = makeTempDirectory("daemon")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var r = try run(mdevsimBinary, ["unmount", dir])
        #expect(r.status == 1)
        #expect(r.err.contains("\(dir) is not a mount point"), "\(r)")
        r = try run(mdevsimBinary, ["exec", dir, "--", "true"])
        #expect(r.status == 1)
        #expect(r.err.contains("is not an mdevsim mount"), "\(r)")
        #expect(r.err.contains("mdevsim mount \(dir)"), "\(r)")
        r = try run(mdevsimBinary, ["exec", dir])
        #expect(r.status == 64)
        #expect(r.err.contains("give the command after --"), "\(r)")
    }

    @Test("vfio-info on something that is not a VFIO device explains, exit 1")
    func vfioInfo() throws {
        let r = try run(mdevsimBinary, ["vfio-info", "/dev/null"])
        #expect(r.status == 1 && r.err.contains("not a VFIO device"), "\(r)")
    }

    @Test("--help teaches with an example")
    func help() throws {
        for command in ["mount", "exec", "unmount"] {
            let r = try run(mdevsimBinary, [command, "--help"])
            #expect(r.status == 0)
            #expect(r.out.contains("mdevsim"), "\(command): \(r)")
        }
        let r = try run(mdevsimBinary, ["mount", "--help"])
        #expect(r.out.contains("echo 83b8f4f2-509f-382f-3c1e-e6bfe0fa1001"))
    }

    @Test("mount --daemon returns once the tree is served; a second mount on the directory is refused and the first keeps serving")
    func daemonAndTwice() throws {
        let dir = makeTempDirectory("daemon")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var r = try run(mdevsimBinary, ["mount", "--daemon", dir])
        #expect(r.status == 0 && r.out.contains("mdevsim: serving \(dir) (pid "), "\(r)")
        defer { _ = try? run(mdevsimBinary, ["unmount", dir]) }
        // Usable the moment it returns: no polling.
        #expect(try readText(dir + "/sys/bus/pci/devices/0000:00:02.0/vendor") == "0x8086\n")
        r = try run(mdevsimBinary, ["mount", dir])
        #expect(r.status == 1 && r.err.contains("\(dir) is already an mdevsim mount; unmount it first"), "\(r)")
        r = try run(mdevsimBinary, ["mount", "--daemon", dir])
        #expect(r.status == 1 && r.err.contains("already an mdevsim mount"), "\(r)")
        #expect(try run(mdevsimBinary, ["wait", dir, "--timeout", "1"]).status == 0)
        #expect(try readText(dir + "/sys/class/mdev_bus/0000:00:02.0/mdev_supported_types/i915-GVTg_V5_4/available_instances") == "5\n")
        r = try run(mdevsimBinary, ["unmount", dir])
        #expect(r.status == 0, "\(r)")
        r = try run(mdevsimBinary, ["wait", dir, "--timeout", "0.3"])
        #expect(r.status == 1 && r.err.contains("is not served by mdevsim"), "\(r)")
        // A start-up error comes back from the daemon to the caller.
        r = try run(mdevsimBinary, ["mount", "--daemon", dir, "--config", dir + "/missing.yaml"])
        #expect(r.status == 1 && r.err.contains("missing.yaml: cannot read the config file"), "\(r)")
    }

    @Test("unmount ends the daemon within 2 s even while mdevsim exec holds a copy of the mount", .requires(isRoot, "needs root"))
    func unmountWithExecRunning() throws {
        let dir = makeTempDirectory("daemon")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let daemon = try startDaemon(dir)
        defer { if daemon.isRunning { daemon.terminate() } }
        #expect(waitFor { FileManager.default.fileExists(atPath: dir + "/sys/class/mdev_bus") })
        let exec = Process()
        exec.executableURL = URL(fileURLWithPath: mdevsimBinary)
        exec.arguments = ["exec", dir, "--", "sleep", "30"]
        try exec.run()
        defer { if exec.isRunning { exec.terminate() } }
        usleep(500_000)                                   // exec has made its namespace
        let start = Date()
        let r = try run(mdevsimBinary, ["unmount", dir])
        #expect(r.status == 0, "\(r)")
        #expect(waitFor({ !daemon.isRunning }, seconds: 2), "the daemon still runs 2 s after unmount")
        #expect(Date().timeIntervalSince(start) < 2.5)
        daemon.waitUntilExit()
        #expect(daemon.terminationStatus == 0)
    }

    @Test("a daemon with a quarter GiB of device memory exits within 2 s of unmount")
    func largeDaemonExits() throws {
        let dir = makeTempDirectory("daemon")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let daemon = try startDaemon(dir, ["--clock", "stepped"])
        defer { if daemon.isRunning { daemon.terminate() } }
        #expect(waitFor { FileManager.default.fileExists(atPath: dir + "/sys/class/mdev_bus") })
        let types = dir + "/sys/class/mdev_bus/0000:00:02.0/mdev_supported_types/i915-GVTg_V5_4"
        for uuid in [uuidA, uuidB] {
            try writeText(types + "/create", uuid)
            try writeText(dir + "/vfio/\(uuid)/workload/working_set_mib", "120")
            try writeText(dir + "/vfio/\(uuid)/workload/step", "1")
            try writeText(dir + "/vfio/\(uuid)/workload/fill", "1")
        }
        let start = Date()
        #expect(try run(mdevsimBinary, ["unmount", dir]).status == 0)
        #expect(waitFor({ !daemon.isRunning }, seconds: 2), "the daemon still runs 2 s after unmount")
        print("large daemon: exited \(String(format: "%.0f", Date().timeIntervalSince(start) * 1000)) ms after unmount")
    }

    @Test("--help examples stay whole at 80 columns and when piped")
    func helpAt80Columns() throws {
        let commands = [[], ["mount"], ["wait"], ["unmount"], ["exec"], ["record"], ["inspect"], ["verify"], ["diff"], ["replay"],
                        ["migrate"], ["compat"], ["fsm"], ["fault"], ["fault", "add"], ["snapshot"], ["vfio-info"]]
        func examples(_ text: String) -> [String] {
            text.split(separator: "\n").map(String.init).filter { line in
                ["mdevsim ", "echo ", "cat ", "T=", "op=", "errno=", "probability="].contains { line.drop { $0 == " " }.hasPrefix($0) } && line.hasPrefix("  ")
            }
        }
        for command in commands {
            let wide = try run("/usr/bin/env", ["COLUMNS=300", mdevsimBinary] + command + ["--help"])
            let narrow = try run("/usr/bin/env", ["COLUMNS=80", mdevsimBinary] + command + ["--help"])
            let piped = try run(mdevsimBinary, command + ["--help"])      // stdout is a file here
            #expect(examples(narrow.out) == examples(wide.out), "mdevsim \(command.joined(separator: " ")) --help breaks an example at 80 columns")
            #expect(examples(piped.out) == examples(wide.out), "mdevsim \(command.joined(separator: " ")) --help breaks an example when piped")
            for line in narrow.out.split(separator: "\n") where line.hasPrefix("  ") && examples(String(line)).count == 1 {
                #expect(line.count <= 80, "over 80 columns: \(line)")
            }
        }
    }
}
