import GPUModel
import MdevCore
import Synchronization
import VirtualFS

extension FSError {
    init(_ error: MdevError) { self.init(error.errno, error.message) }
}

/// Whether a device's removal must wait, as the kernel's does for a VFIO device
/// in use. A holder (the VFIO view) installs the check; `holds` either returns
/// false (remove now) or true and runs `proceed` once the device is released.
public final class RemovalGate: Sendable {
    public typealias Check = @Sendable (_ uuid: String, _ proceed: @escaping @Sendable () -> Void) -> Bool
    private let check = Mutex<Check?>(nil)
    public init() {}
    public func install(_ c: @escaping Check) { check.withLock { $0 = c } }
    func holds(_ uuid: String, proceed: @escaping @Sendable () -> Void) -> Bool {
        guard let c = check.withLock({ $0 }) else { return false }
        return c(uuid, proceed)
    }
}

/// The kernel's sysfs layout of an `MdevBus`, kept in a VirtualFS tree under
/// `sys/`. Static parts (parents, types) are built once; device directories
/// and every link to them are added and removed inside the bus operation that
/// creates or removes the device, so they exist before the `write(2)` returns.
///
/// Symlink targets are relative, exactly as the kernel writes them.
public final class SysfsView: MdevBusObserver, @unchecked Sendable {
    public let tree: Tree
    public let bus: MdevBus

    /// Name of the mdev driver GVT-g binds its devices to (the kernel generation's).
    public let mdevDriver: String

    // Inodes of directories that devices are added to; fixed after init.
    private var parentDirs: [String: Inode] = [:]
    private var typeDeviceDirs: [MdevType: Inode] = [:]
    private var busDevices: Inode = 0
    private var driverDir: Inode = 0
    private var iommuGroups: Inode = 0

    /// Device events of this tree (uevent writes; the Simulator adds the bus's own).
    public let events = DeviceEventRelay()
    /// When a device's `remove` may proceed (the VFIO view holds it while the device is open).
    public let removalGate = RemovalGate()

    public init(bus: MdevBus, tree: Tree = Tree()) throws(FSError) {
        self.bus = bus
        self.tree = tree
        mdevDriver = bus.mdevDriver
        try tree.update { (c: inout TreeContents) throws(FSError) in try build(&c) }
        bus.addObserver(self)
    }

    /// The directory of a parent, relative to the mount (`sys/devices/pci0000:00/0000:00:02.0`).
    public static func parentPath(_ parent: MdevParent) -> String {
        "sys/devices/\(parent.address.rootBus)/\(parent.name)"
    }

    /// The directory of a device, relative to the mount.
    public static func devicePath(_ device: MdevDevice, on parent: MdevParent) -> String {
        parentPath(parent) + "/" + device.uuid
    }

