import ArgumentParser
import Faults
import Foundation
import FuseBridge
import Logging
import MdevCore
import RealDevice
import Simulator
import SysfsSnapshot
import VirtualFS

struct Mount: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve the simulated sysfs on DIR until SIGINT or SIGTERM.",
        discussion: """
        Runs in the foreground. Without --config it serves the built-in host: one Kaby Lake
        GT2 (8086:591d) at 0000:00:02.0 whose pool offers i915-GVTg_V5_8 ×7, _V5_4 ×5,
        _V5_2 ×2 and _V5_1 ×1. The tree appears under DIR/sys; a vGPU is created by writing
        a UUID to a type's create file:

          mdevsim mount --daemon /tmp/mdev        # returns once the tree is served
          echo 83b8f4f2-509f-382f-3c1e-e6bfe0fa1001 > \\
            /tmp/mdev/sys/class/mdev_bus/0000:00:02.0/mdev_supported_types/i915-GVTg_V5_4/create

        A config file (YAML or JSON) describes any number of parents; see testdata/ for
        examples. If the daemon dies, fusermount3 unmounts DIR (auto_unmount).
        """
    )

    @Argument(help: "Directory to mount on (created if missing).")
    var directory: String

    @Option(name: .long, help: "Host description, YAML or JSON (default: the built-in Kaby Lake host).")
    var config: String?

    @Option(name: .long, help: "Clock of new vGPUs' workloads: 'real' (wall time) or 'stepped' (advances only on vfio/<uuid>/workload/step, for reproducible state). Overrides the config.")
    var clock: String?

    @Option(name: .long, help: "Serve a recorded sysfs tree (from `mdevsim snapshot`) beside the simulated parents.")
    var tree: String?

    @Option(name: .long, help: "Mirror a real directory with live values: SRC[:DEST], DEST defaulting to SRC's own path under DIR (repeatable).")
    var passthrough: [String] = []

    @Flag(name: .long, help: "Let writes to mirrored files reach the real files (read-through only otherwise).")
    var allowWrites = false

    @Option(name: .customLong("vfio-device"), help: ArgumentHelp(
        "Serve a real VFIO device's migration at DIR/vfio/NAME/migration/: PATH[:NAME] (repeatable).",
        discussion: "PATH is a vfio cdev such as /dev/vfio/devices/vfio0; NAME defaults to its file name. The files are backed by the kernel's v2 ioctls, so record, replay and migrate run on it unchanged.",
        valueName: "PATH[:NAME]"))
    var vfioDevices: [String] = []

    @Option(name: .long, help: "Fault plan (YAML or JSON, rules: [...]) applied from the start; see `mdevsim fault --help`.")
    var faults: String?

    @Option(name: .long, help: "Also serve a replay device: a vGPU of the blob's type whose save stream is FILE byte for byte and whose resume accepts only exactly FILE (to prove a transport preserved it).")
    var replay: String?

    @Option(name: .long, help: "UUID of the replay device.")
    var replayUUID = "00000000-0000-4000-8000-00000000beef"

    @Flag(name: .long, help: "Let other users use the mount (needs user_allow_other in /etc/fuse.conf for non-root).")
    var allowOther = false

    @Option(name: .customLong("cache-entries"), help: ArgumentHelp(
        "Let the kernel cache entries, attributes and link targets for SECONDS (0: every lookup reaches mdevsim).",
        discussion: "Path walks and attribute reads then mostly skip the daemon: mdevctl list over 10,000 vGPUs takes ~1 s instead of ~10 s. File content is never cached (direct I/O). Removed entries are invalidated before the removing write returns; adding a fault rule through .mdevsim/faults invalidates every cached entry before the write returns, and while rules are active nothing is cached.",
        valueName: "SECONDS"))
    var cacheEntries: Double = 1

    @Flag(name: .long, help: "Serve requests on a single thread.")
    var singleThreaded = false

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error.")
    var logLevel: String = "notice"

    @Flag(name: .long, help: "Print libfuse's request trace.")
    var fuseDebug = false

    @Flag(name: .long, help: ArgumentHelp(
        "Run in the background: return once DIR is served, printing the daemon's pid and log file.",
        discussion: "Scripts can use the mount as soon as this returns (exit 0); a start-up error is printed and exits 1."))
    var daemon = false

    func validate() throws {
        guard cacheEntries >= 0, cacheEntries.isFinite else {
            throw ValidationError("--cache-entries must be 0 or more seconds, not \(cacheEntries)")
        }
        if let clock, !["real", "stepped"].contains(clock) {
            throw ValidationError("--clock must be 'real' or 'stepped'")
        }
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error")
        }
    }

    @Option(name: .long, help: ArgumentHelp(
        "Unix socket where `mdevsim exec --vfio` hands processes to this mount's VFIO emulation.",
        discussion: "Default: /run/mdevsim/vfio-<pid>.sock (MDEVSIM_STATE_DIR instead of /run/mdevsim). The path is shown in DIR/.mdevsim/vfio_socket.",
        valueName: "PATH"))
    var vfioSocket: String?

    @Flag(name: .customLong("no-vfio-emulation"), help: "Do not offer VFIO emulation (DIR/.mdevsim/vfio_socket stays empty).")
    var noVFIOEmulation = false

    func run() throws {
        if let existing = MountTable.mount(at: directory), existing.fstype == "fuse.mdevsim" {
            throw CLIError("\(directory) is already an mdevsim mount; unmount it first (mdevsim unmount \(directory)) or choose another directory")
        }
        if daemon { return try Daemon.start(directory: directory) }
        if ProcessInfo.processInfo.environment[Daemon.childVariable] != nil { setsid() }
        LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
        var logger = Logger(label: "mdevsim")
        logger.logLevel = Logger.Level(rawValue: logLevel)!

        var host: HostConfig
        do {
            host = try config.map { try HostConfig.load(path: $0) } ?? .builtIn
        } catch {
            throw CLIError("\(error)")
        }
        if let clock { host = host.withClock(clock) }
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)

        let simulated: SimulatedHost
        let faultLogger = logger
        let base = VirtualFS.Tree()
        if let tree {
            do { try Snapshot.load(tree).add(to: base) } catch { throw CLIError("--tree \(error)") }
        }
        for spec in passthrough {
            // Paths such as /sys/devices/pci0000:00 hold colons: an existing path is all SRC;
            // otherwise the last colon separates SRC from DEST.
            var realSource = spec, dest = String(spec.dropFirst())
            if !FileManager.default.fileExists(atPath: spec), let colon = spec.lastIndex(of: ":") {
                realSource = String(spec[..<colon])
                dest = String(spec[spec.index(after: colon)...])
            }
            guard realSource.hasPrefix("/") else { throw CLIError("--passthrough \(spec): SRC must be an absolute path") }
            guard !dest.isEmpty, !dest.hasPrefix("/"), !dest.split(separator: "/").contains("..") else {
                throw CLIError("--passthrough \(spec): DEST must be a relative path inside the mount")
            }
            let components = dest.split(separator: "/").map(String.init)
            do {
                try base.update { (c: inout TreeContents) throws(FSError) in
                    let parent = try c.directories(components.dropLast().joined(separator: "/"))
                    try c.mirror(components.last!, in: parent, realPath: realSource, allowWrites: allowWrites)
                }
            } catch { throw CLIError("--passthrough \(spec): \(error)") }
        }
        do {
            simulated = try SimulatedHost(config: host, tree: base, onFault: { faultLogger.warning("\($0)") })
        } catch { throw CLIError("cannot build the tree: \(error)") }
        if let faults {
            do {
                for rule in try FaultPlan.load(path: faults).rules { try simulated.faults.add(rule) }
            } catch { throw CLIError("--faults \(error)") }
        }
        for spec in vfioDevices {
            let parts = spec.split(separator: ":", maxSplits: 1).map(String.init)
            let path = parts.first ?? spec
            let name = parts.count > 1 ? parts[1] : URL(fileURLWithPath: path).lastPathComponent
            do {
                let device = try RealVFIODevice(path: path)
                try simulated.vfio.addExternal(id: name, endpoint: device, source: path)
                logger.notice("vfio/\(name) serves the real device \(path) (\(device.features))")
            } catch { throw CLIError("--vfio-device \(spec): \(error)") }
        }
        if let replay {
            guard let data = FileManager.default.contents(atPath: replay) else { throw CLIError("cannot read the replay blob \(replay)") }
            do {
                let device = try simulated.addReplayDevice(blob: Array(data), uuid: replayUUID)
                logger.notice("replay device \(device.uuid) (\(device.type.id)) serves \(replay)")
            } catch { throw CLIError("--replay \(replay): \(error)") }
        }

        var options = MountOptions()
        options.allowOther = allowOther
        options.singleThreaded = singleThreaded
        options.entryCacheSeconds = cacheEntries
        options.debug = fuseDebug
        let session: FuseSession
        do {
            session = try FuseSession(tree: simulated.tree, mountpoint: directory, options: options, logger: logger)
            simulated.vfio.mounted(at: directory)
        } catch {
            throw CLIError("\(error)")
        }
        session.installSignalHandlers()
        if !noVFIOEmulation {
            let socket: String
            if let vfioSocket { socket = vfioSocket } else {
                try PrivateDirectory.make(Exec.stateBase)
                socket = Exec.stateBase + "/vfio-\(getpid()).sock"
            }
            let vfioLogger = logger
            do {
                try simulated.serveVFIO(socket: socket, log: { vfioLogger.info("\($0)") })
            } catch { throw CLIError("--vfio-socket \(socket): \(error.message)") }
            logger.info("VFIO emulation for `mdevsim exec --vfio` at \(socket)")
        }
        let all = simulated.bus.parents
        let parents = all.count <= 4
            ? all.map { "\($0.name) (\($0.types.count) types)" }.joined(separator: ", ")
            : "\(all.count) parents, \(all.first!.name) to \(all.last!.name)"
        logger.notice("serving \(directory)/sys: \(parents)")
        let rc = session.run()
        logger.notice("unmounted \(directory)")
        // Tearing down a large host object by object took tens of seconds while
        // its memory grew; the kernel releases it all at once.
        withExtendedLifetime(simulated) { fflush(nil) }
        Glibc.exit(rc != 0 && rc != SIGTERM && rc != SIGINT && rc != SIGHUP ? 1 : 0)
    }
}

