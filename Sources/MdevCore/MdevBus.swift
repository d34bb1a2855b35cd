import Synchronization

/// A vGPU type offered by one parent (`i915-GVTg_V5_4` on 0000:00:02.0).
public struct MdevType: Sendable, Hashable {
    public let parentAddress: String
    public let config: VGPUTypeConfig
    /// `GVTg_V5_4`: the driver's `sysfs_name`, shown by `name`.
    public let name: String
    /// `i915-GVTg_V5_4`: the type directory, `<driver>-<sysfs_name>`.
    public let id: String

    /// GVT-g's `description` text, with the `aggregation` line the aggregation
    /// proposal added for types that declare it.
    public var description: String {
        var text = "low_gm_size: \(config.lowGMMB)MB\nhigh_gm_size: \(config.highGMMB)MB\n"
            + "fence: \(config.fences)\nresolution: \(config.resolution)\nweight: \(config.weight)\n"
        if config.aggregation { text += "aggregation: yes\n" }
        return text
    }

    /// The device model every mdevsim vGPU implements (a Go-style `<domain>/<path>` id).
    public static let deviceModel = "mdevsim.dev/gvt-g"

    /// Migration parameters of a device of this type: everything that changes
    /// whether a saved state fits another device.
    public func migrationParameters(aggregation: Int) -> [(name: String, value: String)] {
        [("type", id), ("aggregation", String(aggregation)), ("low_gm_mb", String(config.lowGMMB * aggregation)),
         ("high_gm_mb", String(config.highGMMB * aggregation)), ("fences", String(config.fences * aggregation)),
         ("resolution", config.resolution)]
    }

    public static func == (l: MdevType, r: MdevType) -> Bool { l.parentAddress == r.parentAddress && l.id == r.id }
    public func hash(into h: inout Hasher) { h.combine(parentAddress); h.combine(id) }
}

/// A physical GPU registered with the mdev bus.
public struct MdevParent: Sendable {
    public let config: ParentConfig
    public let address: PCIAddress
    /// The types GVT-g generates: table order, stopping at the first whose low
    /// GM does not fit the aperture at all.
    public let types: [MdevType]
    public let iommuGroup: Int

    public var name: String { config.address }

    public func type(id: String) -> MdevType? { types.first { $0.id == id } }
}

/// A created mediated device.
public struct MdevDevice: Sendable, Hashable {
    /// Lowercase canonical UUID: the device's name.
    public let uuid: String
    public let parent: String
    public let type: MdevType
    /// `intel_vgpu/vgpu_id`: 1...maxVGPUs-1, lowest free.
    public let vgpuID: Int
    public let iommuGroup: Int
    /// Where its graphics memory sits in the parent's GGTT space (changes with aggregation).
    public internal(set) var placement: GMPlacement

    public static func == (l: MdevDevice, r: MdevDevice) -> Bool { l.uuid == r.uuid }
    public func hash(into h: inout Hasher) { h.combine(uuid) }
}

/// Told of every device change while the bus still holds its lock, so a view
/// of the bus is complete before the operation that caused it returns.
public protocol MdevBusObserver: AnyObject, Sendable {
    func bus(_ bus: MdevBus, didCreate device: MdevDevice) throws(MdevError)
    func bus(_ bus: MdevBus, didRemove device: MdevDevice)
    /// Asked before a device's aggregation changes; throw (EBUSY) to refuse.
    func bus(_ bus: MdevBus, willAggregate device: MdevDevice, to count: Int) throws(MdevError)
    func bus(_ bus: MdevBus, didAggregate device: MdevDevice, to count: Int)
    /// The parent left the bus (its devices were removed first).
    func bus(_ bus: MdevBus, didUnregister parent: MdevParent)
}

extension MdevBusObserver {
    public func bus(_ bus: MdevBus, willAggregate device: MdevDevice, to count: Int) throws(MdevError) {}
    public func bus(_ bus: MdevBus, didAggregate device: MdevDevice, to count: Int) {}
    public func bus(_ bus: MdevBus, didUnregister parent: MdevParent) {}
}

struct WeakObserver {
    weak var observer: (any MdevBusObserver)?
}

/// Graphics memory and fences a parent still has for vGPUs.
public struct PoolUsage: Sendable, Equatable {
    public var lowGMMB = 0
    public var highGMMB = 0
    public var fences = 0
}

