import ArgumentParser
import Foundation

struct Exec: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a command that sees the simulated tree as /sys.",
        discussion: """
        Tools that hard-code /sys (the mdevctl Debian ships has no root override) see the
        simulator when run through exec: the command runs in a private mount namespace
        with DIR/sys bound over /sys and a scratch directory over /etc/mdevctl.d, so
        nothing outside the command changes. Definitions made by `mdevctl define` persist
        in that scratch directory between exec calls for the same DIR. Needs root.

          mdevsim exec /tmp/mdev -- mdevctl types
          mdevsim exec /tmp/mdev -- mdevctl start -p 0000:00:02.0 -t i915-GVTg_V5_4
          mdevsim exec /tmp/mdev -- mdevctl list
        """
    )

    @Argument(help: "A directory mounted by `mdevsim mount`.")
    var directory: String

    @Option(name: .long, help: "Directory bound over /etc/mdevctl.d (default: a per-mount scratch directory under /tmp).")
    var mdevctlDir: String?

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
        let etc = mdevctlDir ?? Exec.scratchDirectory(for: root)
        for sub in ["", "/scripts.d/callouts", "/scripts.d/notifiers"] {
            do {
                try FileManager.default.createDirectory(atPath: etc + sub, withIntermediateDirectories: true)
            } catch {
                throw CLIError("cannot create \(etc + sub): \(error.localizedDescription)")
            }
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

        var argv: [UnsafeMutablePointer<CChar>?] = command.map { strdup($0) }
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

    /// One scratch /etc/mdevctl.d per mount directory, so definitions persist between calls.
    static func scratchDirectory(for root: String) -> String {
        let key = root.replacingOccurrences(of: "/", with: "_")
        return NSTemporaryDirectory().appending("mdevsim-exec/\(key)/mdevctl.d")
    }
}

// glibc declares unshare(2) only under _GNU_SOURCE, which Swift's Glibc module
// does not define; bind the symbol directly. CLONE_NEWNS from <linux/sched.h>.
@_silgen_name("unshare") private func linux_unshare(_ flags: Int32) -> Int32
private let cloneNewNS: Int32 = 0x0002_0000
