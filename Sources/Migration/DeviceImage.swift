import GPUModel
import StateStream

/// Translates a device's hardware and workload state to stream records and back.
enum DeviceImage {
    static let pageRecordBytes = 4 + GPULayout.pageSize

    static func configRecord(_ hw: Hardware, into w: inout StreamWriter) {
        w.record(.config) { $0.putBytes(hw.config.bytes) }
    }

    /// Registers of the ring, interrupt and PV info blocks as MMIO records,
    /// fences and display as their own.
    static func registerRecords(_ hw: Hardware, into w: inout StreamWriter) {
        for block in [RegisterBlock.ring, .interrupts, .pvinfo] {
            w.record(.mmio) { p in
                p.put8(blockID(block))
                for (i, spec) in hw.table.registers.enumerated() where spec.block == block {
                    p.put32(UInt32(spec.offset))
                    p.put64(hw.registers[i])
                }
            }
        }
        w.record(.fences) { p in
            for (i, spec) in hw.table.registers.enumerated() where spec.block == .fences { p.put64(hw.registers[i]); _ = spec }
        }
        w.record(.display) { p in
            for (i, spec) in hw.table.registers.enumerated() where spec.block == .display {
                p.put32(UInt32(spec.offset))
                p.put64(hw.registers[i])
            }
        }
    }

    static func blockID(_ b: RegisterBlock) -> UInt8 { UInt8(RegisterBlock.allCases.firstIndex(of: b)!) }

    /// GGTT entries of the given GGTT pages (512 entries each). With `includeEmpty`
    /// every entry is sent, so an entry unmapped since an earlier record is
    /// cleared on the destination.
    static func ggttRecord(_ hw: Hardware, pages: ArraySlice<UInt32>, includeEmpty: Bool, into w: inout StreamWriter) {
        w.record(.ggtt) { p in
            for page in pages {
                let first = UInt32(page) << 9
                let last = min(first + 512, UInt32(hw.ggttEntries))
                guard first < last else { continue }
                for index in first..<last {
                    let pte = hw.ggtt[index] ?? 0
                    if pte != 0 || includeEmpty {
                        p.put32(index)
                        p.put64(pte)
                    }
                }
            }
        }
    }

    static func memoryRecord(_ hw: Hardware, frames: ArraySlice<UInt32>, type: RecordType, into w: inout StreamWriter) {
        w.record(type) { p in
            p.reserve(frames.count * pageRecordBytes + 4)
            for frame in frames {
                p.put32(frame)
                if let page = hw.memory.page(frame) { p.bytes.append(contentsOf: page) } else { p.putBytes(repeatElement(0, count: GPULayout.pageSize)) }
            }
        }
    }

    /// The guest's own state and behaviour (its dirty rate and working set travel
    /// with it; the clock is the host's and does not).
    static func workloadRecord(_ s: WorkloadState, _ config: WorkloadConfig, into w: inout StreamWriter) {
        w.record(.workload) { p in
            p.put64(s.tick)
            p.put64(s.rng.state)
            p.put64(s.budget)
            p.put64(s.frontBuffer)
            p.put64(config.dirtyRateMBps.bitPattern)
            p.put64(UInt64(config.workingSetMiB))
        }
    }

    /// Estimated bytes of a memory record set of `frames` pages.
    static func memoryBytes(_ frames: Int) -> Int {
        guard frames > 0 else { return 0 }
        let records = (frames + StreamFormat.pagesPerRecord - 1) / StreamFormat.pagesPerRecord
        return frames * pageRecordBytes + records * StreamFormat.recordOverhead
    }

    static func ggttBytes(_ pages: Int) -> Int { pages * 512 * 12 + (pages > 0 ? StreamFormat.recordOverhead : 0) }
}

/// Builds a device's state from records, on a staging copy that replaces the
/// device only when the stream is complete and sound.
struct ImageLoader {
    var hardware: Hardware
    var workload: WorkloadState
    var sawConfig = false
    var sawWorkload = false
    var dirtyRateMBps = 0.0
    var workingSetMiB = 0

    /// Whether page contents are kept (a resume) or only checked (verify and inspect,
    /// whose geometry comes from the stream's header and must not size an allocation).
    let keepsPages: Bool

    init(geometry: VGPUGeometry, keepsPages: Bool = true) {
        self.keepsPages = keepsPages
        hardware = Hardware(geometry: geometry)
        workload = WorkloadState(seed: 0)
    }