/// `mount --daemon`: the same mount in a detached child; returns when it serves.
enum Daemon {
    static let childVariable = "MDEVSIM_DAEMON_CHILD"

    static func start(directory: String) throws {
        var template = Array((NSTemporaryDirectory() + "mdevsim-XXXXXX.log").utf8CString)
        let logFD = template.withUnsafeMutableBufferPointer { mkstemps($0.baseAddress!, 4) }
        guard logFD >= 0 else { throw CLIError("cannot create a log file in \(NSTemporaryDirectory()): \(String(cString: strerror(errno)))") }
        let logPath = String(cString: template.map { $0 })
        let child = Process()
        child.executableURL = URL(fileURLWithPath: CommandLine.arguments[0]).standardizedFileURL
        if !FileManager.default.isExecutableFile(atPath: child.executableURL!.path) {
            child.executableURL = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        }
        child.arguments = Array(CommandLine.arguments.dropFirst().filter { $0 != "--daemon" })
        var environment = ProcessInfo.processInfo.environment
        environment[childVariable] = "1"
        child.environment = environment
        child.standardInput = FileHandle.nullDevice
        let log = FileHandle(fileDescriptor: logFD, closeOnDealloc: true)
        child.standardOutput = log
        child.standardError = log
        do { try child.run() } catch { throw CLIError("cannot start the daemon: \(error)") }
        let deadline = Date().addingTimeInterval(15)
        while Date() < deadline {
            if !child.isRunning {
                let text = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
                FileHandle.standardError.write(Data(text.utf8))
                throw ExitCode(child.terminationStatus == 0 ? 1 : child.terminationStatus)
            }
            if Ready.serving(directory) {
                print("mdevsim: serving \(directory) (pid \(child.processIdentifier), log \(logPath))")
                return
            }
            usleep(20_000)
        }
        kill(child.processIdentifier, SIGTERM)
        throw CLIError("the daemon did not serve \(directory) within 15 s; see \(logPath)")
    }
}

/// Whether a directory is an mdevsim mount that answers.
enum Ready {
    static func serving(_ directory: String) -> Bool {
        guard MountTable.mount(at: directory)?.fstype == "fuse.mdevsim" else { return false }
        var st = stat()
        return stat(directory + "/sys", &st) == 0
    }
}
