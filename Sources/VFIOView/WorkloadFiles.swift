import GPUModel
import MdevCore
import VirtualFS

/// `vfio/<uuid>/workload/`: the knobs of a device's guest workload.
enum WorkloadFiles {
    static func add(to dir: Inode, _ gpu: VGPU, _ c: inout TreeContents) throws(FSError) {
        let w = try c.directory("workload", in: dir)
        func knob(_ name: String, show: @escaping @Sendable (WorkloadConfig) -> String,
                  parse: @escaping @Sendable (String, inout WorkloadConfig) throws(FSError) -> Void) throws(FSError) {
            try c.attribute(name, in: w, Attribute(
                show: { show(gpu.workloadConfig) + "\n" },
                store: { (bytes: [UInt8]) throws(FSError) in
                    var config = gpu.workloadConfig
                    let text = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
                    try parse(text, &config)
                    gpu.setWorkload(config)
                }))
        }
        try knob("seed", show: { String($0.seed) }) { (text: String, config: inout WorkloadConfig) throws(FSError) in
            guard let v = KernelParsing.kstrtoul(Array(text.utf8)) else { throw .invalid("seed is an unsigned integer, got '\(text.prefix(32))'") }
            config.seed = v
        }
        try knob("dirty_rate_mbps", show: { String($0.dirtyRateMBps) }) { (text: String, config: inout WorkloadConfig) throws(FSError) in
            let max = WorkloadConfig.maxDirtyRateMBps
            guard let v = Double(text), v.isFinite, v >= 0, v <= max else {
                throw .invalid("dirty_rate_mbps is MB per second of workload clock, 0...\(Int(max)), got '\(text.prefix(32))'")
            }
            config.dirtyRateMBps = v
        }
        try knob("working_set_mib", show: { String($0.workingSetMiB) }) { (text: String, config: inout WorkloadConfig) throws(FSError) in
            let memoryMiB = Int(gpu.geometry.highGMBytes >> 20)
            guard let v = KernelParsing.kstrtoul(Array(text.utf8)), v <= memoryMiB else {
                throw .invalid("working_set_mib is the texture pool size in MiB, 0...\(memoryMiB) (this vGPU's high graphics memory), got '\(text.prefix(32))'")
            }
            config.workingSetMiB = Int(v)
        }
        try knob("clock", show: { $0.clock.rawValue }) { (text: String, config: inout WorkloadConfig) throws(FSError) in
            guard let v = ClockMode(rawValue: text) else {
                throw .invalid("clock is 'real' or 'stepped', got '\(text.prefix(32))'")
            }
            config.clock = v
        }
        try c.attribute("step", in: w, Attribute(store: { (bytes: [UInt8]) throws(FSError) in
            guard let n = KernelParsing.kstrtoul(bytes) else {
                throw .invalid("write the number of ticks to advance (at most \(VGPU.ticksPerStep))")
            }
            do throws(AccessError) { try gpu.step(n) } catch { throw FSError(error.errno, error.message) }
        }))
        try c.attribute("fill", in: w, Attribute(store: { (bytes: [UInt8]) throws(FSError) in
            guard let n = KernelParsing.kstrtoul(bytes) else { throw .invalid("write 1 to have the guest write its whole working set once") }
            if n != 0 { gpu.fillWorkingSet() }
        }))
        try c.attribute("ticks", in: w, Attribute(show: { "\(gpu.ticks)\n" }))
        try c.attribute("running", in: w, Attribute(show: { gpu.isRunning ? "1\n" : "0\n" }))
    }
}
