import ArgumentParser
import Foundation
import GPUModel
import Migration
import StateStream

/// Stream encode and decode in process, no FUSE: a V5_4's save (STOP_COPY
/// reads of its stream) and resume (RESUMING writes, then STOP), and the
/// parser alone (what inspect and verify do), each beside memcpy of the same
/// bytes in the same run. Checksums are included: every record carries one.
struct Codec: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "codec",
        abstract: "Stream encode/decode in process (MB/s) vs memcpy of the same bytes.",
        discussion: "Example: taskset -c 0 .build/release/mdevsim-bench codec --working-set-mib 256"
    )

    @Option(help: "Texture pool the guest fills, in MiB.") var workingSetMib = 256
    @Option(help: "Rounds; the median is reported.") var rounds = 3
    @Flag(help: "Print JSON.") var json = false

    func device(seed: UInt64) -> MigrationDevice {
        let geometry = VGPUGeometry(lowGMBytes: 128 << 20, highGMBytes: 512 << 20, vgpuID: 1)
        let gpu = VGPU(uuid: "codec-\(seed)", geometry: geometry,
                       workload: WorkloadConfig(seed: seed, dirtyRateMBps: 0, workingSetMiB: workingSetMib, clock: .stepped))
        return MigrationDevice(gpu: gpu, identity: StreamHeader(model: "mdevsim.dev/gvt-g", driverVersion: "1.2.0", parameters: [("type", "i915-GVTg_V5_4")]))
    }

    func run() throws {
        var encodes: [Double] = [], decodes: [Double] = [], parses: [Double] = [], copies: [Double] = []
        var size = 0
        let chunk = 1 << 20
        for round in 0..<rounds {
            let src = device(seed: UInt64(round + 1))
            src.gpu.fillWorkingSet()
            // Touched before timing (1s, not lazily mapped zero pages), as the memcpy destination is.
            var blob = [UInt8](repeating: 1, count: src.stopCopySize + (64 << 20))
            var n = 0
            var t0 = Date()
            try src.setState(.stopCopy)
            let session = src.currentSession
            blob.withUnsafeMutableBytes { out in
                while true {
                    var got = 0
                    try? src.read(session: session, offset: n, size: chunk) { bytes in
                        UnsafeMutableRawBufferPointer(rebasing: out[n..<n + bytes.count]).copyMemory(from: bytes)
                        got = bytes.count
                    }
                    if got == 0 { break }
                    n += got
                }
            }
            encodes.append(Double(n) / Date().timeIntervalSince(t0) / 1e6)
            size = n
            blob.removeSubrange(n...)

            let dst = device(seed: 99)
            t0 = Date()
            try dst.setState(.resuming)
            let resume = dst.currentSession
            try blob.withUnsafeBytes { raw in
                var at = 0
                while at < raw.count {
                    let k = min(chunk, raw.count - at)
                    _ = try dst.write(session: resume, bytes: UnsafeRawBufferPointer(rebasing: raw[at..<at + k]))
                    at += k
                }
            }
            try dst.setState(.stop)
            decodes.append(Double(n) / Date().timeIntervalSince(t0) / 1e6)
            guard dst.gpu.stateDigest == src.gpu.stateDigest else { throw ValidationError("the decoded device differs from the encoded one") }

            t0 = Date()
            var records = 0
            try StreamParser.scan(blob) { _ in records += 1 }
            parses.append(Double(n) / Date().timeIntervalSince(t0) / 1e6)

            // memcpy of the same bytes, in the same chunks, into a buffer of the same size.
            var copy = [UInt8](repeating: 1, count: n)
            t0 = Date()
            copy.withUnsafeMutableBytes { out in
                blob.withUnsafeBytes { input in
                    var at = 0
                    while at < n {
                        let k = min(chunk, n - at)
                        memcpy(out.baseAddress! + at, input.baseAddress! + at, k)
                        at += k
                    }
                }
            }
            copies.append(Double(n) / Date().timeIntervalSince(t0) / 1e6)
            guard copy == blob else { throw ValidationError("memcpy check failed") }
        }
        func median(_ v: [Double]) -> Double { v.sorted()[v.count / 2] }
        let (enc, dec, parse, mem) = (median(encodes), median(decodes), median(parses), median(copies))
        if json {
            print(#"{"benchmark":"stream codec in process","stream_bytes":\#(size),"rounds":\#(rounds),"encode_mbps":\#(Int(enc)),"decode_mbps":\#(Int(dec)),"parse_mbps":\#(Int(parse)),"memcpy_mbps":\#(Int(mem)),"encode_ratio":\#(String(format: "%.3f", enc / mem)),"decode_ratio":\#(String(format: "%.3f", dec / mem)),"parse_ratio":\#(String(format: "%.3f", parse / mem))}"#)
        } else {
            print("stream of a V5_4 with \(workingSetMib) MiB written: \(size / 1_000_000) MB, median of \(rounds) rounds, 1 MiB chunks")
            print(String(format: "  encode (save, checksums):   %8.0f MB/s   %.3f× memcpy", enc, enc / mem))
            print(String(format: "  decode (resume, checksums): %8.0f MB/s   %.3f× memcpy", dec, dec / mem))
            print(String(format: "  parse  (inspect/verify):    %8.0f MB/s   %.3f× memcpy", parse, parse / mem))
            print(String(format: "  memcpy of the same bytes:   %8.0f MB/s", mem))
        }
    }
}
