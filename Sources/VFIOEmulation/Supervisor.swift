import CLinux
import CVFIO
import Foundation
import Migration

/// Serves one seccomp listener: every process under its filter sees
/// /dev/vfio/vfio, /dev/vfio/<group> and /dev/vfio/devices/vfio<N> for the
/// backend's devices, as the kernel's VFIO type1 container, groups and
/// device fds would behave. Everything else the filter reports (opens of
/// other paths) continues to the kernel untouched.
///
/// One thread serves a listener, one call at a time: a call blocks its
/// thread until answered, as it would in the kernel.
public final class Supervisor: @unchecked Sendable {
    /// Emulated fds are placed in this range, which the filter watches.
    public static let fdRange: Range<Int32> = 900..<1000

    let listener: Int32
    let backend: any VFIOBackend
    let log: @Sendable (String) -> Void

    /// Thread group → its fd table (threads share one; forks copy it).
    var tables: [Int32: [Int32: EmulatedFile]] = [:]
    var tgids: [Int32: Int32] = [:]
    var pidfds: [Int32: Int32] = [:]
    /// Groups some process has open (the kernel allows one open of a group).
    var groups: [Int: Group] = [:]
    public internal(set) var stats: [String: Int] = [:]

    public init(listener: Int32, backend: any VFIOBackend, log: @escaping @Sendable (String) -> Void) {
        self.listener = listener
        self.backend = backend
        self.log = log
    }

    enum Reply {
        case value(Int64)
        case error(Int32)
        case proceed
        case answered
    }

    /// Serves until no process is left under the filter (the listener hangs up).
    public func run() {
        var n = mdevsim_notif()
        while true {
            let ready = mdevsim_notif_wait(listener, 1000)
            if ready == 0 || ready < 0 { break }
            if ready == 2 { continue }
            let rc = mdevsim_notif_recv(listener, &n)
            if rc == -ENOENT || rc == -EINTR { continue }   // the caller was interrupted: nothing to answer
            if rc != 0 { log("seccomp listener: NOTIF_RECV failed: \(String(cString: strerror(-rc))); stopping"); break }
            let reply = handle(n)
            let sent: Int32
            switch reply {
            case .value(let v): sent = mdevsim_notif_send(listener, n.id, v, 0, 0)
            case .error(let e): sent = mdevsim_notif_send(listener, n.id, 0, -e, 0)
            case .proceed: sent = mdevsim_notif_send(listener, n.id, 0, 0, 1)
            case .answered: sent = 0
            }
            // ENOENT: the caller was interrupted by a signal meanwhile; expected.
            if sent != 0 && sent != -ENOENT { log("seccomp listener: NOTIF_SEND failed: \(String(cString: strerror(-sent)))") }
        }
        close(listener)
        for fd in pidfds.values { close(fd) }
        pidfds = [:]
        tables = [:]
        groups = [:]
    }

    static let sys: [Int: String] = {
        let names: [(mdevsim_sys, String)] = [
            (MDEVSIM_SYS_OPENAT, "openat"), (MDEVSIM_SYS_OPEN, "open"), (MDEVSIM_SYS_IOCTL, "ioctl"), (MDEVSIM_SYS_PREAD, "pread64"),
            (MDEVSIM_SYS_PWRITE, "pwrite64"), (MDEVSIM_SYS_READ, "read"), (MDEVSIM_SYS_WRITE, "write"), (MDEVSIM_SYS_READV, "readv"),
            (MDEVSIM_SYS_WRITEV, "writev"), (MDEVSIM_SYS_PREADV, "preadv"), (MDEVSIM_SYS_PWRITEV, "pwritev"),
            (MDEVSIM_SYS_PREADV2, "preadv2"), (MDEVSIM_SYS_PWRITEV2, "pwritev2"), (MDEVSIM_SYS_MMAP, "mmap"), (MDEVSIM_SYS_CLOSE, "close"),
            (MDEVSIM_SYS_FCNTL, "fcntl"), (MDEVSIM_SYS_DUP, "dup"), (MDEVSIM_SYS_DUP2, "dup2"), (MDEVSIM_SYS_DUP3, "dup3"), (MDEVSIM_SYS_LSEEK, "lseek"),
        ]
        var m: [Int: String] = [:]
        for (k, v) in names where mdevsim_sys_number(k) >= 0 { m[Int(mdevsim_sys_number(k))] = v }
        return m
    }()

