import Foundation
import GPUModel
import Migration
import StateStream

/// What a blob holds, read record by record: the basis of inspect, verify and diff.
public struct BlobAnalysis {
    public struct Record: Encodable {
        public let offset: Int
        public let type: String
        public let bytes: Int
        public let checksum: String
        public let contents: String
    }

    public var size = 0
    public var header: StreamHeader?
    public var headerBytes = 0
    public var records: [Record] = []
    public var complete = false
    /// The first fault and its byte offset, if the blob is not sound.
    public var fault: StreamError?
    /// Final value of every register by name (later records win).
    public var registers: [String: UInt64] = [:]
    public var config: [UInt8]?
    public var ggtt: [UInt32: UInt64] = [:]
    /// Final content of every page by frame.
    public var pages: [UInt32: ArraySlice<UInt8>] = [:]
    public var memoryRecords = 0
    public var dirtyRecords = 0
    public var workloadTick: UInt64?

    static let table = RegisterTable.gvt(VGPUGeometry(lowGMBytes: 0, highGMBytes: 0))

    public init(_ bytes: [UInt8]) {
        size = bytes.count
        var events: [StreamEvent] = []
        do throws(StreamError) {
            try StreamParser.scan(bytes) { events.append($0) }
            complete = true
        } catch {
            fault = error
        }
        for event in events { take(event) }
        // Sound bytes must also be a state a device could load.
        var content: ContentCheck?
        do throws(StreamError) {
            for event in events {
                switch event {
                case .header(let h, _): content = try ContentCheck(header: h)
                case .record(let type, _, let payload, let offset): try content?.check(type, payload, at: offset)
                case .end(let offset): try content?.finish(at: offset)
                case .skipped: break
                }
            }
        } catch {
            if fault == nil || error.offset <= fault!.offset { fault = error }
        }
    }

    public var sound: Bool { fault == nil && complete }

    mutating func take(_ event: StreamEvent) {
        switch event {
        case .header(let h, let length):
            header = h
            headerBytes = length
        case .skipped(let raw, let length, let offset):
            records.append(Record(offset: offset, type: "unknown(\(raw))", bytes: length, checksum: "ok", contents: "optional, skipped"))
        case .end(let offset):
            records.append(Record(offset: offset, type: "end", bytes: 0, checksum: "ok", contents: "stream complete"))
        case .record(let type, _, let payload, let offset):
            records.append(Record(offset: offset, type: type.name, bytes: payload.count, checksum: "ok", contents: decode(type, payload)))
        }
    }

    mutating func decode(_ type: RecordType, _ payload: ArraySlice<UInt8>) -> String {
        var r = ByteReader(payload)
        switch type {
        case .config:
            config = Array(payload)
            guard let vendor = r.u16(), let device = r.u16() else { return "\(payload.count) bytes (too short for PCI ids)" }
            return String(format: "PCI %04x:%04x, %d bytes", vendor, device, payload.count)
        case .mmio, .display:
            var block = "display"
            if type == .mmio, let b = r.u8() { block = Int(b) < RegisterBlock.allCases.count ? RegisterBlock.allCases[Int(b)].rawValue : "block \(b)" }
            var n = 0
            while let offset = r.u32(), let value = r.u64() {
                registers[Self.table.registers.first { $0.offset == Int(offset) }?.name ?? String(format: "MMIO_0x%05x", offset)] = value
                n += 1
            }
            return "\(block): \(n) registers"
        case .fences:
            var i = 0
            while let v = r.u64() { registers["FENCE_\(i)"] = v; i += 1 }
            return "\(i) fences"
        case .ggtt:
            var n = 0
            while let index = r.u32(), let pte = r.u64() {
                if pte == 0 { ggtt[index] = nil } else { ggtt[index] = pte }
                n += 1
            }
            return "\(n) entries"
        case .memory, .dirtyPages:
            if type == .memory { memoryRecords += 1 } else { dirtyRecords += 1 }
            var n = 0
            while let frame = r.u32(), let page = r.take(GPULayout.pageSize) {
                pages[frame] = page
                n += 1
            }
            return "\(n) pages"
        case .workload:
            workloadTick = r.u64()
            return "tick \(workloadTick ?? 0)"
        case .end:
            return "stream complete"
        }
    }
}

/// `mdevsim inspect`: the header, each record with its size and checksum status,
/// registers by name.
public enum Inspect {
    public static func text(_ a: BlobAnalysis, source: String) -> String {
        var out = "\(source): mdevsim device-state stream, \(a.size) bytes\n"
        if let h = a.header {
            out += "  format          \(h.formatMajor).\(h.formatMinor)\n"
            out += "  model           \(h.model)\n"
            out += "  driver version  \(h.driverVersion)\n"
            out += "  parameters      " + h.parameters.map { "\($0.name)=\($0.value)" }.joined(separator: " ") + "\n"
        }
        out += "records:\n"
        out += "  " + "offset".padding(toLength: 12, withPad: " ", startingAt: 0) + "type".padding(toLength: 13, withPad: " ", startingAt: 0)
            + "bytes".padding(toLength: 10, withPad: " ", startingAt: 0) + "checksum  contents\n"
        for r in a.records {
            out += "  " + String(format: "0x%08x  ", r.offset) + r.type.padding(toLength: 13, withPad: " ", startingAt: 0)
                + String(r.bytes).padding(toLength: 10, withPad: " ", startingAt: 0) + r.checksum.padding(toLength: 10, withPad: " ", startingAt: 0) + r.contents + "\n"
        }
        if !a.registers.isEmpty {
            out += "registers:\n"
            for spec in BlobAnalysis.table.registers {
                guard let v = a.registers[spec.name] else { continue }
                out += "  " + spec.name.padding(toLength: 18, withPad: " ", startingAt: 0)
                    + (spec.width == 8 ? String(format: "0x%016llx", v) : String(format: "0x%08llx", v)) + "\n"
            }
        }
        out += "memory: \(a.pages.count) pages (\(a.memoryRecords) memory records, \(a.dirtyRecords) dirty-page records); ggtt: \(a.ggtt.count) mapped entries\n"
        if let fault = a.fault {
            out += "fault \(fault)\n"
        } else {
            out += "complete: end record present, every checksum sound, every record loadable\n"
        }
        return out
    }

