import Foundation
import GPUModel
import MdevCore
import MdevSysfs
import Migration
import StateStream
import Synchronization
import VirtualFS

/// The VFIO side of every vGPU, in the mount at `vfio/<uuid>/`, backed by a
/// `GPUModel.VGPU` built when the device is created:
///
///     vfio/<uuid>/info               what VFIO_DEVICE_GET_INFO / GET_REGION_INFO report (JSON)
///     vfio/<uuid>/regions/config     config space region (pread/pwrite)
///     vfio/<uuid>/regions/bar0       BAR0 region: registers, then the GGTT in the upper half
///     vfio/<uuid>/reset              write 1: function-level reset
///     vfio/<uuid>/state_digest       digest of the whole device state
///     vfio/<uuid>/workload/          seed, dirty_rate_mbps, working_set_mib, clock, step, ticks, running
///     vfio/<uuid>/migration/         the v2 migration protocol (state, data, precopy_info, ...)
///     vfio/<uuid>/sysfs ->           the sysfs device
///
/// and `sys/.../<uuid>/vfio-dev/vfio<N>/` with a link back here.
public final class VFIOView: MdevBusObserver, @unchecked Sendable {
    public let tree: Tree
    public let bus: MdevBus

    struct Entry {
        let device: VGPU
        let migration: MigrationDevice
        let opens: OpenCount
    }

    private let devices = Mutex<[String: Entry]>([:])
    /// What the VFIO emulation offers of each device (`VFIOBackend`).
    let emulated = Mutex<[String: EmulatedVGPU]>([:])
    /// Where the tree is mounted (absolute), once known: see `mounted(at:)`.
    private let mountPoint = Mutex<String?>(nil)
    /// vfio cdev minors in use: the kernel's vfio.device_ida, lowest free from 0.
    private let minors = Mutex<[String: Int]>([:])
    /// Blobs that devices with these UUIDs replay (`mdevsim mount --replay`).
    private let replays = Mutex<[String: (blob: [UInt8], identity: StreamHeader)]>([:])

    /// Makes the device created next with `uuid` a replay device of `blob`.
    public func setReplay(uuid: String, blob: [UInt8], identity: StreamHeader) {
        replays.withLock { $0[uuid] = (blob, identity) }
    }
    private var vfioRoot: Inode = 0

    /// Consulted by every device's migration (fault injection).
    let migrationFaults: (any MigrationFaultHook)?

    /// Tells the view where its tree is mounted, so devices created from now on
    /// link back to their files with a path that holds in any mount namespace.
    public func mounted(at path: String) {
        // No file system call here: the daemon calls this before its loop serves
        // the mount, and a stat of the mount point would wait on itself.
        let absolute = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
        mountPoint.withLock { $0 = absolute.hasSuffix("/") ? String(absolute.dropLast()) : absolute }
    }

    /// The vfio cdev's major (dynamically allocated on a real host; 511 here).
    public static let cdevMajor = 511

    /// Where this view's device events go (the sysfs view's relay, so one listener hears all).
    let events: DeviceEventRelay

    /// The variables of a vfio cdev's `uevent`.
    public static func cdevUevent(_ minor: Int) -> String { "MAJOR=\(cdevMajor)\nMINOR=\(minor)\nDEVNAME=vfio/devices/vfio\(minor)\n" }

    /// The cdev minor of a device's vfio-dev node, while it exists.
    public func cdevMinor(_ uuid: String) -> Int? { minors.withLock { $0[uuid] } }

    public init(bus: MdevBus, tree: Tree, events: DeviceEventRelay = DeviceEventRelay(), migrationFaults: (any MigrationFaultHook)? = nil) throws(FSError) {
        self.events = events
        self.bus = bus
        self.tree = tree
        self.migrationFaults = migrationFaults
        vfioRoot = try tree.update { (c: inout TreeContents) throws(FSError) -> Inode in
            let root = try c.directories("vfio")
            // migration_version on every type: what a device of it would accept.
            for parent in bus.parents {
                for type in parent.types {
                    let dir = try c.resolve(SysfsView.parentPath(parent) + "/mdev_supported_types/" + type.id).ino
                    let identity = VFIOView.identity(type: type, parent: parent, aggregation: 1)
                    try c.attribute("migration_version", in: dir, MigrationVersion.attribute({ identity }, onRefusal: { _ in }), permissions: 0o644)
                }
            }
            return root
        }
        bus.addObserver(self)
    }

