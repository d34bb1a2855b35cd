import GPUModel
import Migration
import StateStream
import Testing
#if canImport(Glibc)
import Glibc
#endif

let geometry = VGPUGeometry(lowGMBytes: 128 << 20, highGMBytes: 512 << 20, vgpuID: 1)
let identity = StreamHeader(model: "mdevsim.dev/gvt-g", driverVersion: "1.2.0",
                            parameters: [("type", "i915-GVTg_V5_4"), ("aggregation", "1")])

func makeDevice(seed: UInt64 = 9, identity: StreamHeader = identity, features: MigrationFeatures = .all,
                policy: ResumeFailurePolicy = .keep) -> MigrationDevice {
    let gpu = VGPU(uuid: "dev-\(seed)", geometry: geometry,
                   workload: WorkloadConfig(seed: seed, dirtyRateMBps: 8, workingSetMiB: 2, clock: .stepped))
    return MigrationDevice(gpu: gpu, features: features, identity: identity, resumeFailure: policy)
}

/// Reads the saving stream until it has nothing more for now (ENOMSG) or ends.
func drain(_ dev: MigrationDevice, _ out: inout [UInt8], chunk: Int = 100_000) throws(MigrationError) -> Bool {
    while true {
        do throws(MigrationError) {
            let bytes = try dev.read(session: dev.currentSession, offset: out.count, size: chunk)
            if bytes.isEmpty { return true }
            out += bytes
        } catch where error.errno == ENOMSG {
            return false
        }
    }
}

func resume(_ dev: MigrationDevice, _ blob: [UInt8], chunks: [Int] = [1, 7, 4096, 65_537]) throws(MigrationError) {
    try dev.setState(.resuming)
    var at = 0, i = 0
    while at < blob.count {
        let n = min(chunks[i % chunks.count], blob.count - at)
        let piece = Array(blob[at..<at + n])
        var result: Result<Int, MigrationError> = .success(0)
        piece.withUnsafeBytes { raw in
            do throws(MigrationError) { result = .success(try dev.write(session: dev.currentSession, bytes: raw)) } catch { result = .failure(error) }
        }
        _ = try result.get()
        at += n
        i += 1
    }
    try dev.setState(.stop)
}

/// A live save of `src`: pre-copy iterations while its workload runs, then stop-and-copy.
func liveSave(_ src: MigrationDevice, iterations: Int = 3) throws -> [UInt8] {
    try src.gpu.step(100)
    var blob: [UInt8] = []
    #expect(try src.setState(.preCopy) == [.preCopy])
    let info = try src.precopyInfo()
    #expect(info.initialBytes > 0)
    #expect(try drain(src, &blob) == false)
    #expect(try src.precopyInfo().initialBytes == 0)
    for _ in 0..<iterations {
        try src.gpu.step(20)                       // the guest keeps dirtying memory
        #expect(try src.precopyInfo().dirtyBytes > 0)
        #expect(try drain(src, &blob) == false)
        #expect(try src.precopyInfo().dirtyBytes == 0)
    }
    try src.gpu.step(5)
    try src.setState(.stopCopy)
    #expect(src.gpu.isRunning == false)
    #expect(try drain(src, &blob) == true)
    #expect(try src.read(session: src.currentSession, offset: blob.count, size: 10).isEmpty)   // EOF stays EOF
    return blob
}