    public struct JSONReport: Encodable {
        let size: Int
        let format: String?
        let model: String?
        let driverVersion: String?
        let parameters: [String: String]
        let records: [BlobAnalysis.Record]
        let registers: [String: UInt64]
        let pages: Int
        let ggttEntries: Int
        let complete: Bool
        let fault: Fault?
        struct Fault: Encodable { let offset: Int; let message: String }
        enum CodingKeys: String, CodingKey {
            case size, format, model, driverVersion = "driver_version", parameters, records, registers, pages, ggttEntries = "ggtt_entries", complete, fault
        }
    }

    public static func json(_ a: BlobAnalysis) -> String {
        let h = a.header
        let report = JSONReport(size: a.size, format: h.map { "\($0.formatMajor).\($0.formatMinor)" }, model: h?.model,
                                driverVersion: h?.driverVersion,
                                parameters: Dictionary(h?.parameters.map { ($0.name, $0.value) } ?? [], uniquingKeysWith: { a, _ in a }),
                                records: a.records, registers: a.registers, pages: a.pages.count, ggttEntries: a.ggtt.count,
                                complete: a.sound, fault: a.fault.map { JSONReport.Fault(offset: $0.offset, message: $0.message) })
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try! encoder.encode(report), as: UTF8.self) + "\n"
    }
}

/// `mdevsim diff`: header fields, registers by name, memory as page ranges.
public enum Diff {
    public static func lines(_ a: BlobAnalysis, _ b: BlobAnalysis) -> [String] {
        var out: [String] = []
        let ha = a.header, hb = b.header
        if ha?.model != hb?.model { out.append("model: \(ha?.model ?? "-") | \(hb?.model ?? "-")") }
        if ha?.driverVersion != hb?.driverVersion { out.append("driver version: \(ha?.driverVersion ?? "-") | \(hb?.driverVersion ?? "-")") }
        let pa = Dictionary(ha?.parameters.map { ($0.name, $0.value) } ?? [], uniquingKeysWith: { x, _ in x })
        let pb = Dictionary(hb?.parameters.map { ($0.name, $0.value) } ?? [], uniquingKeysWith: { x, _ in x })
        for name in Set(pa.keys).union(pb.keys).sorted() where pa[name] != pb[name] {
            out.append("parameter \(name): \(pa[name] ?? "-") | \(pb[name] ?? "-")")
        }
        if a.config != b.config {
            let ca = a.config ?? [], cb = b.config ?? []
            let offsets = (0..<max(ca.count, cb.count)).filter { (ca.indices.contains($0) ? ca[$0] : nil) != (cb.indices.contains($0) ? cb[$0] : nil) }
            out.append("config space: \(offsets.count) bytes differ, first at 0x\(String(offsets.first ?? 0, radix: 16))")
        }
        for spec in BlobAnalysis.table.registers {
            let va = a.registers[spec.name], vb = b.registers[spec.name]
            if va != vb {
                let f = { (v: UInt64?) in v.map { spec.width == 8 ? String(format: "0x%016llx", $0) : String(format: "0x%08llx", $0) } ?? "-" }
                out.append("register \(spec.name): \(f(va)) | \(f(vb))")
            }
        }
        let ggttDiff = Set(a.ggtt.keys).union(b.ggtt.keys).filter { a.ggtt[$0] != b.ggtt[$0] }.sorted()
        if !ggttDiff.isEmpty { out.append("ggtt: \(ggttDiff.count) entries differ in \(ranges(ggttDiff))") }
        let pageDiff = Set(a.pages.keys).union(b.pages.keys).filter { a.pages[$0] != b.pages[$0] }.sorted()
        if !pageDiff.isEmpty { out.append("memory: \(pageDiff.count) pages differ, frames \(ranges(pageDiff))") }
        if a.workloadTick != b.workloadTick {
            out.append("workload tick: \(a.workloadTick.map(String.init) ?? "-") | \(b.workloadTick.map(String.init) ?? "-")")
        }
        return out
    }

    /// "3-7, 12, 40-41", shortened after 8 ranges.
    static func ranges(_ sorted: [UInt32]) -> String {
        var parts: [String] = []
        var i = 0
        while i < sorted.count {
            var j = i
            while j + 1 < sorted.count && sorted[j + 1] == sorted[j] + 1 { j += 1 }
            parts.append(i == j ? "\(sorted[i])" : "\(sorted[i])-\(sorted[j])")
            i = j + 1
        }
        return parts.count > 8 ? parts.prefix(8).joined(separator: ", ") + " and \(parts.count - 8) more ranges" : parts.joined(separator: ", ")
    }
}