    func handle(_ n: mdevsim_notif) -> Reply {
        let name = Supervisor.sys[Int(n.nr)] ?? "syscall \(n.nr)"
        let mem = CallerMemory(tid: Int32(bitPattern: n.pid))
        let args = [n.args.0, n.args.1, n.args.2, n.args.3, n.args.4, n.args.5]
        do throws(MigrationError) {
            switch name {
            case "openat", "open":
                let path = try mem.string(name == "open" ? args[0] : args[1])
                guard path.hasPrefix("/dev/vfio/") else { return .proceed }
                stats["open", default: 0] += 1
                return try open(path, n, mem)
            default:
                let tgid = threadGroup(Int32(bitPattern: n.pid))
                let fd = Int32(truncatingIfNeeded: name == "mmap" ? args[4] : args[0])
                let file = table(tgid)[fd]
                stats[name, default: 0] += file == nil ? 0 : 1
                switch name {
                case "dup2", "dup3": return try duplicate(to: Int32(truncatingIfNeeded: args[1]), from: fd, file, tgid, n)
                case "dup": return try duplicate(from: fd, file, lowest: Supervisor.fdRange.lowerBound, tgid, n, call: "dup")
                default: break
                }
                guard let file else { return .proceed }   // in the range but not ours: the kernel's
                switch name {
                case "ioctl": return try ioctl(file, request: UInt32(truncatingIfNeeded: args[1]), arg: args[2], tgid, n, mem)
                case "pread64": return try regionAccess(file, write: false, buffer: args[1], count: Int(args[2]), offset: args[3], mem)
                case "pwrite64": return try regionAccess(file, write: true, buffer: args[1], count: Int(args[2]), offset: args[3], mem)
                case "read": return try stream(file, write: false, buffer: args[1], count: Int(args[2]), mem)
                case "write": return try stream(file, write: true, buffer: args[1], count: Int(args[2]), mem)
                case "mmap": return try mmap(file, length: args[1], flags: args[3], offset: args[5])
                case "close":
                    forget(fd, in: tgid)
                    return .proceed
                case "fcntl":
                    let cmd = Int32(truncatingIfNeeded: args[1])
                    if cmd == F_DUPFD || cmd == 1030 /* F_DUPFD_CLOEXEC */ {
                        return try duplicate(from: fd, file, lowest: max(Supervisor.fdRange.lowerBound, Int32(truncatingIfNeeded: args[2])), tgid, n, call: "fcntl(F_DUPFD)")
                    }
                    return .proceed
                case "lseek": return .proceed
                default:
                    log("pid \(n.pid): \(name) on the emulated \(file.name) (fd \(fd)) is not supported; use pread/pwrite and ioctl as QEMU does")
                    return .error(EINVAL)
                }
            }
        } catch {
            if error.errno != ENOTTY { log("pid \(n.pid): \(name): \(error.message)") }
            return .error(error.errno)
        }
    }

    // MARK: fd tables

    func threadGroup(_ tid: Int32) -> Int32 {
        if let g = tgids[tid] { return g }
        let g = ProcFS.status(tid, "Tgid") ?? tid
        if tgids.count > 4096 { tgids = [:] }
        tgids[tid] = g
        return g
    }

    /// The fd table of a thread group; a fork child starts with its parent's
    /// (the emulated fds it still has).
    func table(_ tgid: Int32) -> [Int32: EmulatedFile] {
        if let t = tables[tgid] { return t }
        guard let parent = ProcFS.status(tgid, "PPid"), let inherited = tables[parent] else { return [:] }
        let t = inherited.filter { ProcFS.hasFD(tgid, $0.key) }
        tables[tgid] = t
        return t
    }

    func forget(_ fd: Int32, in tgid: Int32) {
        guard let file = tables[tgid]?.removeValue(forKey: fd) else { return }
        if case .group(let g) = file.kind, !tables.values.contains(where: { $0.values.contains { if case .group(let o) = $0.kind { o === g } else { false } } }) {
            // The last fd of the group: it leaves its container, as on the kernel's release.
            if let c = g.container { c.groups.removeAll { $0 === g }; if c.groups.isEmpty { c.iommu = nil; c.mappings = [] } }
            g.container = nil
            groups[g.id] = nil
        }
    }

    func freeFD(_ tgid: Int32, from lowest: Int32) -> Int32? {
        let t = table(tgid)
        return (max(lowest, Supervisor.fdRange.lowerBound)..<Supervisor.fdRange.upperBound).first { t[$0] == nil && !ProcFS.hasFD(tgid, $0) }
    }

    /// Puts a new emulated fd into the caller; with `send` it is the call's result.
    func inject(_ file: EmulatedFile, _ n: mdevsim_notif, tgid: Int32, send: Bool, at wanted: Int32? = nil) throws(MigrationError) -> Int32 {
        guard let fd = wanted ?? freeFD(tgid, from: Supervisor.fdRange.lowerBound) else {
            throw MigrationError(EMFILE, "no free fd left in \(Supervisor.fdRange.lowerBound)-\(Supervisor.fdRange.upperBound - 1), where emulated VFIO fds live; close some VFIO fds")
        }
        let got = mdevsim_notif_addfd(listener, n.id, file.memfd, fd, send ? 1 : 0)
        guard got >= 0 else { throw MigrationError(-got, "cannot place the \(file.name) fd into pid \(tgid): \(String(cString: strerror(-got)))") }
        _ = table(tgid)
        tables[tgid, default: [:]][got] = file
        return got
    }

