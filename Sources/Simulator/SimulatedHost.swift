import MdevCore
import MdevSysfs
import VFIOView
import VirtualFS

/// One simulated host: the mdev bus with its sysfs view (`sys/`) and its VFIO
/// view (`vfio/`) on one tree, ready to mount.
public final class SimulatedHost: Sendable {
    public let config: HostConfig
    public let bus: MdevBus
    public let sysfs: SysfsView
    public let vfio: VFIOView
    public var tree: Tree { sysfs.tree }

    public init(config: HostConfig = .builtIn) throws(FSError) {
        self.config = config
        bus = MdevBus(config: config)
        sysfs = try SysfsView(bus: bus)
        vfio = try VFIOView(bus: bus, tree: sysfs.tree)
    }
}