    /// Installs this view as the removal gate: a device with open region files or
    /// emulated device fds is removed after its last close, as the kernel's
    /// vfio_unregister_group_dev waits ("Device is currently in use, task ... blocked
    /// until device is released"). Surprise removal does not wait.
    public func holdRemovals(_ gate: RemovalGate) {
        gate.install { [weak self] uuid, proceed in
            guard let entry = self?.devices.withLock({ $0[uuid] }) else { return false }
            return entry.opens.whenReleased(proceed)
        }
    }

    /// The simulated hardware of a device, if it exists.
    public func device(_ uuid: String) -> VGPU? { devices.withLock { $0[uuid]?.device } }
    public func migration(_ uuid: String) -> MigrationDevice? { devices.withLock { $0[uuid]?.migration } }

    /// What a device's stream header says about it: model, driver version, parameters.
    public static func identity(type: MdevType, parent: MdevParent, aggregation: Int) -> StreamHeader {
        StreamHeader(model: MdevType.deviceModel, driverVersion: parent.config.driverVersion,
                     parameters: type.migrationParameters(aggregation: aggregation))
    }

    func makeEntry(_ device: MdevDevice, _ parent: MdevParent, aggregation: Int, workload: WorkloadConfig) -> Entry {
        let gpu = VGPU(uuid: device.uuid, geometry: VFIOView.geometry(for: device, parent: parent, aggregation: aggregation), workload: workload)
        let t = device.type.config
        let replay = replays.withLock { $0[device.uuid] }
        let mig = MigrationDevice(gpu: gpu, features: MigrationFeatures(names: t.migrationFeatures) ?? .all,
                                  identity: replay?.identity ?? VFIOView.identity(type: device.type, parent: parent, aggregation: aggregation),
                                  resumeFailure: ResumeFailurePolicy(rawValue: t.resumeFailure) ?? .keep, replayBlob: replay?.blob,
                                  faultHook: migrationFaults)
        return Entry(device: gpu, migration: mig, opens: OpenCount())
    }

    /// The hardware a device of this type and aggregation has.
    public static func geometry(for device: MdevDevice, parent: MdevParent, aggregation: Int) -> VGPUGeometry {
        let t = device.type.config
        let dims = t.resolution.split(separator: "x").compactMap { Int($0) }
        let p = parent.config
        return VGPUGeometry(
            lowGMBytes: UInt64(t.lowGMMB * aggregation) << 20, highGMBytes: UInt64(t.highGMMB * aggregation) << 20,
            fences: t.fences * aggregation, width: dims.first ?? 1920, height: dims.count > 1 ? dims[1] : 1200,
            vgpuID: device.vgpuID, vendorID: UInt16(truncatingIfNeeded: p.vendor.value),
            deviceID: UInt16(truncatingIfNeeded: p.device.value),
            subsystemVendorID: UInt16(truncatingIfNeeded: p.subsystemVendor.value),
            subsystemID: UInt16(truncatingIfNeeded: p.subsystemDevice.value), revision: UInt8(truncatingIfNeeded: p.revision.value),
            lowGMBase: device.placement.lowBase, highGMBase: device.placement.highBase,
            apertureBytes: UInt64(p.apertureMB) << 20, gmSpaceBytes: UInt64(p.apertureMB + p.hiddenMB) << 20)
    }

    /// Each device's default seed comes from its UUID: distinct devices differ,
    /// the same UUID always starts the same way.
    static func defaultSeed(_ uuid: String) -> UInt64 {
        uuid.utf8.reduce(0xcbf2_9ce4_8422_2325 as UInt64) { ($0 ^ UInt64($1)) &* 0x0000_0100_0000_01b3 }
    }

    // MARK: MdevBusObserver

    public func bus(_ bus: MdevBus, didCreate device: MdevDevice) throws(MdevError) {
        guard let parent = bus.parent(named: device.parent) else { throw MdevError(ENODEV, "parent \(device.parent) vanished") }
        let defaults = parent.config.workload
        let workload = WorkloadConfig(seed: defaults.seed ?? VFIOView.defaultSeed(device.uuid), dirtyRateMBps: defaults.dirtyRateMBps,
                                      workingSetMiB: defaults.workingSetMiB, clock: ClockMode(rawValue: defaults.clock) ?? .realTime)
        let entry = makeEntry(device, parent, aggregation: 1, workload: workload)
        do {
            try tree.update { (c: inout TreeContents) throws(FSError) in try addNodes(device, parent, entry, &c) }
        } catch {
            removeNodes(device, parent)
            throw MdevError(error.errno, "could not build vfio/\(device.uuid): \(error.reason)")
        }
        devices.withLock { $0[device.uuid] = entry }
    }