/// The mdev bus with a GVT-g-like parent driver: it creates and removes
/// devices, charging each parent's shared pool of low GM, high GM and fences.
public final class MdevBus: Sendable {
    public let parents: [MdevParent]
    private let parentIndex: [String: Int]
    /// The driver devices bind to (HostConfig.mdevDriver).
    public let mdevDriver: String

    struct DeviceRecord {
        var device: MdevDevice
        var aggregation: Int
    }

    struct State {
        var devices: [String: DeviceRecord] = [:]
        var used: [PoolUsage]
        var vgpuIDs: [Set<Int>]
        var iommuGroups: Set<Int>
        /// Each parent's allocated GM ranges.
        var gm: [GMRanges]
        /// No group below this number is free: keeps allocation O(1) amortised.
        var lowestFreeGroup = 0
        var observers: [WeakObserver] = []
        /// Parents that left the bus (surprise removal); they offer nothing.
        var unregistered: Set<Int> = []
        var live: [any MdevBusObserver] { observers.compactMap(\.observer) }
    }

    private let state: Mutex<State>

    public init(config: HostConfig) {
        var parents: [MdevParent] = []
        var groups = Set<Int>()
        var nextGroup = 0
        for p in config.parents {
            let group: Int
            if let g = p.iommuGroup { group = g } else {
                while groups.contains(nextGroup) || config.parents.contains(where: { $0.iommuGroup == nextGroup }) { nextGroup += 1 }
                group = nextGroup
            }
            groups.insert(group)
            let lowAvail = p.apertureMB - p.hostLowGMMB
            var types: [MdevType] = []
            for t in p.types {
                if lowAvail / t.lowGMMB == 0 { break }
                let name = "\(p.typePrefix)_\(t.name)"
                types.append(MdevType(parentAddress: p.address, config: t, name: name, id: "\(p.driver)-\(name)"))
            }
            parents.append(MdevParent(config: p, address: PCIAddress(p.address)!, types: types, iommuGroup: group))
        }
        self.parents = parents
        mdevDriver = config.mdevDriver
        parentIndex = Dictionary(uniqueKeysWithValues: parents.enumerated().map { ($1.name, $0) })
        state = Mutex(State(used: Array(repeating: PoolUsage(), count: parents.count),
                            vgpuIDs: Array(repeating: [], count: parents.count), iommuGroups: groups,
                            gm: Array(repeating: GMRanges(), count: parents.count)))
    }

    /// Observers are told of changes in the order they were added.
    public func addObserver(_ observer: any MdevBusObserver) {
        state.withLock { $0.observers.append(WeakObserver(observer: observer)) }
    }

    public func parent(named name: String) -> MdevParent? {
        parentIndex[name].map { parents[$0] }
    }

    // MARK: Queries

    /// GVT-g's `available_instances`: min of low GM, high GM and fences left
    /// divided by what one instance of the type needs.
    public func availableInstances(of type: MdevType) -> Int {
        guard let i = parentIndex[type.parentAddress] else { return 0 }
        guard let used = state.withLock({ $0.unregistered.contains(i) ? nil : $0.used[i] }) else { return 0 }
        return MdevBus.instances(of: type.config, fitting: free(parents[i].config, used))
    }

    /// Whether the parent is on the bus (not surprise-removed or unregistered).
    public func isRegistered(_ parent: String) -> Bool {
        guard let i = parentIndex[parent] else { return false }
        return state.withLock { !$0.unregistered.contains(i) }
    }

    public func device(_ uuid: String) -> MdevDevice? {
        state.withLock { $0.devices[uuid]?.device }
    }

    public func aggregation(of uuid: String) -> Int? {
        state.withLock { $0.devices[uuid]?.aggregation }
    }

    /// All devices, sorted by UUID.
    public var devices: [MdevDevice] {
        state.withLock { $0.devices.values.map(\.device) }.sorted { $0.uuid < $1.uuid }
    }

    public var deviceCount: Int { state.withLock { $0.devices.count } }

    // MARK: Create and remove

