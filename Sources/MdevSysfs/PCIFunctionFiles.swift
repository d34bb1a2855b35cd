import Foundation
import GPUModel
import MdevCore
import Synchronization
import VirtualFS

/// The config space of a parent's PCI function, shared by its `config` file
/// and whatever resets it.
final class HostRegisters: Sendable {
    let space: Mutex<ConfigSpace>
    init(_ space: ConfigSpace) { self.space = Mutex(space) }

    func read(offset: Int, count: Int) -> [UInt8] {
        space.withLock { s in
            let start = min(max(offset, 0), s.bytes.count)
            return Array(s.bytes[start..<min(start + max(count, 0), s.bytes.count)])
        }
    }

    /// A write through sysfs `config`, split into aligned 4-, 2- and 1-byte
    /// accesses as pci_write_config() does, each honouring the register's masks.
    func write(offset: Int, _ bytes: [UInt8]) -> Int {
        space.withLock { s in
            var o = offset
            let end = min(offset + bytes.count, s.bytes.count)
            while o < end {
                let size = (o % 4 == 0 && end - o >= 4) ? 4 : (o % 2 == 0 && end - o >= 2) ? 2 : 1
                var v: UInt32 = 0
                for i in 0..<size { v |= UInt32(bytes[o - offset + i]) << (8 * UInt32(i)) }
                s.write(offset: o, size: size, value: v)
                o += size
            }
            return max(0, end - offset)
        }
    }

    func reset() { space.withLock { $0.reset() } }
}

/// The attributes the kernel gives every PCI function (drivers/pci/pci-sysfs.c),
/// with its modes and st_size, for a simulated parent: what lspci -vvv,
/// setpci and udevadm read. Values are a Kaby Lake GT2's bound to i915.
enum PCIFunctionFiles {
    /// Interrupt numbers shown for the function: its INTx line and one MSI vector.
    static let irq = HostFunction.interruptLine
    static let msiVector = 142

    static func add(_ parent: MdevParent, in dir: Inode, registers: HostRegisters, bus: MdevBus, _ c: inout TreeContents) throws(FSError) {
        let p = parent.config
        let aperture = UInt64(p.apertureMB) << 20
        try c.file("config", in: dir, BinaryAttribute(
            size: HostFunction.size,
            read: { offset, count in registers.read(offset: offset, count: count) },
            write: { offset, bytes in registers.write(offset: offset, bytes) }), permissions: 0o644)

        // resource: start, end and flags of each BAR and the ROM (pci_dev->resource[0...6]).
        var lines = Array(repeating: "0x0000000000000000 0x0000000000000000 0x0000000000000000\n", count: 7)
        for bar in HostFunction.bars(apertureBytes: aperture) {
            lines[bar.index] = String(format: "0x%016llx 0x%016llx 0x%016llx\n", bar.address, bar.address + bar.size - 1, bar.flags)
            // resourceN: mmap-only for memory BARs, as on a real device (read is EIO there, as no ->read exists).
            let size = Int(bar.size)
            try c.file("resource\(bar.index)", in: dir, BinaryAttribute(size: size, read: { _, _ throws(FSError) in
                throw FSError(EIO, "resource\(bar.index) is mapped, not read (mmap it)")
            }), permissions: 0o600)
            if bar.flags & 0x2000 != 0 {
                try c.file("resource\(bar.index)_wc", in: dir, BinaryAttribute(size: size, read: { _, _ throws(FSError) in
                    throw FSError(EIO, "resource\(bar.index)_wc is mapped, not read (mmap it)")
                }), permissions: 0o600)
            }
        }
        try c.attribute("resource", in: dir, .constant(lines.joined()))

        try c.attribute("modalias", in: dir, .constant(modalias(p) + "\n"))
        try c.attribute("irq", in: dir, .constant("\(irq)\n"))
        try c.attribute("enable", in: dir, flag("1"), permissions: 0o644)
        try c.attribute("broken_parity_status", in: dir, flag("0"), permissions: 0o644)
        try c.attribute("msi_bus", in: dir, flag("1"), permissions: 0o644)
        try c.attribute("d3cold_allowed", in: dir, flag("1"), permissions: 0o644)
        try c.attribute("numa_node", in: dir, number(String(p.numaNode), range: -1...1023), permissions: 0o644)
        try c.attribute("driver_override", in: dir, text("(null)"), permissions: 0o644)
        let cpus = max(1, ProcessInfo.processInfo.processorCount)
        try c.attribute("local_cpulist", in: dir, .constant(cpus == 1 ? "0\n" : "0-\(cpus - 1)\n"))
        try c.attribute("local_cpus", in: dir, .constant(cpuMask(cpus) + "\n"))
        try c.attribute("dma_mask_bits", in: dir, .constant("39\n"))
        try c.attribute("consistent_dma_mask_bits", in: dir, .constant("39\n"))
        try c.attribute("ari_enabled", in: dir, .constant("0\n"))
        try c.attribute("power_state", in: dir, .constant("D0\n"))
        // The driver core's fw_devlink flag (drivers/base/core.c): no supplier awaited.
        try c.attribute("waiting_for_supplier", in: dir, .constant("0\n"))
        // boot_vga: a VGA-class function that decodes legacy VGA (pci-sysfs.c, vga_default_device).
        if p.pciClass.value >> 8 == 0x0300 { try c.attribute("boot_vga", in: dir, .constant("1\n")) }
        try c.attribute("reset", in: dir, Attribute(store: { (bytes: [UInt8]) throws(FSError) in
            guard let v = KernelParsing.kstrtoul(bytes), v != 0 else { throw .invalid("write 1 to reset the function") }
            registers.reset()
        }))
        try c.attribute("rescan", in: dir, Attribute(store: { (bytes: [UInt8]) throws(FSError) in
            guard KernelParsing.kstrtoul(bytes) != nil else { throw .invalid("write 1 to rescan") }
        }))
        try c.attribute("remove", in: dir, Attribute(store: { (bytes: [UInt8]) throws(FSError) in
            guard let v = KernelParsing.kstrtoul(bytes) else { throw .invalid("write 1 to remove the device") }
            guard v != 0 else { return }
            // Removing the PCI function takes the parent off the mdev bus, devices and all.
            do throws(MdevError) { try bus.unregisterParent(parent.name) } catch { throw FSError(error.errno, error.message) }
        }), permissions: 0o220)

        let msi = try c.directory("msi_irqs", in: dir)
        try c.attribute(String(msiVector), in: msi, .constant("msi\n"))
        try addPower(in: dir, &c)
    }