@Suite("save and resume through the v2 protocol")
struct SaveResumeTests {
    @Test("save after pre-copy iterations with the workload running; resume elsewhere: identical state_digest")
    func liveMigration() throws {
        let src = makeDevice(seed: 9), dst = makeDevice(seed: 1234)
        let blob = try liveSave(src)
        #expect(src.gpu.stateDigest != dst.gpu.stateDigest)
        try resume(dst, blob)
        #expect(dst.state == .stop)
        #expect(dst.gpu.stateDigest == src.gpu.stateDigest)
        // Both continue identically from there.
        try src.setState(.running)
        try dst.setState(.running)
        try src.gpu.step(50)
        try dst.gpu.step(50)
        #expect(dst.gpu.stateDigest == src.gpu.stateDigest)
        // The stream is sound.
        let events = try StreamParser.parse(blob)
        if case .header(let h, _) = events.first! { #expect(h == identity) } else { Issue.record("no header first") }
    }

    @Test("stop-and-copy without pre-copy (STOP → STOP_COPY) also yields the same state")
    func stopAndCopy() throws {
        let src = makeDevice(seed: 5), dst = makeDevice(seed: 6)
        try src.gpu.step(150)
        #expect(try src.setState(.stopCopy) == [.runningP2P, .stop, .stopCopy])
        var blob: [UInt8] = []
        #expect(try drain(src, &blob, chunk: 333) == true)
        try resume(dst, blob, chunks: [blob.count])
        #expect(dst.gpu.stateDigest == src.gpu.stateDigest)
        #expect(src.stopCopySize > 0)
    }

    @Test("the saving stream: ENOMSG when pre-copy is drained, stream order enforced, old handles refused")
    func dataSemantics() throws {
        let src = makeDevice()
        try src.gpu.step(10)
        try src.setState(.preCopy)
        let session = src.currentSession
        var blob: [UInt8] = []
        #expect(try drain(src, &blob) == false)
        #expect(throws: MigrationError(ENOMSG, "no pre-copy data for now; read again later or move to STOP_COPY")) {
            _ = try src.read(session: session, offset: blob.count, size: 10)
        }
        #expect((try? src.read(session: session, offset: 0, size: 10)) == nil)              // ESPIPE: not in order
        try src.setState(.running)                                                        // PRE_COPY → RUNNING ends the session
        do {
            _ = try src.read(session: session, offset: blob.count, size: 10)
            Issue.record("read on an ended session")
        } catch { #expect(error.errno == EBADF) }
        try src.setState(.preCopy)
        #expect(src.currentSession != session)
        #expect(throws: MigrationError.self) { try src.setState(.running); _ = try src.precopyInfo() }
        #expect(src.lastError.contains("precopy_info is valid only in PRE_COPY"))
    }

    @Test("STOP_COPY → PRE_COPY is EINVAL and leaves the state; ERROR cannot be requested")
    func refusedArcs() throws {
        let dev = makeDevice()
        try dev.setState(.stopCopy)
        #expect(throws: MigrationError.self) { try dev.setState(.preCopy) }
        #expect(dev.state == .stopCopy)
        #expect(dev.lastError.contains("STOP_COPY cannot return to pre-copy"))
        #expect(throws: MigrationError.self) { try dev.setState(.error) }
        let noPre = makeDevice(features: [.stopCopy])
        #expect(throws: MigrationError.self) { try noPre.setState(.preCopy) }
        #expect(try noPre.setState(.stopCopy) == [.stop, .stopCopy])
    }

    @Test("reset returns to RUNNING and ends every session")
    func reset() throws {
        let dev = makeDevice()
        try dev.setState(.resuming)
        let session = dev.currentSession
        dev.reset()
        #expect(dev.state == .running)
        #expect(dev.gpu.isRunning)
        #expect(dev.currentSession == nil)
        do {
            _ = try [UInt8](repeating: 0, count: 4).withUnsafeBytes { try dev.write(session: session, bytes: $0) }
            Issue.record("write after reset")
        } catch let e as MigrationError { #expect(e.errno == EBADF) }
    }
}

@Suite("fail early, fail clearly: refused streams leave the destination untouched")
struct FailEarlyTests {
    func blob(from src: MigrationDevice) throws -> [UInt8] {
        try src.gpu.step(60)
        try src.setState(.stopCopy)
        var out: [UInt8] = []
        _ = try drain(src, &out)
        return out
    }

    func expectRefused(_ blob: [UInt8], _ message: String, destination: MigrationDevice = makeDevice(seed: 77), atWrite: Bool = true) throws {
        let before = destination.gpu.stateDigest
        do {
            try resume(destination, blob, chunks: [blob.count])
            Issue.record("accepted a stream that should be refused (\(message))")
        } catch {
            #expect(error.errno == EINVAL)
            #expect(error.message.contains(message), "\(error.message)")
            #expect(destination.lastError.contains(message))
        }
        #expect(destination.state == .resuming)
        #expect(destination.gpu.stateDigest == before)
        // A refused stream is refused at its first write, before any state changes.
        if atWrite { #expect(throws: MigrationError.self) { try destination.setState(.stop) } }
    }

    @Test("another device model")
    func otherModel() throws {
        var other = identity
        other.model = "example.com/other-gpu"
        try expectRefused(try blob(from: makeDevice(identity: other)), "device model 'example.com/other-gpu' is not the destination's 'mdevsim.dev/gvt-g'")
    }

    @Test("another driver major version, and a minor version newer than the destination")
    func versions() throws {
        var major = identity
        major.driverVersion = "2.0.0"
        try expectRefused(try blob(from: makeDevice(identity: major)), "driver version 2.0.0 cannot migrate to 1.2.0: major versions differ")
        var minor = identity
        minor.driverVersion = "1.3.0"
        try expectRefused(try blob(from: makeDevice(identity: minor)), "driver version 1.3.0 is newer than the destination's 1.2.0")
        // Older minor and any bugfix are accepted.
        var older = identity
        older.driverVersion = "1.1.7"
        let src = makeDevice(identity: older), dst = makeDevice(seed: 3)
        try resume(dst, try blob(from: src), chunks: [100])
        #expect(dst.gpu.stateDigest == src.gpu.stateDigest)
    }

    @Test("a parameter value the destination does not support, and an unknown parameter")
    func parameters() throws {
        var aggregated = identity
        aggregated.parameters = [("type", "i915-GVTg_V5_4"), ("aggregation", "2")]
        try expectRefused(try blob(from: makeDevice(identity: aggregated)), "migration parameter aggregation=2 is not supported by the destination (it has aggregation=1)")
        var extra = identity
        extra.parameters.append(("compression", "on"))
        try expectRefused(try blob(from: makeDevice(identity: extra)), "migration parameter 'compression' is unknown to the destination")
    }

    @Test("a bad checksum names the record and the byte offset")
    func badChecksum() throws {
        var b = try blob(from: makeDevice())
        b[b.count / 2] ^= 0x40
        try expectRefused(b, "checksum mismatch")
    }

    @Test("a truncated stream is refused at RESUMING → STOP, and the destination keeps its state")
    func truncated() throws {
        let b = Array(try blob(from: makeDevice()).dropLast(20))
        let dst = makeDevice(seed: 77)
        let before = dst.gpu.stateDigest
        try dst.setState(.resuming)
        _ = try b.withUnsafeBytes { try dst.write(session: dst.currentSession, bytes: $0) }
        do {
            try dst.setState(.stop)
            Issue.record("a truncated stream completed")
        } catch {
            #expect(error.message.contains("stream is truncated"), "\(error.message)")
        }
        #expect(dst.state == .resuming)
        #expect(dst.gpu.stateDigest == before)
    }

    @Test("with the error policy a failed resume drops the device into ERROR; only reset leaves it")
    func errorPolicy() throws {
        let b = Array(try blob(from: makeDevice()).dropLast(20))
        let dst = makeDevice(seed: 77, policy: .error)
        try dst.setState(.resuming)
        _ = try b.withUnsafeBytes { try dst.write(session: dst.currentSession, bytes: $0) }
        #expect(throws: MigrationError.self) { try dst.setState(.stop) }
        #expect(dst.state == .error)
        #expect(throws: MigrationError.self) { try dst.setState(.running) }
        dst.reset()
        #expect(dst.state == .running)
    }

    @Test("not a stream at all, an unknown format major, a record claiming 4 GiB")
    func malformed() throws {
        try expectRefused(Array("hello, this is not a device state stream at all".utf8), "bad magic")
        var header = StreamWriter.encodeHeader(identity)
        header[8] = 9
        try expectRefused(header, "stream format 9.\(StreamFormat.minor) is not readable")
        var w = StreamWriter()
        w.header(identity)
        var huge = w.take()
        huge += [1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]
        try expectRefused(huge, "record claims 4294967295 bytes")
    }
}
