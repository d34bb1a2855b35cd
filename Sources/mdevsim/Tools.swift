import ArgumentParser
import Foundation
import Faults
import Migration
import RealDevice
import SysfsSnapshot
import Toolkit

/// Runs a tool body, turning its failure into a message on stderr and the exit code.
func runTool(_ name: String, _ body: () throws -> Void) throws {
    do {
        try body()
    } catch let e as ToolError {
        FileHandle.standardError.write(Data("mdevsim \(name): \(e.message)\n".utf8))
        throw ExitCode(e.exitCode)
    } catch let e as ExitCode {
        throw e
    } catch {
        FileHandle.standardError.write(Data("mdevsim \(name): \(error)\n".utf8))
        throw ExitCode(1)
    }
}

/// Progress lines on stderr, only when stderr is a terminal (or --verbose).
func progress(_ verbose: Bool) -> ((String) -> Void)? {
    guard verbose || isatty(2) != 0 else { return nil }
    return { FileHandle.standardError.write(Data("  \($0)\n".utf8)) }
}

func printJSON<T: Encodable>(_ value: T) {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    print(String(decoding: try! encoder.encode(value), as: UTF8.self))
}

struct Record: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Save a device's state to a blob.",
        discussion: """
        DEV is DIR/vfio/<uuid> or DIR/sys/bus/mdev/devices/<uuid>; v2 and v1 devices are
        detected. Without --live: stop-and-copy only. The device is left stopped unless
        --resume-source; on failure it is put back to RUNNING.

          mdevsim record /tmp/mdev/vfio/$UUID -o vgpu.blob --live --resume-source
        """
    )
    @Argument(help: "The device.") var device: String
    @Option(name: .shortAndLong, help: "Output file, or - for stdout.") var output: String
    @Flag(help: "Pre-copy while the device keeps running, then stop-and-copy.") var live = false
    @Flag(help: "Put the source back to RUNNING afterwards.") var resumeSource = false
    @Option(help: "Pre-copy iterations at most.") var maxIterations = 8
    @Flag(help: "Wrap the data the way QEMU's VFIO migration code frames it (VFIO_MIG_FLAG_* tags, 1 MiB data chunks).")
    var qemuFraming = false
    @Flag(help: "Print progress even when stderr is not a terminal.") var verbose = false

    func run() throws {
        try runTool("record") {
            Interruption.install()
            var o = Recorder.Options()
            o.live = live
            o.resumeSource = resumeSource
            o.maxIterations = maxIterations
            o.progress = progress(verbose)
            let result = try Recorder.record(try DeviceHandle(device), o)
            try FileIO.writeAll(output, qemuFraming ? QEMUFraming.wrap(result.blob, passes: result.iterations) : result.blob)
            if output != "-" {
                print("recorded \(result.blob.count) bytes to \(output) (\(result.iterations.count) passes: \(result.iterations.map(String.init).joined(separator: " + ")))")
            }
        }
    }
}

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show a blob's header, records, checksum status and registers by name.",
        discussion: """
        Exit 0 for a sound blob; 1 (after showing what could be read and the first fault) for one that is not a
        stream, is cut short, has a bad checksum, or holds what no device could load.
          mdevsim inspect vgpu.blob
          mdevsim record DEV -o - | mdevsim inspect - --json
        """
    )
    @Argument(help: "Blob file, or - for stdin.") var file: String
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        try runTool("inspect") {
            let bytes = try FileIO.readAll(file)
            let framed = QEMUFraming.isFramed(bytes)
            let analysis = BlobAnalysis(try QEMUFraming.raw(bytes))
            if framed && !json { print("(QEMU VFIO framing: \(bytes.count) bytes framed, device data below)") }
            if QEMUMigrationFile.isMigrationFile(bytes), !json {
                let file = try QEMUMigrationFile(bytes)
                print(Extract.summary(file, try file.device(nil)))
            }
            print(json ? Toolkit.Inspect.json(analysis) : Toolkit.Inspect.text(analysis, source: file), terminator: "")
            if !analysis.sound { throw ExitCode(1) }
        }
    }
}