    /// The host bridge device (`pci0000:00`) and its `pci_bus/0000:00` class
    /// device, so tools walking up from a function (udevadm info -a) reach the
    /// root as on a real host. Entries a recorded or mirrored tree already has are kept.
    static func addRootBus(_ rootBus: String, dir: Inode, relay: DeviceEventRelay, _ c: inout TreeContents) throws(FSError) {
        guard !c.has("uevent", in: dir) else { return }
        try c.attribute("uevent", in: dir, SysfsView.uevent("", devpath: "sys/devices/\(rootBus)", subsystem: "", relay: relay))
        try c.attribute("waiting_for_supplier", in: dir, .constant("0\n"))
        try addPower(in: dir, &c)
        let name = String(rootBus.dropFirst(3))                   // "0000:00"
        let busDir = try c.directory(name, in: try c.directory("pci_bus", in: dir))
        try c.symlink("device", in: busDir, to: "../../../\(rootBus)")
        try c.symlink("subsystem", in: busDir, to: "../../../../class/pci_bus")
        try c.attribute("uevent", in: busDir, SysfsView.uevent("", devpath: "sys/devices/\(rootBus)/pci_bus/\(name)", subsystem: "pci_bus", relay: relay))
        let cpus = max(1, ProcessInfo.processInfo.processorCount)
        try c.attribute("cpuaffinity", in: busDir, .constant(cpuMask(cpus) + "\n"))
        try c.attribute("cpulistaffinity", in: busDir, .constant(cpus == 1 ? "0\n" : "0-\(cpus - 1)\n"))
        try c.attribute("rescan", in: busDir, Attribute(store: { (bytes: [UInt8]) throws(FSError) in
            guard KernelParsing.kstrtoul(bytes) != nil else { throw .invalid("write 1 to rescan") }
        }))
        try addPower(in: busDir, &c)
        let classDir = try c.directories("sys/class/pci_bus")
        if !c.has(name, in: classDir) { try c.symlink(name, in: classDir, to: "../../devices/\(rootBus)/pci_bus/\(name)") }
    }

    /// The files every bus directory has (drivers/base/bus.c) and every driver's (bind, unbind, uevent).
    static func addBusFiles(in bus: Inode, _ c: inout TreeContents) throws(FSError) {
        guard !c.has("uevent", in: bus) else { return }
        try c.attribute("uevent", in: bus, Attribute(store: { (bytes: [UInt8]) throws(FSError) in try SysfsView.checkUeventAction(bytes) }))
        try c.attribute("drivers_autoprobe", in: bus, flag("1"), permissions: 0o644)
        try c.attribute("drivers_probe", in: bus, Attribute(store: { _ in }))
    }

