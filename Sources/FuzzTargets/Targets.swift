import Faults
import Foundation
import GPUModel
import MdevCore
import MdevSysfs
import Migration
import Simulator
import StateStream
import Toolkit
import VirtualFS

#if canImport(Glibc)
import Glibc
#endif

/// The fuzz targets: each takes one input and checks its invariants inside.
/// `mdevsim-fuzz` runs them under libFuzzer (scripts/fuzz.sh); the test
/// suite runs their seed corpora and regressions (Tests/FuzzTests).
public enum FuzzTarget: String, CaseIterable, Sendable {
    /// The stream reader: scan (inspect, verify), incremental parsing and resume.
    case stream
    /// The v1 migration region: reads and writes at any offset and width.
    case v1region = "v1-region"
    /// The v2 state file and data handle: any sequence of states, reads, writes.
    case v2state = "v2-state"
    /// Attribute writes: create, remove, aggregation, reset, state, workload, fault rules.
    case attributes
    /// Host config (YAML/JSON) parsing and building a host from it.
    case config
    /// Fault plan and fault rule parsing.
    case faultplan = "fault-plan"
    /// Structure-aware: edits to a sound stream's records, resealed (StreamRecordsTarget).
    case streamRecords = "stream-records"
    /// Whole QEMU migration files: the section walk of extract (QEMUFileTarget).
    case qemuFile = "qemu-file"

    public func run(_ data: UnsafeRawBufferPointer) {
        switch self {
        case .stream: StreamTarget.run(data)
        case .v1region: RegionTarget.runV1(data)
        case .v2state: RegionTarget.runV2(data)
        case .attributes: AttributeTarget.run(data)
        case .config: TextTargets.config(data)
        case .faultplan: TextTargets.faultPlan(data)
        case .streamRecords: StreamRecordsTarget.run(data)
        case .qemuFile: QEMUFileTarget.run(data)
        }
    }

    public func run(_ bytes: [UInt8]) { bytes.withUnsafeBytes { run($0) } }
}

/// A small vGPU for the targets: little memory so each input runs fast.
enum FuzzDevice {
    static let identity = StreamHeader(model: MdevType.deviceModel, driverVersion: "1.2.0",
                                       parameters: [("type", "fuzz"), ("aggregation", "1"), ("low_gm_mb", "2"), ("high_gm_mb", "2"),
                                                    ("fences", "4"), ("resolution", "64x32")])

    static func make(seed: UInt64 = 1, policy: ResumeFailurePolicy = .keep) -> MigrationDevice {
        let geometry = VGPUGeometry(lowGMBytes: 2 << 20, highGMBytes: 2 << 20, fences: 4, width: 64, height: 32, vgpuID: 1,
                                    apertureBytes: ContentCheck.aperture(lowGMBytes: 2 << 20))
        let gpu = VGPU(uuid: "fuzz-\(seed)", geometry: geometry,
                       workload: WorkloadConfig(seed: seed, dirtyRateMBps: 1, workingSetMiB: 1, clock: .stepped))
        return MigrationDevice(gpu: gpu, identity: identity, resumeFailure: policy)
    }

    /// RESUMING, `bytes` written in `chunk`-sized writes, then STOP.
    static func resume(_ device: MigrationDevice, _ bytes: [UInt8], chunk: Int) throws(MigrationError) {
        try device.setState(.resuming)
        let session = device.currentSession
        var written = 0
        while written < bytes.count {
            let n = min(chunk, bytes.count - written)
            var result: Result<Int, MigrationError> = .success(0)
            bytes.withUnsafeBytes { raw in
                do throws(MigrationError) {
                    result = .success(try device.write(session: session, bytes: UnsafeRawBufferPointer(rebasing: raw[written..<written + n])))
                } catch { result = .failure(error) }
            }
            _ = try result.get()
            written += n
        }
        try device.setState(.stop)
    }

    /// The whole saving stream of a device in STOP_COPY.
    static func save(_ d: MigrationDevice) throws(MigrationError) -> [UInt8] {
        var blob: [UInt8] = []
        while true {
            let chunk = try d.read(session: d.currentSession, offset: blob.count, size: 1 << 16)
            if chunk.isEmpty { return blob }
            blob += chunk
        }
    }

