import Foundation

/// `mdevsim record`: saves a device to a blob through its files (v2 or v1, detected).
public enum Recorder {
    public struct Options {
        public var live = false
        public var resumeSource = false
        public var maxIterations = 8
        public var progress: ((String) -> Void)?
        public init() {}
    }

    public struct Result {
        public var blob: [UInt8] = []
        public var iterations: [Int] = []
    }

    public static func record(_ dev: DeviceHandle, _ o: Options) throws -> Result {
        do {
            let result = dev.migrationProtocol == .v2 ? try recordV2(dev, o) : try recordV1(dev, o)
            if o.resumeSource { try setRunning(dev) }
            return result
        } catch {
            // Whatever failed, the source goes back to running.
            try? setRunning(dev)
            throw error
        }
    }

    static func setRunning(_ dev: DeviceHandle) throws {
        if dev.migrationProtocol == .v2 { try dev.write("migration/state", "RUNNING") } else { try V1Client(dev).setState(0b001) }
    }

    static func drain(_ data: DataStream, into blob: inout [UInt8], limit: Int = .max, progress: ByteProgress? = nil) throws -> (bytes: Int, ended: Bool) {
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var total = 0
        while total < limit {
            try Interruption.check()
            switch try data.read(into: &buffer) {
            case .data(let n): blob += buffer[0..<n]; total += n; progress?.add(n)
            case .drained: return (total, false)
            case .end: return (total, true)
            }
        }
        return (total, false)
    }

    static func recordV2(_ dev: DeviceHandle, _ o: Options) throws -> Result {
        var r = Result()
        let features = try dev.read("migration/features")
        let live = o.live && features.contains("pre_copy")
        if o.live && !live { o.progress?("device has no pre_copy feature: stop-and-copy only") }
        try dev.write("migration/state", live ? "PRE_COPY" : "STOP_COPY")
        let data = try DataStream(dev, write: false)
        let bytes = ByteProgress(o.progress, label: "pre-copy")
        if live {
            for i in 1...max(1, o.maxIterations) {
                // One pass reads what was pending when it began, so a fast guest cannot keep it going forever.
                let pending = try dev.precopyInfo()
                bytes.label = "pre-copy iteration \(i)"
                let (n, _) = try drain(data, into: &r.blob, limit: max(1, pending.initial + pending.dirty), progress: bytes)
                r.iterations.append(n)
                let dirty = try dev.precopyInfo().dirty
                o.progress?("pre-copy iteration \(i): \(n) bytes, \(dirty) dirty bytes left")
                if dirty == 0 && i > 1 { break }
            }
            try dev.write("migration/state", "STOP_COPY")
        }
        bytes.label = "stop-and-copy"
        let (n, ended) = try drain(data, into: &r.blob, progress: bytes)
        guard ended else { throw ToolError("the device did not end its stream in STOP_COPY") }
        r.iterations.append(n)
        o.progress?("stop-and-copy: \(n) bytes, \(r.blob.count) in all")
        try dev.write("migration/state", "STOP")
        return r
    }

    static func recordV1(_ dev: DeviceHandle, _ o: Options) throws -> Result {
        var r = Result()
        let v1 = try V1Client(dev)
        if o.live {
            try v1.setState(0b011)
            for _ in 0..<max(1, o.maxIterations) {
                let n = try v1.saveIteration(into: &r.blob)
                r.iterations.append(n)
                if n == 0 { break }
            }
        }
        try v1.setState(0b010)
        r.iterations.append(try v1.saveIteration(into: &r.blob))
        try v1.setState(0b000)
        return r
    }
}

/// The v1 region driven with pread/pwrite, as a 5.8-era VMM would.
final class V1Client {
    let fd: Int32
    let dev: DeviceHandle

    init(_ dev: DeviceHandle) throws {
        self.dev = dev
        fd = open(dev.path + "/regions/migration", O_RDWR)
        guard fd >= 0 else { throw ToolError("cannot open \(dev.path)/regions/migration: \(String(cString: strerror(errno)))") }
    }
    deinit { close(fd) }

    func read(_ offset: Int, _ size: Int) throws -> UInt64 {
        var v: UInt64 = 0
        let n = withUnsafeMutableBytes(of: &v) { pread(fd, $0.baseAddress, size, off_t(offset)) }
        guard n == size else { throw failure("reading offset \(offset)") }
        return UInt64(littleEndian: v)
    }

    func write(_ offset: Int, _ size: Int, _ value: UInt64) throws {
        var v = value.littleEndian
        let n = withUnsafeBytes(of: &v) { pwrite(fd, $0.baseAddress, size, off_t(offset)) }
        guard n == size else { throw failure("writing offset \(offset)") }
    }

    func failure(_ what: String) -> ToolError {
        let reason = (try? dev.read("migration/error"))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
        return ToolError("v1 region: \(what) failed: \(String(cString: strerror(errno)))" + (reason.isEmpty ? "" : ": \(reason)"))
    }

    /// device_state read-modify-write: reserved bits kept.
    func setState(_ bits: UInt64) throws {
        let current = try read(0, 4)
        try write(0, 4, (current & ~0b111) | bits)
    }

    /// pending_bytes → data_offset → data_size → data, until pending_bytes is 0.
    func saveIteration(into blob: inout [UInt8]) throws -> Int {
        var total = 0
        while try read(8, 8) > 0 {
            let offset = Int(try read(16, 8)), size = Int(try read(24, 8))
            var chunk = [UInt8](repeating: 0, count: size)
            guard pread(fd, &chunk, size, off_t(offset)) == size else { throw failure("reading the data section") }
            blob += chunk
            total += size
        }
        return total
    }

    /// data_offset → data → data_size, per chunk.
    func resume(_ blob: [UInt8], chunk: Int) throws {
        var at = 0
        while at < blob.count {
            let n = min(chunk, blob.count - at, 1 << 20)
            let offset = Int(try read(16, 8))
            let written = blob[at..<at + n].withUnsafeBytes { pwrite(fd, $0.baseAddress, n, off_t(offset)) }
            guard written == n else { throw failure("writing the data section") }
            try write(24, 8, UInt64(n))
            at += n
        }
    }
}

/// `mdevsim replay`: resumes a device from a blob and reports its state_digest.
public enum Replayer {
    public static func replay(_ blob: [UInt8], to dev: DeviceHandle, chunk: Int, run: Bool) throws -> String {
        do {
            if dev.migrationProtocol == .v2 {
                try dev.write("migration/state", "RESUMING")
                let data = try DataStream(dev, write: true)
                var at = 0
                try blob.withUnsafeBytes { raw in
                    while at < raw.count {
                        try Interruption.check()
                        let n = min(chunk, raw.count - at)
                        try data.write(UnsafeRawBufferPointer(rebasing: raw[at..<at + n]))
                        at += n
                    }
                }
                try dev.write("migration/state", "STOP")
            } else {
                let v1 = try V1Client(dev)
                try v1.setState(0b100)
                try v1.resume(blob, chunk: chunk)
                try v1.setState(0b000)
            }
        } catch {
            // RESUMING can only be aborted by a reset; the blob was not loaded.
            let reason = ((try? dev.read("migration/error")) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
            try? dev.write("reset", "1")
            let detail = "\(error)".contains(reason) || reason.isEmpty ? "\(error)" : "\(error): \(reason)"
            throw ToolError("\(detail) (the blob was not loaded; the device was reset to RUNNING)")
        }
        let digest = dev.digest
        if run { try Recorder.setRunning(dev) }
        return digest
    }
}
