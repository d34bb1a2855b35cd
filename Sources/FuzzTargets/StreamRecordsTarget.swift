import GPUModel
import Migration
import StateStream
import Toolkit

/// Structure-aware fuzzing of device-state streams: the input is a program of
/// edits to the records of a sound saved stream, which is then sealed again
/// with fresh checksums, so every input reaches what lies behind them (the
/// byte mutators of `stream` never produce a valid CRC-32C).
///
/// Invariants: the verdict of verify/inspect (`BlobAnalysis.sound`) equals
/// resume's (but for the PCI ids, which verify takes from the stream); a refused stream leaves the device as it was; an accepted one
/// gives a device that runs its workload and saves a sound stream again.
enum StreamRecordsTarget {
    /// The stream every input edits: a device that ran a few ticks.
    static let base: StreamRecords = {
        guard let records = try? StreamRecords(parsing: FuzzDevice.savedBlob(seed: 2, ticks: 5)) else {
            fatalError("a fresh device's saved stream does not parse")
        }
        return records
    }()

    /// Ops of 8 bytes: kind, record, offset (u16), then a u32 operand.
    static func edit(_ data: UnsafeRawBufferPointer) -> StreamRecords {
        var input = FuzzInput(data)
        var s = base
        var ops = 0
        while !input.isEmpty && ops < 64 {
            ops += 1
            let kind = input.u8(), which = Int(input.u8()), offset = Int(input.u16()), operand = input.u32()
            guard !s.records.isEmpty else { break }
            let i = which % s.records.count
            var payload = s.records[i].payload
            switch kind % 10 {
            case 0 where !payload.isEmpty: payload[offset % payload.count] = UInt8(truncatingIfNeeded: operand)
            case 1 where !payload.isEmpty: payload[offset % payload.count] ^= UInt8(1 << (operand % 8))
            case 2 where payload.count >= 8:
                // An edge value over a 64-bit field at an 4-aligned offset (values, PTEs, frames).
                let at = (offset % (payload.count - 7)) & ~3
                let edges: [UInt64] = [0, 1, 2, 0xffff_ffff, 1 << 32, .max, .max - 5, 4096, 0x7_ffff_ffff << 12 | 1, UInt64(operand)]
                let v = edges[Int(operand >> 8) % edges.count]
                for b in 0..<8 { payload[at + b] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(b))) }
            case 3: payload = Array(payload.prefix(offset % (payload.count + 1)))
            case 4: payload += (0..<Int(operand % 24)).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ Int(operand)) }
            case 5: s.records.remove(at: i); continue
            case 6: s.records.insert(s.records[i], at: offset % (s.records.count + 1)); continue
            case 7: s.records.swapAt(i, offset % s.records.count); continue
            case 8:
                let types = RecordType.allCases.map(\.rawValue) + [0x7777]
                s.records[i].rawType = types[Int(operand) % types.count]
                if operand & 0x100 != 0 { s.records[i].flags = .optional }
                continue
            default:
                // Splice a payload of another record of the base stream.
                let other = base.records[Int(operand) % base.records.count].payload
                payload = Array(payload.prefix(offset % (payload.count + 1))) + other.dropFirst(Int(operand >> 16) % (other.count + 1))
            }
            s.records[i].payload = payload
        }
        return s
    }

    static func run(_ data: UnsafeRawBufferPointer) {
        let blob = edit(data).sealed()
        let analysis = BlobAnalysis(blob)

        let device = FuzzDevice.make(seed: 3)
        try? device.gpu.step(2)
        let before = device.gpu.stateDigest
        var accepted = false
        var refusal = ""
        do throws(MigrationError) {
            try FuzzDevice.resume(device, blob, chunk: 777)
            accepted = true
        } catch {
            refusal = error.message
            invariant(device.state == .resuming, "a refused resume left the device in \(device.state), not RESUMING")
            invariant(device.gpu.stateDigest == before, "a refused resume changed the device's state")
        }
        // verify has no destination, so it takes the stream's own PCI ids as the
        // device's; only a refusal over those bytes may differ from its verdict.
        let idBytes = [0x00, 0x01, 0x02, 0x03, 0x08, 0x2c, 0x2d, 0x2e, 0x2f]
        let overIDs = idBytes.contains { refusal.contains("config byte 0x\(String($0, radix: 16).count == 1 ? "0" : "")\(String($0, radix: 16)) is") }
        invariant(accepted == analysis.sound || (analysis.sound && overIDs),
                  "resume \(accepted ? "accepted" : "refused (\(refusal))") a stream verify calls \(analysis.sound ? "sound" : "unsound (\(analysis.fault.map { "\($0)" } ?? "incomplete"))")")
        guard accepted else { return }
        // The loaded device runs and saves again: nothing it took in can trap later.
        do throws(MigrationError) {
            try device.setState(.running)
            try? device.gpu.step(3)
            device.gpu.fillWorkingSet()
            try device.setState(.stop)
            try device.setState(.stopCopy)
            let again = try FuzzDevice.save(device)
            let reread = BlobAnalysis(again)
            invariant(reread.sound, "a device loaded from a sound stream saved an unsound one: \(reread.fault.map { "\($0)" } ?? "incomplete")")
        } catch {
            invariant(false, "a device loaded from a sound stream failed to run and save: \(error)")
        }
    }
}