    /// A whole stop-and-copy stream of a device that ran `ticks`.
    public static func savedBlob(seed: UInt64, ticks: UInt64) -> [UInt8] {
        let d = make(seed: seed)
        try? d.gpu.step(ticks)
        do throws(MigrationError) {
            try d.setState(.stopCopy)
            return try save(d)
        } catch { fatalError("saving a fresh device failed: \(error)") }
    }
}

/// Seeds for each target's corpus, made from the code so they always match the format.
public enum FuzzSeeds {
    public static func seeds(for target: FuzzTarget) -> [(name: String, bytes: [UInt8])] {
        switch target {
        case .stream:
            return [("saved-0-ticks", FuzzDevice.savedBlob(seed: 1, ticks: 0)),
                    ("saved-5-ticks", FuzzDevice.savedBlob(seed: 2, ticks: 5))]
        case .v1region:
            // Set SAVING, read pending_bytes, data_offset, data_size; then RESUMING.
            return [("save-sequence", [1, 0x00, 0x00, 4, 2, 0, 0, 0,  0, 0x08, 0x00, 8,  0, 0x10, 0x00, 8,  0, 0x18, 0x00, 8,  1, 0x00, 0x00, 4, 4, 0, 0, 0]),
                    ("resume-sequence", [1, 0x00, 0x00, 4, 0, 0, 0, 0,  1, 0x00, 0x00, 4, 4, 0, 0, 0,  1, 0x18, 0x00, 8, 16, 0, 0, 0, 0, 0, 0, 0])]
        case .v2state:
            return [("precopy-stopcopy", [0x06, 0x10, 0x10, 0x03, 0x10, 0x10, 0x01]),
                    ("resume", [0x01, 0x04, 0x20, 0x01, 0x02])]
        case .attributes:
            return [("create-remove", Array("0\n1\n83b8f4f2-509f-382f-3c1e-e6bfe0fa1001\n".utf8)),
                    ("fault-rule", Array("5\npath=sys/* errno=EIO once=true\n".utf8))]
        case .config:
            return [("one-parent", Array("""
                parents:
                  - address: "0000:00:02.0"
                    types:
                      - {name: V5_4, low_gm_mb: 128, high_gm_mb: 512, fences: 4, weight: 4, resolution: 1920x1200, instances: 2}
                """.utf8))]
        case .qemuFile:
            return [("q35-vgpu", QEMUFileTarget.seed)]
        case .streamRecords:
            // Edit programs (kind, record, offset, operand): the sound stream itself, a front
            // buffer of 2, a register value wider than its register, a dropped workload record.
            return [("unedited", []),
                    ("front-buffer-2", [0, 0xff, 24, 0, 2, 0, 0, 0]),
                    ("wide-register", [2, 1, 5, 0, 0, 3, 0, 0]),
                    ("drop-record", [5, 3, 0, 0, 0, 0, 0, 0])]
        case .faultplan:
            return [("two-rules", Array("""
                rules:
                  - {path: "sys/class/*/create", op: write, errno: EIO, once: true}
                  - {device: "*", arc: "*>STOP_COPY", errno: EIO}
                """.utf8))]
        }
    }
}

enum StreamTarget {
    static func run(_ data: UnsafeRawBufferPointer) {
        let bytes = Array(data)
        // scan (inspect and verify read this way) and the incremental parser must agree.
        var scanned = 0
        let whole: StreamError?
        do throws(StreamError) { try StreamParser.scan(bytes) { _ in scanned += 1 }; whole = nil } catch { whole = error }
        var p = StreamParser()
        var fed = 0
        var incremental: StreamError?
        var at = 0
        var chunk = 1 + (bytes.first.map(Int.init) ?? 0) % 61
        do throws(StreamError) {
            while at < bytes.count {
                let n = min(chunk, bytes.count - at)
                fed += try p.feed(Array(bytes[at..<at + n])).count
                at += n
                chunk = chunk * 3 % 4093 + 1
            }
            try p.finish()
        } catch { incremental = error }
        invariant((whole == nil) == (incremental == nil),
                  "scan says \(whole.map { "\($0)" } ?? "valid"), incremental parsing says \(incremental.map { "\($0)" } ?? "valid")")
        if whole == nil { invariant(scanned == fed, "scan saw \(scanned) events, incremental parsing \(fed)") }
        // inspect's analysis never traps.
        _ = BlobAnalysis(bytes)

        // Resume: a refused stream leaves the device as it was.
        let device = FuzzDevice.make(seed: 3)
        try? device.gpu.step(2)
        let before = device.gpu.stateDigest
        do throws(MigrationError) {
            try FuzzDevice.resume(device, bytes, chunk: 4096)
            invariant(whole == nil, "resume accepted a stream the parser refuses: \(whole.map { "\($0)" } ?? "")")
        } catch {
            invariant(device.state == .resuming, "a refused resume left the device in \(device.state), not RESUMING")
            invariant(device.gpu.stateDigest == before, "a refused resume changed the device's state")
        }
    }
}