    static func addDriverFiles(in driver: Inode, module: String?, _ c: inout TreeContents) throws(FSError) {
        guard !c.has("uevent", in: driver) else { return }
        try c.attribute("uevent", in: driver, Attribute(store: { (bytes: [UInt8]) throws(FSError) in try SysfsView.checkUeventAction(bytes) }))
        for name in ["bind", "unbind"] {
            try c.attribute(name, in: driver, Attribute(store: { (bytes: [UInt8]) throws(FSError) in
                throw FSError(EBUSY, "\(name) of '\(String(decoding: bytes, as: UTF8.self).trimmingTrailingNewline)': the simulated drivers keep their devices bound")
            }))
        }
        if let module { try c.symlink("module", in: driver, to: "../../../../module/\(module)") }
    }

    /// `power/`: runtime PM of a device the driver keeps on (drivers/base/power/sysfs.c).
    static func addPower(in dir: Inode, _ c: inout TreeContents) throws(FSError) {
        let power = try c.directory("power", in: dir)
        try c.attribute("control", in: power, choice("on", ["on", "auto"]), permissions: 0o644)
        try c.attribute("runtime_status", in: power, .constant("active\n"))
        try c.attribute("runtime_active_time", in: power, .constant("0\n"))
        try c.attribute("runtime_suspended_time", in: power, .constant("0\n"))
        try c.attribute("autosuspend_delay_ms", in: power, number("10000", range: -1...Int(Int32.max)), permissions: 0o644)
    }

    static func modalias(_ p: ParentConfig) -> String {
        let hex = { (v: Int, w: Int) in String(v, radix: 16, uppercase: true).leftPadded(to: w) }
        return "pci:v0000\(hex(p.vendor.value, 4))d0000\(hex(p.device.value, 4))sv0000\(hex(p.subsystemVendor.value, 4))"
            + "sd0000\(hex(p.subsystemDevice.value, 4))bc\(hex(p.pciClass.value >> 16, 2))sc\(hex((p.pciClass.value >> 8) & 0xff, 2))i\(hex(p.pciClass.value & 0xff, 2))"
    }

    /// The kernel's cpumask format: hex words of 32 bits, comma-separated.
    static func cpuMask(_ cpus: Int) -> String {
        var words: [String] = []
        var left = cpus
        repeat {
            let bits = min(left, 32)
            let word: UInt32 = bits == 32 ? .max : (1 << UInt32(bits)) - 1
            words.append(String(format: bits == cpus ? "%x" : "%08x", word))
            left -= bits
        } while left > 0
        return words.reversed().joined(separator: ",")
    }

    // MARK: Writable attributes that keep what was written, as the kernel's do

    /// 0 or 1 (kstrtoul).
    static func flag(_ initial: String) -> Attribute {
        let value = Mutex(initial)
        return Attribute(show: { value.withLock { $0 } + "\n" }, store: { (bytes: [UInt8]) throws(FSError) in
            guard let v = KernelParsing.kstrtoul(bytes), v <= 1 else { throw .invalid("write 0 or 1") }
            value.withLock { $0 = String(v) }
        })
    }

    static func number(_ initial: String, range: ClosedRange<Int>) -> Attribute {
        let value = Mutex(initial)
        return Attribute(show: { value.withLock { $0 } + "\n" }, store: { (bytes: [UInt8]) throws(FSError) in
            let text = String(decoding: bytes, as: UTF8.self).trimmingTrailingNewline
            guard let v = Int(text), range.contains(v) else { throw .invalid("write a number in \(range.lowerBound)...\(range.upperBound)") }
            value.withLock { $0 = String(v) }
        })
    }

    /// driver_override: a driver name, or an empty write to clear it.
    static func text(_ initial: String) -> Attribute {
        let value = Mutex(initial)
        return Attribute(show: { value.withLock { $0 } + "\n" }, store: { (bytes: [UInt8]) in
            let text = String(decoding: bytes, as: UTF8.self).trimmingTrailingNewline
            value.withLock { $0 = text.isEmpty ? "(null)" : text }
        })
    }

    static func choice(_ initial: String, _ allowed: [String]) -> Attribute {
        let value = Mutex(initial)
        return Attribute(show: { value.withLock { $0 } + "\n" }, store: { (bytes: [UInt8]) throws(FSError) in
            let text = String(decoding: bytes, as: UTF8.self).trimmingTrailingNewline
            guard allowed.contains(text) else { throw .invalid("write one of \(allowed.joined(separator: ", "))") }
            value.withLock { $0 = text }
        })
    }
}