struct Extract: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Take a VFIO device's state out of a whole QEMU migration file.",
        discussion: """
        Walks QEMU's sections as its loader does (RAM by its own format, devices by the file's
        VMDESCRIPTION, each checked to end on its footer), reassembles the <slot>/vfio sections'
        DEV_DATA_STATE chunks into the vendor driver's stream, and writes it to -o. inspect,
        verify, diff and replay accept the migration file directly when it holds one VFIO device.
          qemu: migrate "exec:cat > /tmp/vm.mig"
          mdevsim extract /tmp/vm.mig -o gpu.blob && mdevsim verify gpu.blob
          mdevsim extract /tmp/vm.mig --json          # sections, devices, passes, config state
        """
    )
    @Argument(help: "A QEMU migration file (QEVM).") var file: String
    @Option(help: "The device's guest slot, e.g. 0000:00:01.0 (needed when the file holds several).") var device: String?
    @Option(name: .shortAndLong, help: "Where to write the device data (- for stdout).") var output: String?
    @Option(help: "Also write the VFIOPCIDevice config-state vmstate here.") var configState: String?
    @Flag(help: "Print JSON: the sections and VFIO devices found.") var json = false

    static func summary(_ f: QEMUMigrationFile, _ d: QEMUMigrationFile.VFIODevice) -> String {
        var pci = ""
        if let c = d.pciConfig {
            func le16(_ o: Int) -> String { String(format: "%04x", Int(c[o]) | Int(c[o + 1]) << 8) }
            pci = "; PCI config from QEMU: \(le16(0)):\(le16(2)) command 0x\(le16(4)) status 0x\(le16(6))"
        }
        return "(QEMU migration file: machine \(f.machine), \(f.sections.count) sections, \(f.ramBytes >> 20) MiB of RAM; "
            + "VFIO device \(d.slot): \(d.payload.count) bytes of device data in passes \(d.passes.map(String.init).joined(separator: " + ")), "
            + "config state \(d.config.count) bytes\(pci); device data below)"
    }

    func run() throws {
        try runTool("extract") {
            let f = try QEMUMigrationFile(try FileIO.readAll(file))
            if json {
                struct Device: Encodable {
                    let slot: String; let bytes: Int; let passes: [Int]; let configStateBytes: Int; let pciConfig: String?
                    enum CodingKeys: String, CodingKey { case slot, bytes, passes, configStateBytes = "config_state_bytes", pciConfig = "pci_config" }
                }
                struct Out: Encodable {
                    let machine: String; let ramBytes: UInt64; let sections: [QEMUMigrationFile.Section]; let devices: [Device]
                    enum CodingKeys: String, CodingKey { case machine, ramBytes = "ram_bytes", sections, devices }
                }
                printJSON(Out(machine: f.machine, ramBytes: f.ramBytes, sections: f.sections, devices: f.devices.map {
                    Device(slot: $0.slot, bytes: $0.payload.count, passes: $0.passes, configStateBytes: $0.config.count,
                           pciConfig: $0.pciConfig.map { $0.map { String(format: "%02x", $0) }.joined() })
                }))
                if output == nil { return }
            }
            guard let output else { throw ToolError("give -o BLOB (or --json to list what the file holds)") }
            let d = try f.device(device)
            try FileIO.writeAll(output, d.payload)
            if let configState { try FileIO.writeAll(configState, d.config) }
            if output != "-" && !json { print("extracted \(d.payload.count) bytes of \(d.slot)'s device data to \(output)") }
        }
    }
}

struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check a blob's structure, checksums and contents: exit 0 only for a sound blob.",
        discussion: "Sound: every checksum matches, the end record is there, and every record holds what a device of the header's type could load (register values, GGTT entries, frames, workload). The first fault is reported with its byte offset (exit 1).\n  mdevsim verify vgpu.blob"
    )
    @Argument(help: "Blob file, or - for stdin.") var file: String
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        try runTool("verify") {
            let a = BlobAnalysis(try QEMUFraming.raw(try FileIO.readAll(file)))
            if json {
                struct Out: Encodable { let file: String; let sound: Bool; let bytes: Int; let records: Int; let faultOffset: Int?; let fault: String? }
                printJSON(Out(file: file, sound: a.sound, bytes: a.size, records: a.records.count, faultOffset: a.fault?.offset, fault: a.fault?.message))
            } else if a.sound {
                print("\(file): sound (\(a.size) bytes, \(a.records.count) records, every checksum matches, end record present, every record loadable)")
            }
            if let fault = a.fault {
                if !json { FileHandle.standardError.write(Data("mdevsim verify: \(file): \(fault)\n".utf8)) }
                throw ExitCode(1)
            }
        }
    }
}

struct Diff: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compare two blobs: header fields, registers by name, memory as page ranges.",
        discussion: "Exit 0 when they hold the same state, 1 when they differ.\n  mdevsim diff before.blob after.blob"
    )
    @Argument(help: "First blob.") var a: String
    @Argument(help: "Second blob.") var b: String
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        try runTool("diff") {
            let lines = Toolkit.Diff.lines(BlobAnalysis(try QEMUFraming.raw(try FileIO.readAll(a))),
                                           BlobAnalysis(try QEMUFraming.raw(try FileIO.readAll(b))))
            if json {
                struct Out: Encodable { let same: Bool; let differences: [String] }
                printJSON(Out(same: lines.isEmpty, differences: lines))
            } else {
                print(lines.isEmpty ? "\(a) and \(b) hold the same device state" : "--- \(a)\n+++ \(b)\n" + lines.joined(separator: "\n"))
            }
            if !lines.isEmpty { throw ExitCode(1) }
        }
    }
}

struct Replay: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Resume a device from a blob and print the resulting state_digest.",
        discussion: """
        The blob may be raw or in QEMU's VFIO framing (record --qemu-framing).
        A refused blob is not loaded: the reason is printed, the device is reset to RUNNING
        (the only way out of RESUMING) and the exit code is 1.
          mdevsim replay vgpu.blob /tmp/mdev/vfio/$UUID --chunk 4096
        """
    )
    @Argument(help: "Blob file, or - for stdin.") var file: String
    @Argument(help: "The device.") var device: String
    @Option(help: "Bytes per write.") var chunk = 1 << 20
    @Flag(name: .customLong("run"), help: "Set the device RUNNING afterwards.") var setRunning = false

    func validate() throws {
        guard chunk > 0 else { throw ValidationError("--chunk must be positive") }
    }

    func run() throws {
        try runTool("replay") {
            Interruption.install()
            let blob = try QEMUFraming.raw(try FileIO.readAll(file))
            let digest = try Replayer.replay(blob, to: try DeviceHandle(device), chunk: chunk, run: setRunning)
            // A real device has no state_digest: its driver accepting the stream is all there is to report.
            print(digest.isEmpty ? "loaded \(blob.count) bytes (the device has no state_digest)" : digest)
        }
    }
}

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

struct FSM: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fsm",
        abstract: "Draw the VFIO v2 migration state machine and the kernel's path between two states.",
        discussion: """
          mdevsim fsm --features stop_copy,p2p --from RUNNING --to STOP_COPY
          mdevsim fsm --format dot | dot -Tpng > fsm.png
          mdevsim fsm --format svg --from RESUMING --to PRE_COPY > fsm.svg
        """
    )
    @Option(help: "Feature flags: stop_copy, p2p, pre_copy (comma-separated).") var features = "stop_copy,p2p,pre_copy"
    @Option(help: "text, dot or svg.") var format = "text"
    @Option(help: "Start state of a path to show.") var from: String?
    @Option(help: "Target state of a path to show.") var to: String?

    func validate() throws {
        guard MigrationFeatures(names: features.split(separator: ",").map(String.init)) != nil else {
            throw ValidationError("--features must be stop_copy, optionally with p2p and/or pre_copy")
        }
        guard ["text", "dot", "svg"].contains(format) else { throw ValidationError("--format is text, dot or svg") }
        guard (from == nil) == (to == nil) else { throw ValidationError("give both --from and --to") }
        for s in [from, to].compactMap({ $0 }) where MigrationState(text: s) == nil {
            throw ValidationError("unknown state '\(s)'")
        }
    }

    func run() throws {
        let f = MigrationFeatures(names: features.split(separator: ",").map(String.init))!
        let path = from.flatMap { a in to.map { (MigrationState(text: a)!, MigrationState(text: $0)!) } }
        switch format {
        case "dot": print(FSMDiagram.dot(f, path: path), terminator: "")
        case "svg": print(FSMDiagram.svg(f, path: path), terminator: "")
        default: print(FSMDiagram.text(f, path: path), terminator: "")
        }
    }
}

