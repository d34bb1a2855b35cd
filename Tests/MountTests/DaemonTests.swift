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
}