    private func build(_ c: inout TreeContents) throws(FSError) {
        busDevices = try c.directories("sys/bus/mdev/devices")
        driverDir = try c.directories("sys/bus/mdev/drivers/\(mdevDriver)")
        let mdevBusClass = try c.directories("sys/class/mdev_bus")
        let pciDevices = try c.directories("sys/bus/pci/devices")
        iommuGroups = try c.directories("sys/kernel/iommu_groups")

        try PCIFunctionFiles.addBusFiles(in: try c.directories("sys/bus/mdev"), &c)
        try PCIFunctionFiles.addBusFiles(in: try c.directories("sys/bus/pci"), &c)
        try PCIFunctionFiles.addDriverFiles(in: driverDir, module: mdevDriver == "vfio_mdev" ? "vfio_mdev" : "kvmgt", &c)
        try DMIFiles.add(relay: events, &c)
        for parent in bus.parents {
            let p = parent.config
            let rootBus = try c.directories("sys/devices/\(parent.address.rootBus)")
            try PCIFunctionFiles.addRootBus(parent.address.rootBus, dir: rootBus, relay: events, &c)
            let dir = try c.directory(parent.name, in: rootBus)
            parentDirs[parent.name] = dir
            let hex4 = { (v: Int) in "0x" + String(v, radix: 16).leftPadded(to: 4) + "\n" }
            try c.attribute("vendor", in: dir, .constant(hex4(p.vendor.value)))
            try c.attribute("device", in: dir, .constant(hex4(p.device.value)))
            try c.attribute("subsystem_vendor", in: dir, .constant(hex4(p.subsystemVendor.value)))
            try c.attribute("subsystem_device", in: dir, .constant(hex4(p.subsystemDevice.value)))
            try c.attribute("class", in: dir, .constant("0x" + String(p.pciClass.value, radix: 16).leftPadded(to: 6) + "\n"))
            try c.attribute("revision", in: dir, .constant("0x" + String(p.revision.value, radix: 16).leftPadded(to: 2) + "\n"))
            let registers = HostRegisters(HostFunction.configSpace(
                ids: HostFunction.IDs(vendor: UInt16(p.vendor.value), device: UInt16(p.device.value),
                                      subsystemVendor: UInt16(p.subsystemVendor.value), subsystemDevice: UInt16(p.subsystemDevice.value),
                                      revision: UInt8(p.revision.value), classCode: UInt32(p.pciClass.value)),
                apertureBytes: UInt64(p.apertureMB) << 20, ggttBytes: (p.apertureMB + p.hiddenMB) * 2048))   // 8 bytes a 4 KiB page
            try PCIFunctionFiles.add(parent, in: dir, registers: registers, bus: bus, &c)
            try c.attribute("uevent", in: dir, SysfsView.uevent(parentUevent(parent), devpath: SysfsView.parentPath(parent), subsystem: "pci", relay: events))
            try c.symlink("driver", in: dir, to: "../../../bus/pci/drivers/\(p.driver)")
            try c.symlink("subsystem", in: dir, to: "../../../bus/pci")
            try c.symlink("iommu_group", in: dir, to: "../../../kernel/iommu_groups/\(parent.iommuGroup)")

            let devicePath = "devices/\(parent.address.rootBus)/\(parent.name)"
            try c.symlink(parent.name, in: mdevBusClass, to: "../../\(devicePath)")
            try c.symlink(parent.name, in: pciDevices, to: "../../../\(devicePath)")
            let pciDriver = try c.directories("sys/bus/pci/drivers/\(p.driver)")
            try PCIFunctionFiles.addDriverFiles(in: pciDriver, module: p.driver, &c)
            try c.symlink(parent.name, in: pciDriver, to: "../../../../\(devicePath)")
            let group = try c.directory(String(parent.iommuGroup), in: iommuGroups)
            let groupDevices = try c.directory("devices", in: group)
            try c.symlink(parent.name, in: groupDevices, to: "../../../../\(devicePath)")

            let types = try c.directory("mdev_supported_types", in: dir)
            for type in parent.types {
                let t = try c.directory(type.id, in: types)
                try c.attribute("name", in: t, .constant(type.name + "\n"))
                try c.attribute("description", in: t, .constant(type.description))
                try c.attribute("device_api", in: t, .constant("vfio-pci\n"))
                let bus = self.bus
                try c.attribute("available_instances", in: t, Attribute(show: { "\(bus.availableInstances(of: type))\n" }))
                try c.attribute("create", in: t, Attribute(store: { (bytes: [UInt8]) throws(FSError) in
                    do throws(MdevError) { try bus.create(type: type, uuidBytes: bytes) } catch { throw FSError(error) }
                }))
                typeDeviceDirs[type] = try c.directory("devices", in: t)
            }
        }
    }

    /// A parent's `uevent` variables (the kernel adds them to every event of the device).
    public func parentUevent(_ parent: MdevParent) -> String {
        let p = parent.config
        let hex = { (v: Int, w: Int) in String(v, radix: 16, uppercase: true).leftPadded(to: w) }
        return "DRIVER=\(p.driver)\nPCI_CLASS=\(String(p.pciClass.value, radix: 16, uppercase: true))\n"
            + "PCI_ID=\(hex(p.vendor.value, 4)):\(hex(p.device.value, 4))\n"
            + "PCI_SUBSYS_ID=\(hex(p.subsystemVendor.value, 4)):\(hex(p.subsystemDevice.value, 4))\n"
            + "PCI_SLOT_NAME=\(parent.name)\n"
            + "MODALIAS=\(PCIFunctionFiles.modalias(p))\n"
    }

    // MARK: MdevBusObserver

    public func bus(_ bus: MdevBus, didCreate device: MdevDevice) throws(MdevError) {
        do {
            try tree.update { (c: inout TreeContents) throws(FSError) in try addDevice(device, &c) }
        } catch {
            // Nothing is left half-created: the update either applied whole or
            // stopped part-way, so take back whatever was added.
            removeDevice(device)
            throw MdevError(error.errno, "could not build the sysfs directory of \(device.uuid): \(error.reason)")
        }
    }

    public func bus(_ bus: MdevBus, didRemove device: MdevDevice) {
        removeDevice(device)
    }

    /// As mdev_unregister_parent does: the types and the mdev_bus link go; the PCI device stays.
    public func bus(_ bus: MdevBus, didUnregister parent: MdevParent) {
        tree.update { (c: inout TreeContents) in
            if let dir = parentDirs[parent.name] { c.removeIfPresent("mdev_supported_types", in: dir) }
            if let link = try? c.resolve("sys/class/mdev_bus") { c.removeIfPresent(parent.name, in: link.ino) }
        }
    }

