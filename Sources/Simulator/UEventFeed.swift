import Foundation
import MdevCore
import MdevSysfs
import Synchronization
import UEvents
import VFIOView
import VirtualFS

/// The events a real host's udev would broadcast for this host's devices, sent into the
/// network namespace the user chose (`.mdevsim/uevent_netns`, `mount --uevent-netns`) and
/// nowhere else: a vGPU created or removed (its add, its vfio-dev node, its bind, and the
/// reverse), a parent unregistered (MDEV_STATE), and every action written to a `uevent` file.
final class UEventFeed: MdevBusObserver, Sendable {
    let sysfs: SysfsView
    let vfio: VFIOView
    private let sender = Mutex<UEventSender?>(nil)

    init(sysfs: SysfsView, vfio: VFIOView) {
        self.sysfs = sysfs
        self.vfio = vfio
        sysfs.events.listen { [weak self] in self?.send($0) }
        sysfs.bus.addObserver(self)
    }

    /// Starts sending into the namespace at `path` ("" stops).
    func attach(_ path: String) throws(FSError) {
        let new = path.isEmpty ? nil : try UEventSender(namespace: path)
        sender.withLock { $0 = new }
    }

    var namespace: String { sender.withLock { $0?.namespace ?? "" } }
    var log: [String] { sender.withLock { $0?.log ?? [] } }

    func send(_ e: DeviceEvent) {
        guard let s = sender.withLock({ $0 }) else { return }
        s.send(UEvent(action: e.action, devpath: e.devpath, subsystem: e.subsystem, properties: e.variables))
    }

    private func events(_ device: MdevDevice, _ parent: MdevParent, adding: Bool) -> [DeviceEvent] {
        let path = DeviceEvent.devpath(mountRelative: SysfsView.devicePath(device, on: parent))
        let driver = [("DRIVER", sysfs.bus.mdevDriver)]
        var node: [DeviceEvent] = []
        if let minor = vfio.cdevMinor(device.uuid) {
            node = [DeviceEvent(action: adding ? "add" : "remove", devpath: path + "/vfio-dev/vfio\(minor)", subsystem: "vfio-dev",
                                variables: DeviceEvent.variables(VFIOView.cdevUevent(minor)))]
        }
        // As the kernel orders them: the mdev is added, its driver's probe registers the
        // vfio device, then the bind; removal unbinds first.
        return adding
            ? [DeviceEvent(action: "add", devpath: path, subsystem: "mdev")] + node + [DeviceEvent(action: "bind", devpath: path, subsystem: "mdev", variables: driver)]
            : [DeviceEvent(action: "unbind", devpath: path, subsystem: "mdev", variables: driver)] + node + [DeviceEvent(action: "remove", devpath: path, subsystem: "mdev")]
    }

    // MARK: MdevBusObserver

    func bus(_ bus: MdevBus, didCreate device: MdevDevice) throws(MdevError) {
        guard sender.withLock({ $0 }) != nil, let parent = bus.parent(named: device.parent) else { return }
        for e in events(device, parent, adding: true) { send(e) }
    }

    func bus(_ bus: MdevBus, didRemove device: MdevDevice) {
        guard sender.withLock({ $0 }) != nil, let parent = bus.parent(named: device.parent) else { return }
        for e in events(device, parent, adding: false) { send(e) }
    }

    func bus(_ bus: MdevBus, didUnregister parent: MdevParent) {
        send(DeviceEvent(action: "change", devpath: DeviceEvent.devpath(mountRelative: SysfsView.parentPath(parent)), subsystem: "pci",
                         variables: DeviceEvent.variables(sysfs.parentUevent(parent)) + [("MDEV_STATE", "unregistered")]))
    }
}
