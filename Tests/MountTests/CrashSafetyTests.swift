import Foundation
import FuseBridge
import Simulator
import Testing

/// What happens when a process dies or is told to stop at the worst moment.
@Suite("crash safety and permissions", .requires(canMount && haveMdevsimBinary, "needs /dev/fuse, fusermount3 and the mdevsim binary"), .timeLimit(.minutes(2)))
struct CrashSafetyTests {
    func state(_ h: MountedHost, _ uuid: String) -> String {
        ((try? readText(h.vfio(uuid) + "/migration/state")) ?? "?").trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Two V5_4 vGPUs, the source with a 24 MiB working set its guest keeps dirtying.
    func prepareBusyPair(_ h: MountedHost) throws {
        for uuid in [uuidA, uuidB] { try writeText(h.typeDir("i915-GVTg_V5_4") + "/create", uuid) }
        try writeText(h.vfio(uuidA) + "/workload/working_set_mib", "24")
        try writeText(h.vfio(uuidA) + "/workload/dirty_rate_mbps", "400")
        try writeText(h.vfio(uuidA) + "/workload/fill", "1")
    }

    func start(_ arguments: [String]) throws -> (Process, URL) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: mdevsimBinary)
        p.arguments = arguments
        let err = URL(fileURLWithPath: makeTempDirectory("err") + "/stderr")
        FileManager.default.createFile(atPath: err.path, contents: nil)
        p.standardError = try FileHandle(forWritingTo: err)
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        return (p, err)
    }

    @Test("SIGTERM to migrate mid pre-copy: it stops, the source keeps RUNNING with its state, the destination is reset")
    func sigtermDuringMigrate() throws {
        try withMountedHost { h in
            try prepareBusyPair(h)
            let (p, err) = try start(["migrate", h.vfio(uuidA), h.vfio(uuidB), "--max-downtime", "0.001", "--bandwidth", "1", "--max-iterations", "1000"])
            #expect(waitFor { state(h, uuidA) == "PRE_COPY" }, "migrate never reached pre-copy")
            kill(p.processIdentifier, SIGTERM)
            p.waitUntilExit()
            let message = (try? String(contentsOf: err, encoding: .utf8)) ?? ""
            #expect(p.terminationStatus == 128 + SIGTERM, "\(message)")
            #expect(message.contains("interrupted by SIGTERM"), "\(message)")
            #expect(message.contains("the source is RUNNING"), "\(message)")
            #expect(state(h, uuidA) == "RUNNING")
            #expect(state(h, uuidB) == "RUNNING", "the destination was reset")
            // Nothing is left half-done: a new migration runs to the end.
            try writeText(h.vfio(uuidA) + "/workload/dirty_rate_mbps", "0")
            let again = try run(mdevsimBinary, ["migrate", h.vfio(uuidA), h.vfio(uuidB)])
            #expect(again.status == 0, "\(again)")
        }
    }

    @Test("SIGTERM to the daemon during a migration: the daemon unmounts and exits 0, migrate fails with a reason instead of hanging")
    func sigtermDaemonDuringMigrate() throws {
        let dir = makeTempDirectory("daemon")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (daemon, _) = try start(["mount", dir])
        defer { if daemon.isRunning { daemon.terminate() } }
        let type = dir + "/sys/class/mdev_bus/0000:00:02.0/mdev_supported_types/i915-GVTg_V5_4"
        #expect(waitFor { FileManager.default.fileExists(atPath: type) })
        for uuid in [uuidA, uuidB] { try writeText(type + "/create", uuid) }
        try writeText(dir + "/vfio/\(uuidA)/workload/working_set_mib", "24")
        try writeText(dir + "/vfio/\(uuidA)/workload/dirty_rate_mbps", "400")
        try writeText(dir + "/vfio/\(uuidA)/workload/fill", "1")
        let (migrate, err) = try start(["migrate", dir + "/vfio/\(uuidA)", dir + "/vfio/\(uuidB)", "--max-downtime", "0.001", "--bandwidth", "1", "--max-iterations", "1000"])
        defer { if migrate.isRunning { migrate.terminate() } }
        #expect(waitFor { ((try? readText(dir + "/vfio/\(uuidA)/migration/state")) ?? "") == "PRE_COPY\n" })
        kill(daemon.processIdentifier, SIGTERM)
        daemon.waitUntilExit()
        #expect(daemon.terminationStatus == 0)
        #expect(waitFor { !migrate.isRunning }, "migrate hangs after its devices went away")
        #expect(migrate.terminationStatus != 0)
        let message = (try? String(contentsOf: err, encoding: .utf8)) ?? ""
        #expect(message.contains("migration failed at step"), "\(message)")
        #expect(waitFor { !isMounted(dir) })
    }

    @Test("a client killed in the middle of data reads leaves the device usable: a new session or a reset recovers it")
    func clientKilledMidRead() throws {
        try withMountedHost { h in
            try prepareBusyPair(h)
            for recovery in ["new session", "reset"] {
                try writeText(h.vfio(uuidA) + "/migration/state", "STOP_COPY")
                // A reader that takes its time: 4 KiB at a time.
                let reader = Process()
                reader.executableURL = URL(fileURLWithPath: "/bin/dd")
                reader.arguments = ["if=\(h.vfio(uuidA))/migration/data", "of=/dev/null", "bs=4096"]
                reader.standardError = FileHandle.nullDevice
                try reader.run()
                usleep(50_000)
                kill(reader.processIdentifier, SIGKILL)
                reader.waitUntilExit()
                #expect(reader.terminationReason == .uncaughtSignal, "dd finished before it was killed: make the stream longer")
                if recovery == "reset" {
                    try writeText(h.vfio(uuidA) + "/reset", "1")
                } else {
                    try writeText(h.vfio(uuidA) + "/migration/state", "STOP")
                    try writeText(h.vfio(uuidA) + "/migration/state", "RUNNING")
                }
                #expect(state(h, uuidA) == "RUNNING", "\(recovery)")
                let blob = makeTempDirectory("blob") + "/a.blob"
                let r = try run(mdevsimBinary, ["record", h.vfio(uuidA), "-o", blob, "--resume-source"])
                #expect(r.status == 0, "after \(recovery): \(r)")
                let v = try run(mdevsimBinary, ["verify", blob])
                #expect(v.status == 0, "after \(recovery): \(v)")
            }
        }
    }

    @Test("a reader holding data while another process resets the device: its next read fails EBADF, the device is RUNNING")
    func resetUnderReader() throws {
        try withMountedHost { h in
            try prepareBusyPair(h)
            try writeText(h.vfio(uuidA) + "/migration/state", "STOP_COPY")
            let fd = open(h.vfio(uuidA) + "/migration/data", O_RDONLY)
            #expect(fd >= 0)
            defer { close(fd) }
            var buffer = [UInt8](repeating: 0, count: 1 << 16)
            for _ in 0..<4 { #expect(read(fd, &buffer, buffer.count) > 0) }
            let r = try run("/bin/sh", ["-c", "echo 1 > '\(h.vfio(uuidA))/reset'"])
            #expect(r.status == 0, "\(r)")
            errno = 0
            #expect(read(fd, &buffer, buffer.count) == -1 && errno == EBADF)
            #expect(state(h, uuidA) == "RUNNING")
        }
    }

    /// Runs `stat` as the unprivileged user nobody.
    func statAsNobody(_ path: String) throws -> Ran {
        try run("/usr/bin/setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/stat", "-c", "%a", path])
    }

    @Test("by default only the mounting user can use the mount; --allow-other lets others in, with the kernel's modes",
          .requires(isRoot && FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv"), "needs root, setpriv"))
    func permissions() throws {
        try withMountedHost { h in
            let r = try statAsNobody(h.root + "/sys")
            #expect(r.status != 0 && r.err.contains("Permission denied"), "\(r)")
        }
        var options = testMountOptions
        options.allowOther = true
        try withMountedHost(options: options) { h in
            let type = h.typeDir("i915-GVTg_V5_4")
            var r = try statAsNobody(type + "/available_instances")
            #expect(r.status == 0 && r.out == "444\n", "\(r)")
            r = try statAsNobody(type + "/create")
            #expect(r.status == 0 && r.out == "200\n", "\(r)")
            // create is write-only for root: nobody is refused by the kernel before the daemon sees it.
            r = try run("/usr/bin/setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", "/bin/sh", "-c", "echo \(uuidA) > \(type)/create"])
            #expect(r.status != 0 && r.err.contains("Permission denied"), "\(r)")
            #expect(h.bus.devices.isEmpty)
        }
    }
}
