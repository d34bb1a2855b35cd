import ArgumentParser
import Foundation
import CLinux
import VFIOEmulation

struct Exec: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a command that sees the simulated tree as /sys.",
        discussion: """
        Tools that hard-code /sys (the mdevctl Debian ships has no root override) see the
        simulator when run through exec: the command runs in a private mount namespace
        with DIR/sys bound over /sys and a scratch directory over /etc/mdevctl.d, so
        nothing outside the command changes, and SYSTEMD_DEVICE_VERIFY_SYSFS=0 so that
        libudev (udevadm, libvirt) accepts a /sys that is not sysfs. Definitions made by `mdevctl define` persist
        in that scratch directory between exec calls for the same DIR: it lives under
        /run/mdevsim/exec/, owned by root and private (0700), because mdevctl runs what
        its scripts.d/callouts holds as root; a directory there, or one given with
        --mdevctl-dir, that another user owns or could write is refused. Needs root.

          mdevsim exec /tmp/mdev -- mdevctl types
          mdevsim exec /tmp/mdev -- mdevctl start -p 0000:00:02.0 -t i915-GVTg_V5_4
          mdevsim exec /tmp/mdev -- mdevctl list

        With --vfio the command also gets the kernel's VFIO interfaces for every
        simulated vGPU, with no kernel module: /dev/vfio/vfio (a type1 container),
        /dev/vfio/<group> (the group in the vGPU's iommu_group link) and
        /dev/vfio/devices/vfio<N> (its vfio-dev node), emulated by the mount's daemon
        through a seccomp user-notification filter on the command and its children.
        Emulated fds are numbered 900-999. An unmodified QEMU can then attach a vGPU:

          mdevsim exec /tmp/mdev --vfio -- qemu-system-x86_64 -M q35 -nodefaults \\
              -display none -device vfio-pci,sysfsdev=/sys/bus/mdev/devices/UUID

        With --libvirt an unmodified libvirtd manages the simulated host in isolation
        (its state private to DIR, device events in its own network namespace):

          mdevsim exec /tmp/mdev --libvirt -- libvirtd --daemon
          mdevsim exec /tmp/mdev --libvirt -- virsh -c nodedev:///system \\
              nodedev-list --cap mdev_types
        """
    )

    @Argument(help: "A directory mounted by `mdevsim mount`.")
    var directory: String

    @Option(name: .long, help: "Directory bound over /etc/mdevctl.d (default: a private per-mount directory under /run/mdevsim/exec). It must be yours and writable by no one else.")
    var mdevctlDir: String?

    @Flag(name: .long, help: "Emulate /dev/vfio for the command (VFIO container, groups and device fds of the simulated vGPUs).")
    var vfio = false

    @Option(name: .long, help: ArgumentHelp(
        "Run the command in the network namespace /run/netns/NAME (made with `ip netns add` if missing) and send the mount's device events there.",
        discussion: "libudev listeners in that namespace (udevadm monitor, libvirt) see vGPUs come and go; nothing on the host does.",
        valueName: "NAME"))
    var netns: String?

    @Flag(name: .long, help: "An isolated libvirt: private /run/libvirt, /var/{lib,log,cache}/libvirt per mount (shared by every exec of DIR), only the nodedev driver, and a network namespace (--netns, default mdevsim-<mount>).")
    var libvirt = false

    @Argument(parsing: .postTerminator, help: "The command and its arguments, after --.")
    var command: [String] = []

    func validate() throws {
        guard !command.isEmpty else {
            throw ValidationError("give the command after --, for example: mdevsim exec \(directory) -- mdevctl types")
        }
    }

    func run() throws {
        let root = URL(fileURLWithPath: directory).standardizedFileURL.path
        let sys = root + "/sys"
        guard FileManager.default.fileExists(atPath: sys + "/class/mdev_bus") else {
            throw CLIError("\(root) is not an mdevsim mount (\(sys)/class/mdev_bus is missing); start one with: mdevsim mount \(root)")
        }
        var vfioSocket: String?
        if vfio {
            let text = (try? String(contentsOfFile: root + "/.mdevsim/vfio_socket", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
            guard !text.isEmpty else {
                throw CLIError("\(root)/.mdevsim/vfio_socket is empty: the mount's daemon offers no VFIO emulation (was it started with --no-vfio-emulation, or is it older?)")
            }
            vfioSocket = text
        }
        let etc: String
        if let mdevctlDir {
            etc = URL(fileURLWithPath: mdevctlDir).standardizedFileURL.path
            try PrivateDirectory.make(etc)
        } else {
            etc = try Exec.scratchDirectory(for: root)
        }
        for sub in ["/scripts.d", "/scripts.d/callouts", "/scripts.d/notifiers"] {
            try PrivateDirectory.make(etc + sub)
        }
        let state = try Exec.stateDirectory(for: root)
        var namespace = netns
        if libvirt && namespace == nil { namespace = "mdevsim-" + URL(fileURLWithPath: state).lastPathComponent }
        var netnsFD: Int32 = -1
        if let namespace {
            guard !namespace.isEmpty, !namespace.contains("/"), namespace != ".", namespace != ".." else {
                throw CLIError("--netns \(namespace): give a name (it lives at /run/netns/NAME)")
            }
            let path = "/run/netns/" + namespace
            // One exec at a time makes it (libvirtd and virsh are often started together).
            let lock = open(state + "/netns.lock", O_CREAT | O_RDWR | O_CLOEXEC, 0o600)
            if lock >= 0 { flock(lock, LOCK_EX) }
            defer { if lock >= 0 { close(lock) } }
            if !FileManager.default.fileExists(atPath: path) {
                let ip = Process()
                ip.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
                ip.arguments = ["netns", "add", namespace]
                do { try ip.run() } catch { throw CLIError("--netns: cannot run /usr/sbin/ip to make \(path): \(error) (apt-get install iproute2)") }
                ip.waitUntilExit()
                // Another exec of the same mount may have made it meanwhile.
                guard ip.terminationStatus == 0 || FileManager.default.fileExists(atPath: path) else { throw CLIError("--netns: ip netns add \(namespace) failed (status \(ip.terminationStatus))") }
            }
            // `ip netns add` creates the file, then mounts the namespace on it: another exec
            // may be between the two. Wait (2 s at most) until it is a namespace (nsfs).
            for _ in 0..<200 {
                netnsFD = open(path, O_RDONLY | O_CLOEXEC)
                guard netnsFD >= 0 else { throw CLIError("--netns: cannot open \(path): \(String(cString: strerror(errno)))") }
                if mdevsim_is_namespace(netnsFD) == 1 { break }
                close(netnsFD)
                netnsFD = -1
                usleep(10_000)
            }
            guard netnsFD >= 0 else { throw CLIError("--netns: \(path) is not a network namespace (not on nsfs); remove it, or ip netns delete \(namespace)") }
            // The daemon's device events go into that namespace from now on.
            do { try (path + "\n").write(toFile: root + "/.mdevsim/uevent_netns", atomically: false, encoding: .utf8) } catch {
                throw CLIError("--netns: the mount's daemon refused \(path) for its events: \(error)")
            }
        }
        var libvirtDirs: [(String, String)] = []
        if libvirt {
            let base = state + "/libvirt"
            try PrivateDirectory.make(base)
            for (name, target) in [("run", "/run/libvirt"), ("lib", "/var/lib/libvirt"), ("log", "/var/log/libvirt"), ("cache", "/var/cache/libvirt")] {
                try PrivateDirectory.make(base + "/" + name)
                libvirtDirs.append((base + "/" + name, target))
            }
            // libvirtd's pid file lives in /run itself: a private one, so it runs beside the host's.
            let pid = base + "/libvirtd.pid"
            if !FileManager.default.fileExists(atPath: pid) { FileManager.default.createFile(atPath: pid, contents: nil, attributes: [.posixPermissions: 0o600]) }
            libvirtDirs.append((pid, "/run/libvirtd.pid"))
            // Only the node-device driver: a simulated host offers nothing the others need.
            let drivers = base + "/drivers"
            try PrivateDirectory.make(drivers)
            let nodedev = "/usr/lib/x86_64-linux-gnu/libvirt/connection-driver/libvirt_driver_nodedev.so"
            guard FileManager.default.fileExists(atPath: nodedev) else {
                throw CLIError("--libvirt: \(nodedev) is missing (apt-get install libvirt-daemon)")
            }
            let link = drivers + "/libvirt_driver_nodedev.so"
            func linked() -> Bool { (try? FileManager.default.destinationOfSymbolicLink(atPath: link)) == nodedev }
            if !linked() {
                unlink(link)
                // Another exec of this mount (libvirtd and virsh often start together) may make it between the two.
                let rc = symlink(nodedev, link), err = errno
                guard rc == 0 || (err == EEXIST && linked()) else {
                    throw CLIError("--libvirt: cannot link the nodedev driver into \(drivers): \(String(cString: strerror(err)))")
                }
            }
            setenv("LIBVIRT_DRIVER_DIR", drivers, 1)
        }

        guard linux_unshare(cloneNewNS) == 0 else {
            throw CLIError("cannot make a private mount namespace: \(String(cString: strerror(errno))); mdevsim exec needs root (CAP_SYS_ADMIN)")
        }
        guard mount("none", "/", nil, UInt(MS_REC | MS_PRIVATE), nil) == 0 else {
            throw CLIError("cannot make / private in the new namespace: \(String(cString: strerror(errno)))")
        }
        try bind(sys, over: "/sys")
        if !FileManager.default.fileExists(atPath: "/etc/mdevctl.d") {
            try? FileManager.default.createDirectory(atPath: "/etc/mdevctl.d", withIntermediateDirectories: true)
        }
        try bind(etc, over: "/etc/mdevctl.d")
        for (source, target) in libvirtDirs {
            if !FileManager.default.fileExists(atPath: target) {
                if target.hasSuffix(".pid") { FileManager.default.createFile(atPath: target, contents: nil) }
                else { try? FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: true) }
            }
            try bind(source, over: target)
        }
        if netnsFD >= 0 {
            let rc = mdevsim_setns(netnsFD, cloneNewNet)
            guard rc == 0 else { throw CLIError("--netns: cannot enter the network namespace: \(String(cString: strerror(-rc)))") }
            close(netnsFD)
        }

        // libudev believes only a sysfs /sys; the simulated one is FUSE (see libvirt-nodedev.md).
        setenv("SYSTEMD_DEVICE_VERIFY_SYSFS", "0", 1)
        var argv: [UnsafeMutablePointer<CChar>?] = command.map { strdup($0) }
        if let vfioSocket {
            // Last: from here on this process (and the command it becomes) is under the filter.
            do { try EmulationClient.attach(socket: vfioSocket) } catch { throw CLIError("--vfio: \(error.message)") }
        }
        argv.append(nil)
        execvp(command[0], &argv)
        let err = errno
        throw CLIError("cannot run \(command[0]): \(String(cString: strerror(err)))")
    }

    private func bind(_ source: String, over target: String) throws {
        guard mount(source, target, nil, UInt(MS_BIND | MS_REC), nil) == 0 else {
            throw CLIError("cannot bind \(source) over \(target): \(String(cString: strerror(errno)))")
        }
    }

    /// Where the private per-mount directories live (`MDEVSIM_STATE_DIR` for tests).
    static var stateBase: String { ProcessInfo.processInfo.environment["MDEVSIM_STATE_DIR"] ?? "/run/mdevsim" }

    /// One private directory per mount directory (its /etc/mdevctl.d, its libvirt state),
    /// so state persists between calls: every level made 0700 and checked to be ours.
    static func stateDirectory(for root: String) throws -> String {
        let hash = root.utf8.reduce(0xcbf2_9ce4_8422_2325 as UInt64) { ($0 ^ UInt64($1)) &* 0x0000_0100_0000_01b3 }
        let name = (root.split(separator: "/").last.map(String.init) ?? "root").filter { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "." }
        var path = ""
        for part in [stateBase, "exec", "\(name)-\(String(hash, radix: 16))"] {
            path = path.isEmpty ? part : path + "/" + part
            try PrivateDirectory.make(path)
        }
        return path
    }

    /// One private /etc/mdevctl.d per mount directory, so definitions persist between calls.
    static func scratchDirectory(for root: String) throws -> String {
        let path = try stateDirectory(for: root) + "/mdevctl.d"
        try PrivateDirectory.make(path)
        return path
    }
}

// glibc declares unshare(2) only under _GNU_SOURCE, which Swift's Glibc module
// does not define; bind the symbol directly. CLONE_NEWNS from <linux/sched.h>.
@_silgen_name("unshare") private func linux_unshare(_ flags: Int32) -> Int32
private let cloneNewNS: Int32 = 0x0002_0000
private let cloneNewNet: Int32 = 0x4000_0000