    /// A write of `bytes` to `<type>/create`: validates the UUID as the kernel
    /// does, refuses a UUID in use on any parent, allocates from the pool.
    @discardableResult
    public func create(type: MdevType, uuidBytes bytes: [UInt8]) throws(MdevError) -> MdevDevice {
        let uuid = try KernelParsing.mdevUUID(bytes)
        guard let pi = parentIndex[type.parentAddress] else { throw .noDevice("parent \(type.parentAddress) is not registered") }
        let parent = parents[pi]
        return try state.withLock { (s: inout State) throws(MdevError) -> MdevDevice in
            guard !s.unregistered.contains(pi) else { throw .noDevice("parent \(parent.name) has been unregistered") }
            if let other = s.devices[uuid] {
                throw .exists("an mdev with UUID \(uuid) already exists (type \(other.device.type.id) on \(other.device.parent)); remove it first or pick another UUID")
            }
            try MdevBus.checkFits(type.config, times: 1, free: free(parent.config, s.used[pi]), parent: parent.name, typeID: type.id)
            guard let id = (1..<parent.config.maxVGPUs).first(where: { !s.vgpuIDs[pi].contains($0) }) else {
                throw .noSpace("all \(parent.config.maxVGPUs - 1) vGPU ids of \(parent.name) are in use; remove a vGPU first")
            }
            let t = type.config
            guard let at = s.gm[pi].place(lowMB: t.lowGMMB, highMB: t.highGMMB, parent.config) else {
                throw .noSpace(MdevBus.fragmented(parent.name, type.id, lowMB: t.lowGMMB, highMB: t.highGMMB))
            }
            var group = s.lowestFreeGroup
            while s.iommuGroups.contains(group) { group += 1 }
            s.lowestFreeGroup = group + 1
            let device = MdevDevice(uuid: uuid, parent: parent.name, type: type, vgpuID: id, iommuGroup: group, placement: at)
            var told: [any MdevBusObserver] = []
            for observer in s.live {
                do throws(MdevError) {
                    try observer.bus(self, didCreate: device)
                    told.append(observer)
                } catch {
                    // Nothing is left half-created: undo what the earlier observers built.
                    for done in told.reversed() { done.bus(self, didRemove: device) }
                    throw error
                }
            }
            s.devices[uuid] = DeviceRecord(device: device, aggregation: 1)
            s.vgpuIDs[pi].insert(id)
            s.iommuGroups.insert(group)
            s.gm[pi].insert(at, lowMB: t.lowGMMB, highMB: t.highGMMB)
            MdevBus.charge(&s.used[pi], type.config, times: 1)
            return device
        }
    }

    /// Whether a write of `bytes` to `<uuid>/remove` asks for the removal: `kstrtoul`
    /// rules; 0 asks for nothing.
    public static func removeRequested(_ bytes: [UInt8]) throws(MdevError) -> Bool {
        guard let value = KernelParsing.kstrtoul(bytes) else {
            throw .invalid("remove expects a number (write 1 to remove the device), got '\(KernelParsing.printable(bytes.prefix(64)))'")
        }
        return value != 0
    }

    /// Surprise removal of a parent: its devices go, then the parent leaves the bus.
    public func unregisterParent(_ name: String) throws(MdevError) {
        guard let pi = parentIndex[name] else { throw .noDevice("no parent \(name)") }
        try state.withLock { (s: inout State) throws(MdevError) in
            guard !s.unregistered.contains(pi) else { throw .noDevice("parent \(name) is already unregistered") }
            for uuid in s.devices.values.filter({ $0.device.parent == name }).map(\.device.uuid) {
                try remove(uuid: uuid, &s)
            }
            s.unregistered.insert(pi)
            for observer in s.live.reversed() { observer.bus(self, didUnregister: parents[pi]) }
        }
    }

    public func remove(uuid: String) throws(MdevError) {
        try state.withLock { (s: inout State) throws(MdevError) in try remove(uuid: uuid, &s) }
    }

    private func remove(uuid: String, _ s: inout State) throws(MdevError) {
        guard let record = s.devices.removeValue(forKey: uuid) else {
            throw MdevError.noDevice("mdev \(uuid) does not exist (already removed?)")
        }
        let device = record.device
        let pi = parentIndex[device.parent]!
        s.vgpuIDs[pi].remove(device.vgpuID)
        s.iommuGroups.remove(device.iommuGroup)
        s.lowestFreeGroup = min(s.lowestFreeGroup, device.iommuGroup)
        s.gm[pi].remove(device.placement)
        MdevBus.charge(&s.used[pi], device.type.config, times: -record.aggregation)
        for observer in s.live.reversed() { observer.bus(self, didRemove: device) }
    }