enum RegionTarget {
    /// Ops of 4 + width bytes: kind (0 read, 1 write, 2 reset, 3 step), offset (u16, scaled), width.
    static func runV1(_ data: UnsafeRawBufferPointer) {
        var input = FuzzInput(data)
        let device = FuzzDevice.make(seed: 5)
        let region = V1Region(device: device)
        var ops = 0
        while !input.isEmpty && ops < 256 {
            ops += 1
            let kind = input.u8() % 4
            let rawOffset = Int(input.u16())
            // Mostly the header, sometimes the data window or beyond the region.
            let offset = rawOffset < 0xC000 ? rawOffset % 0x40 : (rawOffset - 0xC000) * 97
            let width = [1, 2, 4, 8, 16, 4096][Int(input.u8()) % 6]
            switch kind {
            case 0:
                do throws(MigrationError) {
                    let got = try region.read(offset: offset, size: width)
                    invariant(got.count <= width, "read of \(width) bytes returned \(got.count)")
                } catch { invariant(error.errno != 0, "a refused read has errno 0") }
            case 1:
                let value = input.take(width)
                do throws(MigrationError) { try region.write(offset: offset, bytes: value) } catch {
                    invariant(error.errno != 0, "a refused write has errno 0")
                }
            case 2:
                device.reset()
            default:
                try? device.gpu.step(1)
            }
            // device_state always reads as the bits of the device's state.
            if let raw = try? region.read(offset: 0, size: 4), raw.count == 4 {
                let bits = UInt32(raw[0]) | UInt32(raw[1]) << 8 | UInt32(raw[2]) << 16 | UInt32(raw[3]) << 24
                invariant(bits & 7 == V1Region.bits(device.state), "device_state reads \(bits & 7) in \(device.state)")
            }
        }
    }

    /// Ops: a state (low 3 bits) to set, or 0x10 read / 0x20 write / 0x30 precopy_info / 0x40 reset / 0x50 step.
    static func runV2(_ data: UnsafeRawBufferPointer) {
        var input = FuzzInput(data)
        let device = FuzzDevice.make(seed: 7, policy: input.u8() & 1 == 0 ? .keep : .error)
        var handle: UInt64? = nil
        var offset = 0
        var ops = 0
        while !input.isEmpty && ops < 256 {
            ops += 1
            let op = input.u8()
            switch op >> 4 {
            case 0:
                guard let target = MigrationState(rawValue: UInt32(op & 7)) else { continue }
                let before = device.state
                do throws(MigrationError) {
                    try device.setState(target)
                    invariant(device.state == target, "setState(\(target)) succeeded but the device is \(device.state)")
                    if device.currentSession != handle { handle = device.currentSession; offset = 0 }
                } catch {
                    invariant(device.state == before || device.state == .error || before == .resuming || before.isSaving,
                              "a refused move from \(before) to \(target) left \(device.state)")
                    invariant(!error.message.isEmpty, "a refusal without a reason")
                }
            case 1:
                let size = 1 + Int(input.u16()) % 65536
                do throws(MigrationError) {
                    let got = try device.read(session: handle, offset: offset, size: size)
                    invariant(got.count <= size, "data read returned more than asked")
                    invariant(device.state.isSaving, "data was readable in \(device.state)")
                    offset += got.count
                } catch { invariant(error.errno != 0, "a refused read has errno 0") }
            case 2:
                let bytes = input.take(1 + Int(input.u8()))
                _ = bytes.withUnsafeBytes { raw in try? device.write(session: handle, bytes: raw) }
            case 3:
                let info = try? device.precopyInfo()
                invariant((info != nil) == (device.state == .preCopy || device.state == .preCopyP2P),
                          "precopy_info \(info == nil ? "refused" : "answered") in \(device.state)")
            case 4:
                device.reset()
                invariant(device.state == .running, "reset left \(device.state)")
            default:
                if device.state.isRunning { try? device.gpu.step(1) }
            }
        }
    }
}