    mutating func apply(_ type: RecordType, _ payload: ArraySlice<UInt8>) throws(LoadError) {
        var r = ByteReader(payload)
        switch type {
        case .config:
            var saved = Array(payload)
            // Stream format 1.0 saved a 256-byte config of mdevsim's first layout.
            if saved.count == 256 {
                guard let converted = hardware.config.converting(legacy: saved) else {
                    throw LoadError("config record is 256 bytes but not the layout stream format 1.0 wrote; this device's config space is \(hardware.config.bytes.count) bytes")
                }
                saved = converted
            }
            if let problem = hardware.config.violation(in: saved) { throw LoadError(problem) }
            hardware.restoreConfig(saved)
            sawConfig = true
        case .mmio, .display:
            if type == .mmio {
                guard let block = r.u8(), Int(block) < RegisterBlock.allCases.count else { throw LoadError("mmio record names no known register block") }
            }
            guard r.remaining % 12 == 0 else { throw LoadError("\(type.name) record length \(payload.count) is not a whole number of (offset, value) pairs") }
            while r.remaining > 0 {
                let offset = Int(r.u32()!), value = r.u64()!
                guard let index = hardware.table.index(at: offset) else {
                    throw LoadError("\(type.name) record sets register 0x\(String(offset, radix: 16)), which this device does not have")
                }
                if let problem = hardware.registerViolation(index: index, value: value) { throw LoadError(problem) }
                hardware.restoreRegister(index: index, value: value)
            }
        case .fences:
            guard payload.count % 8 == 0, payload.count / 8 <= GPULayout.fenceCount else {
                throw LoadError("fences record holds \(payload.count) bytes; at most \(GPULayout.fenceCount) 8-byte fences fit")
            }
            for i in 0..<payload.count / 8 {
                let index = hardware.table.index(named: "FENCE_\(i)")!, value = r.u64()!
                if let problem = hardware.registerViolation(index: index, value: value) { throw LoadError(problem) }
                hardware.restoreRegister(index: index, value: value)
            }
        case .ggtt:
            guard payload.count % 12 == 0 else { throw LoadError("ggtt record length \(payload.count) is not a whole number of entries") }
            while r.remaining > 0 {
                let index = r.u32()!, pte = r.u64()!
                if let problem = hardware.pteViolation(index: index, pte) { throw LoadError(problem) }
                hardware.restorePTE(index, pte)
            }
        case .memory, .dirtyPages:
            guard payload.count % DeviceImage.pageRecordBytes == 0 else {
                throw LoadError("\(type.name) record length \(payload.count) is not a whole number of pages")
            }
            while r.remaining > 0 {
                let frame = r.u32()!
                guard Int(frame) < hardware.geometry.gmPages else {
                    throw LoadError("memory frame \(frame) is beyond this device's \(hardware.geometry.gmPages) pages of graphics memory")
                }
                let page = r.take(GPULayout.pageSize)!
                if keepsPages { hardware.restorePage(frame, page) }
            }
        case .workload:
            guard payload.count == 48 else { throw LoadError("workload record is \(payload.count) bytes, not 48") }
            var state = WorkloadState(seed: 0)
            state.tick = r.u64()!
            state.rng = SplitMix64(seed: r.u64()!)
            state.budget = r.u64()!
            state.frontBuffer = r.u64()!
            if let problem = state.violation { throw LoadError(problem) }
            let rate = Double(bitPattern: r.u64()!)
            let workingSet = r.u64()!
            guard rate.isFinite, rate >= 0, rate <= WorkloadConfig.maxDirtyRateMBps else {
                throw LoadError("workload dirty rate is \(rate) MB/s; it is 0...\(Int(WorkloadConfig.maxDirtyRateMBps))")
            }
            let memoryMiB = hardware.geometry.highGMBytes >> 20
            guard workingSet <= memoryMiB else {
                throw LoadError("workload working set is \(workingSet) MiB; this device has \(memoryMiB) MiB of high graphics memory for it")
            }
            workload = state
            dirtyRateMBps = rate
            workingSetMiB = Int(workingSet)
            sawWorkload = true
        case .end:
            break
        }
    }
}

struct LoadError: Error {
    let message: String
    init(_ message: String) { self.message = message }
}
