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

          mdevsim mount /tmp/mdev &
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
        "Let the kernel cache directory and link entries for SECONDS (0: every lookup reaches mdevsim).",
        discussion: "Path walks then mostly skip the daemon: mdevctl list over 10,000 vGPUs takes ~1 s instead of ~10 s. Removed entries are invalidated before the removing write returns (with --single-threaded, a moment after); attribute files are never cached; while fault rules are active nothing is cached, and an entry cached in the second before a rule was added does not see its lookup faults.",
        valueName: "SECONDS"))
    var cacheEntries: Double = 1

    @Flag(name: .long, help: "Serve requests on a single thread.")
    var singleThreaded = false

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error.")
    var logLevel: String = "notice"

    @Flag(name: .long, help: "Print libfuse's request trace.")
    var fuseDebug = false

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

    func run() throws {
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
        } catch {
            throw CLIError("\(error)")
        }
        session.installSignalHandlers()
        let all = simulated.bus.parents
        let parents = all.count <= 4
            ? all.map { "\($0.name) (\($0.types.count) types)" }.joined(separator: ", ")
            : "\(all.count) parents, \(all.first!.name) to \(all.last!.name)"
        logger.notice("serving \(directory)/sys: \(parents)")
        let rc = session.run()
        logger.notice("unmounted \(directory)")
        withExtendedLifetime(simulated) {}
        if rc != 0 && rc != SIGTERM && rc != SIGINT && rc != SIGHUP {
            throw ExitCode(1)
        }
    }
}

struct Unmount: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Unmount a directory mounted by `mdevsim mount` (the daemon then exits).",
        discussion: "Example: mdevsim unmount /tmp/mdev"
    )

    @Argument(help: "The mounted directory.")
    var directory: String

    func run() throws {
        if let problem = Unmounter.detach(directory) {
            throw CLIError(problem)
        }
    }
}

struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