enum AttributeTarget {

    /// Ops: a file (index into the writable files of the host), then a value (length-prefixed bytes).
    static func run(_ data: UnsafeRawBufferPointer) {
        var input = FuzzInput(data)
        guard let host = try? SimulatedHost(config: .builtIn) else { fatalError("the built-in host does not build") }
        var ops = 0
        while !input.isEmpty && ops < 32 {
            ops += 1
            let choice = Int(input.u8())
            let value = input.take(Int(input.u8()))
            let files = writableFiles(host.tree)
            if choice % 8 == 5 {
                // A fault rule in the `fault add` syntax.
                if let rule = try? FaultRule.parse(String(decoding: value, as: UTF8.self)) { try? host.faults.add(rule) }
                continue
            }
            guard !files.isEmpty else { continue }
            _ = try? host.tree.writeFile(files[choice % files.count], value)
            host.faults.clear()
            check(host)
        }
    }

    static func writableFiles(_ tree: Tree) -> [String] {
        var out: [String] = []
        func walk(_ ino: Inode, _ path: String, depth: Int) {
            guard depth < 12, let entries = try? tree.entries(of: ino) else { return }
            for (name, node) in entries where name != "." && name != ".." {
                let p = path.isEmpty ? name : path + "/" + name
                switch node.kind {
                case .directory: walk(node.ino, p, depth: depth + 1)
                case .file: if node.permissions & 0o200 != 0 { out.append(p) }
                case .symlink: break
                }
            }
        }
        walk(1, "", depth: 0)
        return out.sorted()
    }

    /// The bus and the tree agree on which devices exist and on what each pool
    /// has left, and no pool is overdrawn.
    static func check(_ host: SimulatedHost) {
        let listed = (try? host.tree.resolve("sys/bus/mdev/devices")).flatMap { try? host.tree.entries(of: $0.ino) }?
            .filter { $0.name != "." && $0.name != ".." }.count ?? -1
        invariant(listed == host.bus.devices.count, "sys/bus/mdev/devices lists \(listed), the bus has \(host.bus.devices.count)")
        // An unregistered parent (its PCI remove or a surprise removal) offers no types.
        for parent in host.bus.parents where host.bus.isRegistered(parent.name) {
            for type in parent.types {
                // The real path: Tree.resolve follows no links, and sys/class entries are links.
                let path = SysfsView.parentPath(parent) + "/mdev_supported_types/\(type.id)/available_instances"
                let text = (try? host.tree.readFile(path, size: 64)).map { String(decoding: $0, as: UTF8.self) }
                let n = text.flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
                invariant(n != nil, "\(path) reads '\(text ?? "nothing")'")
                invariant(n! >= 0, "available_instances of \(type.id) is \(n!)")
                invariant(n == host.bus.availableInstances(of: type), "\(path) reads \(n!), the bus says \(host.bus.availableInstances(of: type))")
            }
        }
    }
}

enum TextTargets {
    static func config(_ data: UnsafeRawBufferPointer) {
        let text = String(decoding: data, as: UTF8.self)
        guard let config = try? HostConfig.parse(text, source: "fuzz") else { return }
        // A config that validates must build, and build quickly when small.
        let types = config.parents.reduce(0) { $0 + $1.types.count }
        guard config.parents.count <= 8, types <= 32 else { return }
        do { _ = try SimulatedHost(config: config) } catch {
            invariant(false, "a validated config failed to build: \(error)")
        }
    }

    static func faultPlan(_ data: UnsafeRawBufferPointer) {
        let text = String(decoding: data, as: UTF8.self)
        if let plan = try? FaultPlan.parse(text, source: "fuzz") {
            let injector = FaultInjector()
            for rule in plan.rules { try? injector.add(rule) }
        }
        for line in text.split(separator: "\n").prefix(64) { _ = try? FaultRule.parse(String(line)) }
    }
}