    public func bus(_ bus: MdevBus, didRemove device: MdevDevice) {
        devices.withLock { _ = $0.removeValue(forKey: device.uuid) }
        if let parent = bus.parent(named: device.parent) { removeNodes(device, parent) }
    }

    public func bus(_ bus: MdevBus, willAggregate device: MdevDevice, to count: Int) throws(MdevError) {
        if let entry = devices.withLock({ $0[device.uuid] }), entry.opens.value > 0 {
            throw MdevError(EBUSY, "mdev \(device.uuid) is in use (a region of vfio/\(device.uuid) is open); aggregation can change only before the device is opened")
        }
    }

    /// New hardware sized for the new aggregation replaces the old one.
    public func bus(_ bus: MdevBus, didAggregate device: MdevDevice, to count: Int) {
        guard let parent = bus.parent(named: device.parent) else { return }
        let old = devices.withLock { $0[device.uuid] }
        let entry = makeEntry(device, parent, aggregation: count, workload: old?.device.workloadConfig ?? .default)
        removeNodes(device, parent)
        try? tree.update { (c: inout TreeContents) throws(FSError) in try addNodes(device, parent, entry, &c) }
        devices.withLock { $0[device.uuid] = entry }
    }

    // MARK: Devices from outside the simulator

    /// Serves a device whose migration lives elsewhere (a real VFIO device
    /// driven with the kernel's ioctls) at `vfio/<id>/`: `info`, `reset` and
    /// the same `migration/` files as a simulated vGPU, so the tools run
    /// unchanged against it. It has no simulated registers, no
    /// `state_digest` and no `migration_version`.
    public func addExternal(id: String, endpoint: any MigrationEndpoint, source: String) throws(FSError) {
        guard !id.isEmpty, !id.contains("/"), id != ".", id != ".." else {
            throw .invalid("'\(id)' cannot name a device folder under vfio/; use letters, digits, '-' or '_'")
        }
        try tree.update { (c: inout TreeContents) throws(FSError) in
            guard (try? c.resolve("vfio/" + id)) == nil else {
                throw FSError(EEXIST, "vfio/\(id) already exists; give the device another name (PATH:NAME)")
            }
            let dir = try c.directory(id, in: vfioRoot)
            // The path is the user's: encoded, so quotes or backslashes in it keep the JSON valid.
            let encoder = JSONEncoder()
            encoder.outputFormatting = .withoutEscapingSlashes
            func quoted(_ text: String) -> String { String(decoding: (try? encoder.encode(text)) ?? Data("\"\"".utf8), as: UTF8.self) }
            let info = "{\n  \"backend\": \"vfio-kernel\",\n  \"device\": \(quoted(source)),\n  \"features\": \(quoted("\(endpoint.features)"))\n}\n"
            try c.attribute("info", in: dir, .constant(info))
            try c.directory("regions", in: dir)
            try c.attribute("reset", in: dir, Attribute(store: { (bytes: [UInt8]) throws(FSError) in
                guard let value = KernelParsing.kstrtoul(bytes) else { throw .invalid("write 1 to reset the device") }
                if value != 0 {
                    do throws(MigrationError) { try endpoint.reset() } catch { throw FSError(error.errno, error.message) }
                }
            }))
            try MigrationFiles.add(to: dir, endpoint, opens: OpenCount(), v1: false, &c)
        }
    }

    // MARK: Nodes

