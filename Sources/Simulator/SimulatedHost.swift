import Faults
import Foundation
import MdevCore
#if canImport(Glibc)
import Glibc
#endif
import MdevSysfs
import Migration
import StateStream
import Synchronization
import VFIOEmulation
import VFIOView
import VirtualFS

/// One simulated host: the mdev bus with its sysfs view (`sys/`) and its VFIO
/// view (`vfio/`) on one tree, ready to mount.
public final class SimulatedHost: Sendable {
    public let config: HostConfig
    public let bus: MdevBus
    public let sysfs: SysfsView
    public let vfio: VFIOView
    public let faults: FaultInjector
    public var tree: Tree { sysfs.tree }
    private let emulation = Mutex<EmulationServer?>(nil)
    let uevents: UEventFeed

    /// Sends this host's device events into the network namespace at `path` ("" stops).
    public func sendUEvents(into path: String) throws(FSError) { try uevents.attach(path) }

    /// `onFault` is told of every fault that fires (the daemon logs it).
    public init(config: HostConfig = .builtIn, tree: Tree = Tree(), onFault: @escaping @Sendable (String) -> Void = { _ in }) throws(FSError) {
        self.config = config
        bus = MdevBus(config: config)
        // A recorded tree may already hold real devices; a simulated parent must not shadow one.
        for parent in bus.parents {
            for path in [SysfsView.parentPath(parent), "sys/bus/pci/devices/\(parent.name)"]
            where (try? tree.update { (c: inout TreeContents) throws(FSError) -> Inode in try c.resolveLive(path).ino }) != nil {
                throw FSError(EEXIST, "\(parent.name) is both in the recorded or mirrored tree (\(path)) and a simulated parent; move the simulated parent to another address in the config")
            }
        }
        sysfs = try SysfsView(bus: bus, tree: tree)
        faults = FaultInjector(onFire: onFault)
        vfio = try VFIOView(bus: bus, tree: sysfs.tree, events: sysfs.events, migrationFaults: faults)
        vfio.holdRemovals(sysfs.removalGate)
        uevents = UEventFeed(sysfs: sysfs, vfio: vfio)
        try faults.addControlFiles(to: sysfs.tree)
        sysfs.tree.setHook(faults)
        try addSurpriseRemoval()
    }

    /// `.mdevsim/surprise_remove`: write `device UUID` or `parent BDF` and it
    /// disappears at once, open files and all (later accesses get ENODEV).
    private func addSurpriseRemoval() throws(FSError) {
        let bus = self.bus
        let faults = self.faults
        try sysfs.tree.update { (c: inout TreeContents) throws(FSError) in
            let dir = try c.directories(".mdevsim")
            // The serving process, so `mdevsim unmount` can wait for it to end.
            try c.attribute("pid", in: dir, .constant("\(getpid())\n"))
            // The network namespace device events go to (none: they go nowhere); write a path to choose one.
            try c.attribute("uevent_netns", in: dir, Attribute(
                show: { [weak self] in (self?.uevents.namespace).map { $0.isEmpty ? "" : $0 + "\n" } ?? "" },
                store: { [weak self] (bytes: [UInt8]) throws(FSError) in
                    try self?.uevents.attach(String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
                }), permissions: 0o600)
            // The events sent so far (SEQNUM ACTION DEVPATH SUBSYSTEM), newest last.
            try c.attribute("uevents", in: dir, Attribute(show: { [weak self] in (self?.uevents.log ?? []).map { $0 + "\n" }.joined() }))
            // Where `mdevsim exec --vfio` hands its processes to this host's VFIO emulation ("" when not served).
            try c.attribute("vfio_socket", in: dir, Attribute(show: { [weak self] in self?.emulation.withLock { $0.map { $0.path + "\n" } } ?? "" }))
            try c.attribute("surprise_remove", in: dir, Attribute(store: { (bytes: [UInt8]) throws(FSError) in
                let words = String(decoding: bytes, as: UTF8.self).split(whereSeparator: \.isWhitespace).map(String.init)
                guard words.count == 2, ["device", "parent"].contains(words[0]) else {
                    throw .invalid("write 'device UUID' or 'parent BDF'")
                }
                do throws(MdevError) {
                    if words[0] == "device" { try bus.remove(uuid: words[1].lowercased()) } else { try bus.unregisterParent(words[1]) }
                } catch { throw FSError(error.errno, error.message) }
                faults.note("surprise removal of \(words[0]) \(words[1])")
            }))
        }
    }

    /// Serves the kernel's VFIO uAPI for this host's vGPUs to processes that
    /// `mdevsim exec --vfio` hands over through the Unix socket at `path`.
    @discardableResult
    public func serveVFIO(socket path: String, log: @escaping @Sendable (String) -> Void) throws(MigrationError) -> EmulationServer {
        let server = try EmulationServer(path: path, backend: vfio, log: log)
        emulation.withLock { $0?.stop(); $0 = server }
        return server
    }

    public func stopVFIO() { emulation.withLock { $0?.stop(); $0 = nil } }

    /// Creates a replay device: a vGPU of the blob's type whose save stream is
    /// the blob byte for byte and whose resume accepts only exactly that blob.
    @discardableResult
    public func addReplayDevice(blob: [UInt8], uuid: String) throws -> MdevDevice {
        var parser = StreamParser()
        var header: StreamHeader?
        if let events = try? parser.feed(Array(blob.prefix(StreamFormat.maxHeader + 64))) {
            for case .header(let h, _) in events { header = h }
        }
        guard let header else { throw ConfigError("the replay blob has no readable mdevsim stream header") }
        guard let typeID = header.parameter("type"),
              let type = bus.parents.lazy.compactMap({ $0.type(id: typeID) }).first else {
            throw ConfigError("the replay blob is of type '\(header.parameter("type") ?? "?")', which no parent of this host offers")
        }
        vfio.setReplay(uuid: uuid.lowercased(), blob: blob, identity: header)
        let device: MdevDevice
        do { device = try bus.create(type: type, uuidBytes: Array(uuid.utf8)) } catch { throw ConfigError("cannot create the replay device: \(error)") }
        if let n = header.parameter("aggregation").flatMap(Int.init), n > 1 {
            do { try bus.setAggregation(uuid: device.uuid, to: n) } catch { throw ConfigError("cannot aggregate the replay device ×\(n): \(error)") }
        }
        return device
    }
}