struct Fault: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Add, list and clear fault rules of a running mount (DIR/.mdevsim/faults).",
        discussion: """
        A rule says where (an operation on a path glob: * within a component, ** across),
        what (errno=NAME, delay_ms=N or short_read=N) and when (every time, once=true,
        every=N, after=N, probability=P with seed=S, and/or within from_ms=A until_ms=B of
        being added). Device rules (device=UUID-glob) strike migration instead: arc=FROM>TO
        with errno=E or to_error=true, stream=flip_bit|truncate at=BYTE, resume=reject|corrupt,
        spike_mbps=N. Fired faults are logged in DIR/.mdevsim/log and the daemon's log;
        DIR/.mdevsim/surprise_remove takes 'device UUID' or 'parent BDF'.

          mdevsim fault add /tmp/mdev 'path=sys/**/create op=write errno=ENOSPC'
          mdevsim fault add /tmp/mdev 'name=slow path=vfio/*/migration/data
              op=read delay_ms=200 every=3'
          mdevsim fault add /tmp/mdev 'device=* arc=*>STOP_COPY errno=EIO once=true'
          mdevsim fault list /tmp/mdev
          mdevsim fault clear /tmp/mdev
        Operations: lookup getattr setattr open read write readdir readlink, or any.
        """,
        subcommands: [Add.self, List.self, Clear.self]
    )

    /// Runs `body` on the mount's control file, explaining a failure to reach it.
    static func withControl(_ command: String, _ dir: String, _ body: (String) throws -> Void) throws {
        try runTool(command) {
            do { try body(dir + "/.mdevsim/faults") } catch let e as FileIO.Failure {
                throw ToolError("cannot use \(e.path): \(e.text); is \(dir) an mdevsim mount?", exitCode: 2)
            }
        }
    }

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add a rule (key=value words, or a JSON object).",
            discussion: """
            File rules: path=GLOB (relative to the mount; * ? [..] within a component,
            ** across) and op=OP (lookup getattr setattr open read write readdir
            readlink, or any), with exactly one of
              errno=NAME     the operation fails (any errno name: EIO, ENOSPC, ...)
              delay_ms=N     it waits N ms (0...60000) first
              short_read=N   a read returns at most N bytes
            Device rules: device=UUID-GLOB (default *) with exactly one of
              arc=FROM>TO    the arc fails with errno=NAME (default EIO), or with
                             to_error=true drops the device into ERROR (* = any state)
              stream=flip_bit|truncate at=BYTE   the saving stream is damaged there
              resume=reject|corrupt              resume refuses, or loads then corrupts
              spike_mbps=N   entering PRE_COPY makes the guest dirty N MB/s
            When (at most one; default every time): once=true, every=N, after=N,
            probability=P (0...1, with seed=S); and/or from_ms=A until_ms=B after
            the rule was added. name=NAME names it (each name once); booleans are
            true or false. A rule may go on over lines inside its quotes.

              mdevsim fault add /tmp/mdev 'path=sys/**/create op=write
                  errno=ENOSPC once=true'
              mdevsim fault add /tmp/mdev 'name=slow path=vfio/*/migration/data
                  op=read delay_ms=200 every=3'
              mdevsim fault add /tmp/mdev 'path=sys/** op=lookup errno=EIO
                  probability=0.1 seed=7'
              mdevsim fault add /tmp/mdev 'device=* arc=RUNNING>STOP_COPY to_error=true'
              mdevsim fault add /tmp/mdev '{"path": "sys/**", "short_read": 1}'
            """)
        @Argument(help: "The mount.") var directory: String
        @Argument(help: "The rule.") var rule: String
        func validate() throws {
            do { _ = try FaultRule.parse(rule) } catch { throw ValidationError("\(error)") }
        }
        func run() throws {
            try Fault.withControl("fault add", directory) { try FileIO.writeText($0, rule) }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the rules with how often each matched and fired.")
        @Argument(help: "The mount.") var directory: String
        func run() throws {
            try Fault.withControl("fault list", directory) { print(try FileIO.readText($0), terminator: "") }
        }
    }

    struct Clear: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove every rule.")
        @Argument(help: "The mount.") var directory: String
        func run() throws {
            try Fault.withControl("fault clear", directory) { try FileIO.writeText($0, "clear") }
        }
    }
}