    private func addDevice(_ device: MdevDevice, _ c: inout TreeContents) throws(FSError) {
        guard let parent = bus.parent(named: device.parent), let parentDir = parentDirs[device.parent],
              let typeDevices = typeDeviceDirs[device.type] else {
            throw .noEntry("parent \(device.parent) has no sysfs directory")
        }
        let uuid = device.uuid
        let bus = self.bus
        let dir = try c.directory(uuid, in: parentDir)
        try c.symlink("mdev_type", in: dir, to: "../mdev_supported_types/\(device.type.id)")
        let gate = removalGate
        try c.attribute("remove", in: dir, Attribute(storeLater: { (bytes: [UInt8], finish: @escaping @Sendable (FSError?) -> Void) throws(FSError) -> Bool in
            do throws(MdevError) { guard try MdevBus.removeRequested(bytes) else { return false } } catch { throw FSError(error) }
            let remove: @Sendable () -> FSError? = {
                do throws(MdevError) { try bus.remove(uuid: uuid); return nil } catch { return FSError(error) }
            }
            // vfio_unregister_group_dev: the remove blocks until the device's users release it.
            if gate.holds(uuid, proceed: { finish(remove()) }) { return true }
            if let error = remove() { throw error }
            return false
        }))
        try c.symlink("iommu_group", in: dir, to: "../../../../kernel/iommu_groups/\(device.iommuGroup)")
        try c.symlink("driver", in: dir, to: "../../../../bus/mdev/drivers/\(mdevDriver)")
        try c.symlink("subsystem", in: dir, to: "../../../../bus/mdev")
        // mdev_driver.c adds no variables of its own: DRIVER= alone, as on a real host.
        try c.attribute("uevent", in: dir, SysfsView.uevent("DRIVER=\(mdevDriver)\n", devpath: SysfsView.devicePath(device, on: parent), subsystem: "mdev", relay: events))
        let vgpu = try c.directory("intel_vgpu", in: dir)
        try c.attribute("vgpu_id", in: vgpu, .constant("\(device.vgpuID)\n"))
        if device.type.config.aggregation {
            let mdev = try c.directory("mdev", in: dir)
            try c.attribute("aggregated_instances", in: mdev, Attribute(
                show: { "\(bus.aggregation(of: uuid) ?? 0)\n" },
                store: { (bytes: [UInt8]) throws(FSError) in
                    do throws(MdevError) { try bus.setAggregation(uuid: uuid, valueBytes: bytes) } catch { throw FSError(error) }
                }))
            try c.attribute("max_aggregation", in: mdev, .constant("\(device.type.config.maxAggregation)\n"))
        }

        let devicePath = "devices/\(parent.address.rootBus)/\(parent.name)/\(uuid)"
        try c.symlink(uuid, in: typeDevices, to: "../../../\(uuid)")
        try c.symlink(uuid, in: busDevices, to: "../../../\(devicePath)")
        try c.symlink(uuid, in: driverDir, to: "../../../../\(devicePath)")
        let group = try c.directory(String(device.iommuGroup), in: iommuGroups)
        try c.attribute("name", in: group, .constant("vfio-noiommu\n"))
        let groupDevices = try c.directory("devices", in: group)
        try c.symlink(uuid, in: groupDevices, to: "../../../../\(devicePath)")
    }

    private func removeDevice(_ device: MdevDevice) {
        let uuid = device.uuid
        tree.update { (c: inout TreeContents) in
            c.removeIfPresent(uuid, in: busDevices)
            c.removeIfPresent(uuid, in: driverDir)
            if let typeDevices = typeDeviceDirs[device.type] { c.removeIfPresent(uuid, in: typeDevices) }
            c.removeIfPresent(String(device.iommuGroup), in: iommuGroups)
            if let parentDir = parentDirs[device.parent] { c.removeIfPresent(uuid, in: parentDir) }
        }
    }

    /// A device's `uevent` file (0644): shows its variables, takes the actions the kernel
    /// takes: a written action is announced as that event of the device at `devpath`
    /// (relative to the mount, "sys/devices/...") with its variables.
    public static func uevent(_ text: String, devpath: String, subsystem: String, relay: DeviceEventRelay) -> Attribute {
        Attribute(show: { text }, store: { (bytes: [UInt8]) throws(FSError) in
            let action = try checkUeventAction(bytes)
            relay.announce(DeviceEvent(action: action, devpath: DeviceEvent.devpath(mountRelative: devpath), subsystem: subsystem,
                                       variables: DeviceEvent.variables(text)))
        })
    }

    /// `uevent` store: the kernel accepts an action name (optionally followed by
    /// a UUID and variables) and synthesises the event; anything else is EINVAL.
    @discardableResult
    static func checkUeventAction(_ bytes: [UInt8]) throws(FSError) -> String {
        let text = String(decoding: bytes, as: UTF8.self).trimmingTrailingNewline
        let action = text.split(separator: " ", maxSplits: 1).first.map(String.init) ?? ""
        let actions = ["add", "remove", "change", "move", "online", "offline", "bind", "unbind"]
        guard actions.contains(action) else {
            throw .invalid("uevent takes one of \(actions.joined(separator: ", ")), got '\(text.prefix(64))'")
        }
        return action
    }
}

extension String {
    func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
    var trimmingTrailingNewline: String {
        hasSuffix("\n") ? String(dropLast()) : self
    }
}
