import CVFIO
import Dispatch
import Foundation
import GPUModel
import Migration
import Synchronization
import VFIOEmulation

/// A vGPU as the VFIO emulation sees it: the same regions, migration and
/// reset the `vfio/<uuid>/` files serve, so a VMM's accesses and the files'
/// reach one device.
final class EmulatedVGPU: EmulatedVFIODevice {
    let name: String
    let iommuGroup: Int
    let cdevMinor: Int
    let info: DeviceInfo
    let files: [Int: RegionFile]
    let device: MigrationDevice
    let v1: Bool
    /// The device's opens: each device fd counts as one, as a region file does.
    let opens: OpenCount
    /// The open device fd's interrupt sink (weak: the fd's handle owns this device, not the
    /// reverse) and the pump that watches the model for interrupts while one is set.
    private let interrupts = Mutex<(sink: WeakSink?, pump: Pump?, seen: UInt64, heldINTx: Bool)>((nil, nil, 0, false))
    /// A timer source (not Sendable itself) handed out of the lock only to be cancelled.
    final class Pump: @unchecked Sendable {
        let timer: any DispatchSourceTimer
        init(_ t: any DispatchSourceTimer) { timer = t }
    }
    final class WeakSink: @unchecked Sendable {
        weak var sink: (any InterruptSink)?
        init(_ s: any InterruptSink) { sink = s }
    }
    /// How often the pump looks: the workload ticks every 10 ms.
    static let pumpInterval = DispatchTimeInterval.milliseconds(2)

    init(name: String, iommuGroup: Int, cdevMinor: Int, info: DeviceInfo, files: [Int: RegionFile], device: MigrationDevice, v1: Bool,
         opens: OpenCount) {
        self.opens = opens
        self.name = name
        self.iommuGroup = iommuGroup
        self.cdevMinor = cdevMinor
        self.info = info
        self.files = files
        self.device = device
        self.v1 = v1
    }

    var flags: UInt32 { info.flagsValue }
    var numRegions: Int { info.numRegions }
    var numIRQs: Int { info.numIRQs }

    func region(_ index: Int) -> VFIORegion? {
        guard index >= 0, index < numRegions else { return nil }
        // kvmgt reports the BARs, ROM and VGA regions it does not implement with size 0 and no flags.
        guard let r = info.regions.first(where: { $0.index == index }) else { return VFIORegion(index: index, size: 0, flags: 0, trapped: false) }
        return VFIORegion(index: r.index, size: r.size, flags: r.flagsValue, type: r.type.map { ($0, r.subtype ?? 0) },
                          sparse: (r.sparseMmap ?? []).map { .init(offset: $0.offset, size: $0.size) }, trapped: files[index] != nil,
                          extent: files[index]?.size)
    }

    func irq(_ index: Int) -> VFIOIRQ? {
        info.irqs.first { $0.index == index }.map { VFIOIRQ(index: $0.index, count: $0.count, flags: $0.flagsValue) }
    }

    func read(region: Int, offset: Int, into buffer: UnsafeMutableRawBufferPointer) throws(MigrationError) -> Int {
        guard let file = files[region] else { throw MigrationError(EINVAL, "region \(region) is not trapped") }
        var got = 0
        do throws(AccessError) {
            try file.read(offset: offset, size: buffer.count) { bytes in
                got = min(bytes.count, buffer.count)
                buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes.prefix(got)))
            }
        } catch { throw MigrationError(error.errno, error.message) }
        return got
    }

    func write(region: Int, offset: Int, _ bytes: UnsafeRawBufferPointer) throws(MigrationError) -> Int {
        guard let file = files[region] else { throw MigrationError(EINVAL, "region \(region) is not trapped") }
        do throws(AccessError) { return try file.write(offset: offset, data: bytes) } catch { throw MigrationError(error.errno, error.message) }
    }

    func reset() throws(MigrationError) { device.reset() }

    func withSection(region: Int, offset: Int, count: Int, _ body: (UnsafeMutableRawBufferPointer) -> Int) -> Int? {
        guard let file = files[region], case .migration(let v1) = file.kind, offset == V1Region.dataOffset else { return nil }
        return v1.withDataSection(count: count, body)
    }

    var migration: (any MigrationEndpoint)? { v1 ? nil : device }

    /// The model latches interrupts as its workload runs, which it does lazily, when touched:
    /// while a VMM has the device open, a pump touches it and signals each new interrupt.
    func setInterruptSink(_ sink: (any InterruptSink)?) {
        if sink != nil { opens.increment() }
        install(sink)
    }

    private func install(_ sink: (any InterruptSink)?) {
        let gpu = device.gpu
        let old = interrupts.withLock { i -> Pump? in
            let pump = i.pump
            i.pump = nil
            i.sink = sink.map(WeakSink.init)
            guard let box = i.sink else { return pump }
            i.seen = gpu.interruptsRaised
            let timer = DispatchSource.makeTimerSource(queue: .global())
            timer.schedule(deadline: .now() + EmulatedVGPU.pumpInterval, repeating: EmulatedVGPU.pumpInterval)
            timer.setEventHandler { [weak self] in
                guard let self, let sink = box.sink else { return }
                // One look at the model: interrupts latched so far, whether the output is asserted,
                // and the command register's INTx Disable (bit 10), which holds INTx off as on hardware.
                let (now, pending, intxOff) = gpu.withHardware { hw in (hw.interruptsRaised, hw.interruptPending, hw.config.read(offset: 4, size: 2) & 0x400 != 0) }
                let (msi, intx) = self.interrupts.withLock { i -> (Bool, Bool) in
                    let new = now != i.seen
                    i.seen = now
                    if new && intxOff { i.heldINTx = true }
                    // INTx: a new interrupt while enabled, or one held while disabled once enabled again.
                    let intx = !intxOff && (new || (i.heldINTx && pending))
                    if !intxOff { i.heldINTx = false }
                    return (new, intx)
                }
                // The VMM enables one at a time (QEMU turns INTx off when the guest enables MSI).
                if msi { sink.raise(index: Int(VFIO_PCI_MSI_IRQ_INDEX), vector: 0) }
                if intx { sink.raise(index: Int(VFIO_PCI_INTX_IRQ_INDEX), vector: 0) }
            }
            timer.resume()
            i.pump = Pump(timer)
            return pump
        }
        old?.timer.cancel()
    }

    func clearInterruptSink(_ sink: any InterruptSink) {
        let current = interrupts.withLock { $0.sink?.sink }
        if current === sink || current == nil { install(nil) }
        opens.decrement()
    }
}

extension VFIOView: VFIOBackend {
    public func devices(inGroup group: Int) -> [any EmulatedVFIODevice] {
        emulated.withLock { Array($0.values.filter { $0.iommuGroup == group }) }
    }

    public func device(cdevMinor: Int) -> (any EmulatedVFIODevice)? {
        emulated.withLock { $0.values.first { $0.cdevMinor == cdevMinor } }
    }
}