    /// A write to `mdev/aggregated_instances`: re-charges the pool for the new count.
    public func setAggregation(uuid: String, valueBytes bytes: [UInt8]) throws(MdevError) {
        guard let value = KernelParsing.kstrtoul(bytes), value <= Int.max else {
            throw .invalid("aggregated_instances expects a number, got '\(KernelParsing.printable(bytes.prefix(64)))'")
        }
        try setAggregation(uuid: uuid, to: Int(value))
    }

    public func setAggregation(uuid: String, to count: Int) throws(MdevError) {
        try state.withLock { (s: inout State) throws(MdevError) in
            guard let record = s.devices[uuid] else { throw .noDevice("mdev \(uuid) does not exist") }
            let type = record.device.type
            guard type.config.aggregation else {
                throw .invalid("type \(type.id) does not support aggregation")
            }
            guard (1...type.config.maxAggregation).contains(count) else {
                throw .invalid("aggregated_instances must be between 1 and max_aggregation (\(type.config.maxAggregation)), got \(count)")
            }
            let pi = parentIndex[record.device.parent]!
            let extra = count - record.aggregation
            if extra > 0 {
                try MdevBus.checkFits(type.config, times: extra, free: free(parents[pi].config, s.used[pi]),
                                      parent: record.device.parent, typeID: type.id)
            }
            guard extra != 0 else { return }
            for observer in s.live { try observer.bus(self, willAggregate: record.device, to: count) }
            // The vGPU's GM moves to holes of the new size (its own ranges are free for it).
            var ranges = s.gm[pi]
            ranges.remove(record.device.placement)
            let (lowMB, highMB) = (type.config.lowGMMB * count, type.config.highGMMB * count)
            guard let at = ranges.place(lowMB: lowMB, highMB: highMB, parents[pi].config) else {
                throw .noSpace(MdevBus.fragmented(record.device.parent, type.id, lowMB: lowMB, highMB: highMB))
            }
            ranges.insert(at, lowMB: lowMB, highMB: highMB)
            s.gm[pi] = ranges
            MdevBus.charge(&s.used[pi], type.config, times: extra)
            s.devices[uuid]!.aggregation = count
            s.devices[uuid]!.device.placement = at
            let device = s.devices[uuid]!.device
            for observer in s.live { observer.bus(self, didAggregate: device, to: count) }
        }
    }

    // MARK: Pool arithmetic

    private func free(_ p: ParentConfig, _ used: PoolUsage) -> PoolUsage {
        PoolUsage(lowGMMB: p.apertureMB - p.hostLowGMMB - used.lowGMMB,
                  highGMMB: p.hiddenMB - p.hostHighGMMB - used.highGMMB,
                  fences: p.fences - p.hostFences - used.fences)
    }

    static func instances(of t: VGPUTypeConfig, fitting free: PoolUsage) -> Int {
        max(0, min(free.lowGMMB / t.lowGMMB, free.highGMMB / t.highGMMB, free.fences / t.fences))
    }

    static func charge(_ used: inout PoolUsage, _ t: VGPUTypeConfig, times n: Int) {
        used.lowGMMB += t.lowGMMB * n
        used.highGMMB += t.highGMMB * n
        used.fences += t.fences * n
    }

    static func fragmented(_ parent: String, _ typeID: String, lowMB: Int, highMB: Int) -> String {
        "\(parent) has enough graphics memory left in total but no free range of \(lowMB)MB low and \(highMB)MB high GM "
            + "for \(typeID) (the ranges left are fragmented, as GVT-g's allocator can leave them); remove a vGPU next to a gap"
    }

    static func checkFits(_ t: VGPUTypeConfig, times n: Int, free: PoolUsage, parent: String, typeID: String) throws(MdevError) {
        func short(_ what: String, _ need: Int, _ have: Int, _ unit: String) -> MdevError {
            .noSpace("\(parent) has \(have)\(unit) of \(what) left, \(typeID) ×\(n) needs \(need)\(unit); remove a vGPU or pick a smaller type")
        }
        if t.lowGMMB * n > free.lowGMMB { throw short("low graphics memory", t.lowGMMB * n, free.lowGMMB, "MB") }
        if t.highGMMB * n > free.highGMMB { throw short("high graphics memory", t.highGMMB * n, free.highGMMB, "MB") }
        if t.fences * n > free.fences { throw short("fence registers", t.fences * n, free.fences, "") }
    }
}