    /// dup, F_DUPFD: the copy is placed in the range too, and tracked.
    func duplicate(from fd: Int32, _ file: EmulatedFile?, lowest: Int32, _ tgid: Int32, _ n: mdevsim_notif, call: String) throws(MigrationError) -> Reply {
        guard let file else { return .proceed }
        guard lowest < Supervisor.fdRange.upperBound, let target = freeFD(tgid, from: lowest) else {
            throw MigrationError(EINVAL, "\(call) of the emulated \(file.name) (fd \(fd)) would copy it outside \(Supervisor.fdRange.lowerBound)-\(Supervisor.fdRange.upperBound - 1), where it could no longer be emulated; refused")
        }
        _ = try inject(file, n, tgid: tgid, send: true, at: target)
        return .answered
    }

    /// dup2/dup3: a copy onto a number in the range is tracked; one outside is refused.
    func duplicate(to newfd: Int32, from fd: Int32, _ file: EmulatedFile?, _ tgid: Int32, _ n: mdevsim_notif) throws(MigrationError) -> Reply {
        guard let file else {
            // A real fd over one of ours: the kernel closes ours.
            if table(tgid)[newfd] != nil { forget(newfd, in: tgid) }
            return .proceed
        }
        if newfd == fd { return .value(Int64(fd)) }
        guard Supervisor.fdRange.contains(newfd) else {
            throw MigrationError(EBADF, "dup2/dup3 of the emulated \(file.name) (fd \(fd)) to fd \(newfd) would take it outside \(Supervisor.fdRange.lowerBound)-\(Supervisor.fdRange.upperBound - 1), where it could no longer be emulated; refused")
        }
        forget(newfd, in: tgid)
        _ = try inject(file, n, tgid: tgid, send: true, at: newfd)
        return .answered
    }

    func pidfd(_ tgid: Int32) throws(MigrationError) -> Int32 {
        if let p = pidfds[tgid] { return p }
        let p = mdevsim_pidfd_open(tgid)
        guard p >= 0 else { throw MigrationError(-p, "pidfd_open(\(tgid)) failed: \(String(cString: strerror(-p)))") }
        pidfds[tgid] = p
        return p
    }

    // MARK: open

    func open(_ path: String, _ n: mdevsim_notif, _ mem: CallerMemory) throws(MigrationError) -> Reply {
        let tgid = threadGroup(Int32(bitPattern: n.pid))
        let rest = path.dropFirst("/dev/vfio/".count)
        let file: EmulatedFile
        if rest == "vfio" {
            file = EmulatedFile(.container(Container()), memfd: try memfd("mdevsim-vfio-container", 0))
        } else if let id = Int(rest), id >= 0 {
            let devices = backend.devices(inGroup: id)
            guard !devices.isEmpty else { throw MigrationError(ENOENT, "\(path): no simulated device is in IOMMU group \(id)") }
            guard groups[id] == nil else { throw MigrationError(EBUSY, "\(path) is already open (the kernel allows one open of a group)") }
            let g = Group(id: id, devices: devices)
            groups[id] = g
            file = EmulatedFile(.group(g), memfd: try memfd("mdevsim-vfio-group", 0))
        } else if rest.hasPrefix("devices/vfio"), let minor = Int(rest.dropFirst("devices/vfio".count)), let device = backend.device(cdevMinor: minor) {
            file = EmulatedFile(.device(try openDevice(device)), memfd: -1)
        } else {
            throw MigrationError(ENOENT, "\(path): no such emulated VFIO node (there are /dev/vfio/vfio, /dev/vfio/<group> and /dev/vfio/devices/vfio<N>)")
        }
        do throws(MigrationError) { _ = try inject(file, n, tgid: tgid, send: true) } catch {
            if case .group(let g) = file.kind { groups[g.id] = nil }
            throw error
        }
        log("pid \(tgid): opened \(path) as the emulated \(file.name)")
        return .answered
    }

    func memfd(_ name: String, _ size: UInt64) throws(MigrationError) -> Int32 {
        let fd = mdevsim_memfd(name, size)
        guard fd >= 0 else { throw MigrationError(-fd, "memfd_create failed: \(String(cString: strerror(-fd)))") }
        return fd
    }

    func openDevice(_ device: any EmulatedVFIODevice) throws(MigrationError) -> DeviceHandle {
        let m = try memfd("mdevsim-vfio-device:\(device.name)", UInt64(device.numRegions + 1) << VFIORegionOffset.shift)
        let handle = DeviceHandle(device: device, memfd: m)
        device.setInterruptSink(handle)
        return handle
    }
}

/// Regions sit at `index << 40` in the device fd, as vfio-pci places them.
public enum VFIORegionOffset {
    public static let shift: UInt64 = 40
    public static func split(_ offset: UInt64) -> (index: Int, offset: Int) {
        (Int(offset >> shift), Int(offset & ((1 << shift) - 1)))
    }
}
