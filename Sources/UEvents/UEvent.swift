import CLinux
import Foundation
import Synchronization
import VirtualFS

/// One device event as udev broadcasts it after processing the kernel's: an action on a
/// device path with its subsystem and properties.
public struct UEvent: Sendable, Equatable {
    public var action: String
    /// Below /sys, with a leading slash: "/devices/pci0000:00/0000:00:02.0".
    public var devpath: String
    public var subsystem: String
    public var devtype: String?
    public var properties: [(String, String)]

    public init(action: String, devpath: String, subsystem: String, devtype: String? = nil, properties: [(String, String)] = []) {
        self.action = action
        self.devpath = devpath
        self.subsystem = subsystem
        self.devtype = devtype
        self.properties = properties
    }

    public static func == (a: UEvent, b: UEvent) -> Bool {
        a.action == b.action && a.devpath == b.devpath && a.subsystem == b.subsystem && a.devtype == b.devtype
            && a.properties.map(\.0) == b.properties.map(\.0) && a.properties.map(\.1) == b.properties.map(\.1)
    }

    /// The message libudev's monitor accepts (systemd's monitor_netlink_header, 40 bytes,
    /// then NUL-terminated KEY=VALUE properties).
    public func libudevMessage(seqnum: UInt64) -> [UInt8] {
        var props = [("ACTION", action), ("DEVPATH", devpath), ("SUBSYSTEM", subsystem)]
        if let devtype { props.append(("DEVTYPE", devtype)) }
        props += properties
        props.append(("SEQNUM", "\(seqnum)"))
        var body: [UInt8] = []
        for (k, v) in props { body += Array("\(k)=\(v)".utf8) + [0] }
        var header = [UInt8](repeating: 0, count: 40)
        header.replaceSubrange(0..<8, with: Array("libudev".utf8) + [0])
        func be(_ at: Int, _ v: UInt32) { for i in 0..<4 { header[at + i] = UInt8((v >> (8 * UInt32(3 - i))) & 0xff) } }
        func host(_ at: Int, _ v: UInt32) { for i in 0..<4 { header[at + i] = UInt8((v >> (8 * UInt32(i))) & 0xff) } }
        be(8, 0xfeed_cafe)
        host(12, 40)                          // header_size
        host(16, 40)                          // properties_off
        host(20, UInt32(body.count))          // properties_len
        be(24, UEvent.murmur2(Array(subsystem.utf8)))
        be(28, devtype.map { UEvent.murmur2(Array($0.utf8)) } ?? 0)
        // No tags: an empty bloom filter (28 + 4: hi, lo).
        return header + body
    }

    /// MurmurHash2 with seed 0, as systemd's string_hash32.
    static func murmur2(_ key: [UInt8]) -> UInt32 {
        let m: UInt32 = 0x5bd1_e995
        var h = UInt32(truncatingIfNeeded: key.count)
        var i = 0
        while key.count - i >= 4 {
            var k = UInt32(key[i]) | UInt32(key[i + 1]) << 8 | UInt32(key[i + 2]) << 16 | UInt32(key[i + 3]) << 24
            k = k &* m
            k ^= k >> 24
            k = k &* m
            h = h &* m
            h ^= k
            i += 4
        }
        let left = key.count - i
        if left >= 3 { h ^= UInt32(key[i + 2]) << 16 }
        if left >= 2 { h ^= UInt32(key[i + 1]) << 8 }
        if left >= 1 { h ^= UInt32(key[i]); h = h &* m }
        h ^= h >> 13
        h = h &* m
        h ^= h >> 15
        return h
    }
}

/// Sends events into one network namespace, as udev's daemon would on a host: to the
/// netlink group libudev listens on (2). Only the namespace given: a simulated device
/// never reaches the host's own listeners unless the host's namespace is what was given.
public final class UEventSender: Sendable {
    public let namespace: String
    let socket: Int32
    private let seqnum = Atomic<UInt64>(0)
    /// Every event sent, newest last (bounded), for `.mdevsim/uevents` and tests.
    private let recent = Mutex<[String]>([])

    public init(namespace path: String) throws(FSError) {
        let ns = open(path, O_RDONLY | O_CLOEXEC)
        guard ns >= 0 else {
            throw FSError(errno, "cannot open the network namespace \(path): \(String(cString: strerror(errno))); give a path such as /run/netns/NAME (ip netns add NAME) or /proc/PID/ns/net")
        }
        defer { close(ns) }
        let s = mdevsim_uevent_socket(ns)
        guard s >= 0 else {
            throw FSError(-s, "cannot open a uevent socket in \(path): \(String(cString: strerror(-s))) (is it a network namespace? setns needs CAP_SYS_ADMIN)")
        }
        namespace = path
        socket = s
    }

    deinit { close(socket) }

    public func send(_ event: UEvent) {
        let n = seqnum.add(1, ordering: .relaxed).newValue
        let message = event.libudevMessage(seqnum: n)
        _ = message.withUnsafeBytes { mdevsim_uevent_send(socket, 2, $0.baseAddress, $0.count) }
        recent.withLock { r in
            r.append("\(n) \(event.action) \(event.devpath) \(event.subsystem)")
            if r.count > 256 { r.removeFirst(r.count - 256) }
        }
    }

    /// The last events sent, one line each: SEQNUM ACTION DEVPATH SUBSYSTEM.
    public var log: [String] { recent.withLock { $0 } }
}
