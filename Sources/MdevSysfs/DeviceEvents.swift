import Synchronization

/// A device event the kernel would announce (a uevent): what happened to which device.
/// The views describe them; whoever listens (the Simulator's netlink sender) broadcasts them.
public struct DeviceEvent: Sendable, Equatable {
    public let action: String
    /// Relative to /sys, with a leading slash: "/devices/pci0000:00/0000:00:02.0/UUID".
    public let devpath: String
    public let subsystem: String
    /// The device's own variables (its `uevent` file) and the event's (MDEV_STATE=...).
    public let variables: [(String, String)]

    public init(action: String, devpath: String, subsystem: String, variables: [(String, String)] = []) {
        self.action = action
        self.devpath = devpath
        self.subsystem = subsystem
        self.variables = variables
    }

    public static func == (a: DeviceEvent, b: DeviceEvent) -> Bool {
        a.action == b.action && a.devpath == b.devpath && a.subsystem == b.subsystem
            && a.variables.map(\.0) == b.variables.map(\.0) && a.variables.map(\.1) == b.variables.map(\.1)
    }

    /// The kernel's DEVPATH of a directory given relative to the mount ("sys/devices/..."
    /// becomes "/devices/...").
    public static func devpath(mountRelative path: String) -> String {
        precondition(path.hasPrefix("sys/"), "\(path) is not under sys/")
        return String(path.dropFirst(3))
    }

    /// KEY=VALUE lines (a `uevent` file's text) as variables.
    public static func variables(_ text: String) -> [(String, String)] {
        text.split(separator: "\n").compactMap { (line: Substring) -> (String, String)? in
            let parts = line.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            return parts.count == 2 ? (String(parts[0]), String(parts[1])) : nil
        }
    }
}

/// Where the views announce events; nothing is sent until a listener is set.
public final class DeviceEventRelay: Sendable {
    private let listener = Mutex<(@Sendable (DeviceEvent) -> Void)?>(nil)
    public init() {}
    public func listen(_ body: (@Sendable (DeviceEvent) -> Void)?) { listener.withLock { $0 = body } }
    public func announce(_ event: DeviceEvent) {
        if let body = listener.withLock({ $0 }) { body(event) }
    }
}