struct SnapshotCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "snapshot",
        abstract: "Record real sysfs subtrees (attributes with content and mode, links, directories) to a file.",
        discussion: """
        Unreadable attributes are noted, not fatal. Serve the file with mdevsim mount DIR --tree FILE,
        beside simulated parents (which must use other PCI addresses).
          mdevsim snapshot /sys/devices/pci0000:00 /sys/bus/pci/devices \\
              -o host-pci.json
          mdevsim snapshot --from-umockdev gpu.umockdev -o gpu.json
        """
    )
    @Argument(help: "Absolute paths to record.") var sources: [String] = []
    @Option(name: .shortAndLong, help: "Output file, or - for stdout.") var output: String
    @Option(help: "Convert a .umockdev recording (umockdev-record) instead of recording live paths.") var fromUmockdev: String?

    func run() throws {
        try runTool("snapshot") {
            if let fromUmockdev {
                guard let text = try? String(contentsOfFile: fromUmockdev, encoding: .utf8) else {
                    throw ToolError("cannot read \(fromUmockdev)", exitCode: 2)
                }
                do { try Snapshot.importUmockdev(text, source: fromUmockdev).write(to: output) } catch let e as SnapshotError {
                    throw ToolError("\(fromUmockdev): \(e)")
                }
                return
            }
            var all: Snapshot?
            for source in sources {
                do {
                    let s = try Snapshot.capture(source)
                    if all == nil { all = s } else { all!.entries += s.entries; all!.source += " " + source }
                } catch { throw ToolError("\(error)", exitCode: 2) }
            }
            guard let all else { throw ToolError("give at least one path to record", exitCode: 64) }
            try all.write(to: output)
            if output != "-" {
                let unreadable = all.entries.filter { $0.unreadable != nil }.count
                print("recorded \(all.entries.count) entries to \(output)\(unreadable > 0 ? " (\(unreadable) unreadable attributes noted)" : "")")
            }
        }
    }
}

struct VFIOInfo: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vfio-info",
        abstract: "Show a real VFIO device's migration features, state and stop-copy size (kernel v2 ioctls).",
        discussion: "  mdevsim vfio-info /dev/vfio/devices/vfio0"
    )
    @Argument(help: "A VFIO device node (vfio cdev).") var device: String
    @Flag(help: "Print JSON.") var json = false

    struct Info: Encodable {
        let device: String
        let features: String
        let state: String
        let stopCopySize: Int?
        enum CodingKeys: String, CodingKey { case device, features, state, stopCopySize = "stop_copy_size" }
    }

    func run() throws {
        try runTool("vfio-info") {
            let d: RealVFIODevice
            do { d = try RealVFIODevice(path: device) } catch { throw ToolError("\(error)") }
            let info = Info(device: device, features: "\(d.features)", state: "\(try d.currentState())", stopCopySize: try? d.stopCopyBytes())
            if json { printJSON(info); return }
            print("device:   \(info.device)")
            print("features: \(info.features)")
            print("state:    \(info.state)")
            if let size = info.stopCopySize { print("stop_copy_size: \(size)") }
        }
    }
}