    private func addNodes(_ device: MdevDevice, _ parent: MdevParent, _ entry: Entry, _ c: inout TreeContents) throws(FSError) {
        let gpu = entry.device
        let mig = entry.migration
        let uuid = device.uuid
        let dir = try c.directory(uuid, in: vfioRoot)
        let (bar0Size, aperture) = gpu.withHardware { ($0.bar0Size, $0.apertureSize) }
        let v1 = device.type.config.migrationProtocol == "v1"
        let slice = (offset: Int(gpu.geometry.lowGMBase), size: Int(gpu.geometry.lowGMBytes))
        let info = DeviceInfo(uuid: uuid, bar0Size: bar0Size, apertureSize: aperture, apertureSlice: slice, migrationRegion: v1 ? V1Region.size : nil)
        // Rendered when read: a stored JSON text per idle vGPU costs more than the description.
        try c.attribute("info", in: dir, Attribute(show: { info.json }))
        let regions = try c.directory("regions", in: dir)
        // One RegionFile per region, shared by the files and the VFIO emulation.
        var files: [Int: RegionFile] = [:]
        func region(_ name: String, _ kind: RegionFile.Kind, size: Int, mode: UInt32) throws(FSError) {
            let file = RegionFile(kind: kind, device: gpu, size: size, opens: entry.opens)
            try c.file(name, in: regions, file, permissions: mode)
            if let index = info.regions.first(where: { $0.file == "regions/" + name })?.index { files[index] = file }
        }
        if v1 { try region("migration", .migration(V1Region(device: mig)), size: V1Region.size, mode: 0o600) }
        try region("config", .config, size: ConfigSpace.size, mode: 0o600)
        try region("bar0", .bar0, size: bar0Size, mode: 0o600)
        try region("opregion", .opregion(OpRegion.bytes), size: OpRegion.size, mode: 0o400)
        try region("edid", .edid(EDIDRegion(width: gpu.geometry.width, height: gpu.geometry.height)), size: EDIDRegion.extent, mode: 0o600)
        try c.attribute("reset", in: dir, Attribute(store: { (bytes: [UInt8]) throws(FSError) in
            guard let value = KernelParsing.kstrtoul(bytes) else { throw .invalid("write 1 to reset the device") }
            if value != 0 { mig.reset() }
        }))
        try c.attribute("state_digest", in: dir, Attribute(show: { gpu.stateDigest + "\n" }))
        try WorkloadFiles.add(to: dir, gpu, &c)
        try MigrationFiles.add(to: dir, mig, opens: entry.opens, v1: v1, &c)
        try c.symlink("sysfs", in: dir, to: "../../sys/bus/mdev/devices/\(uuid)")

        let sysDevice = try c.resolve(SysfsView.devicePath(device, on: parent)).ino
        let vfioDev = try c.directory("vfio-dev", in: sysDevice)
        let minor = minors.withLock { m -> Int in
            let used = Set(m.values)
            let n = (0...).first { !used.contains($0) }!
            m[uuid] = n
            return n
        }
        let name = "vfio\(minor)"
        let emulation = EmulatedVGPU(name: uuid, iommuGroup: device.iommuGroup, cdevMinor: minor, info: info, files: files, device: mig, v1: v1,
                                     opens: entry.opens)
        emulated.withLock { $0[uuid] = emulation }
        let node = try c.directory(name, in: vfioDev)
        try c.attribute("dev", in: node, .constant("\(VFIOView.cdevMajor):\(minor)\n"))
        try c.attribute("uevent", in: node, SysfsView.uevent(VFIOView.cdevUevent(minor), devpath: SysfsView.devicePath(device, on: parent) + "/vfio-dev/\(name)",
                                                             subsystem: "vfio-dev", relay: events))
        // As vfio_device_add() registers it: class vfio-dev, parent the mdev.
        let devicePath = SysfsView.devicePath(device, on: parent).dropFirst(4)     // devices/pci0000:00/...
        try c.symlink("subsystem", in: node, to: "../../../../../../class/vfio-dev")
        try c.symlink("device", in: node, to: "../../../\(uuid)")
        let power = try c.directory("power", in: node)
        try c.attribute("control", in: power, .constant("auto\n"))
        try c.attribute("runtime_status", in: power, .constant("unsupported\n"))
        let vfioClass = try c.directories("sys/class/vfio-dev")
        try c.symlink(name, in: vfioClass, to: "../../\(devicePath)/vfio-dev/\(name)")
        // Back to the device's files; absolute once the mount point is known, so it
        // also resolves inside `mdevsim exec`, where this tree is bound over /sys.
        let back = mountPoint.withLock { $0 }.map { "\($0)/vfio/\(uuid)" } ?? "../../../../../../../vfio/\(uuid)"
        try c.symlink("mdevsim", in: node, to: back)
        let identity = mig.identity
        try c.attribute("migration_version", in: sysDevice, MigrationVersion.attribute({ identity }, onRefusal: { mig.recordError($0) }), permissions: 0o644)
    }

    private func removeNodes(_ device: MdevDevice, _ parent: MdevParent) {
        emulated.withLock { _ = $0.removeValue(forKey: device.uuid) }
        tree.update { (c: inout TreeContents) in
            c.removeIfPresent(device.uuid, in: vfioRoot)
            if let minor = minors.withLock({ $0.removeValue(forKey: device.uuid) }), let vfioClass = try? c.resolve("sys/class/vfio-dev") {
                c.removeIfPresent("vfio\(minor)", in: vfioClass.ino)
            }
            if let sysDevice = try? c.resolve(SysfsView.devicePath(device, on: parent)).ino {
                c.removeIfPresent("vfio-dev", in: sysDevice)
                c.removeIfPresent("migration_version", in: sysDevice)
            }
        }
    }
}
