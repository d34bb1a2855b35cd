import ArgumentParser
import Faults
import Foundation
import FuseBridge
import Logging
import MdevCore
import RealDevice
import Simulator
import SysfsSnapshot
import VirtualFS

struct Wait: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Wait until DIR is an mdevsim mount that answers (exit 0), or the timeout passes (exit 1).",
        discussion: """
        For scripts that start the daemon in the background:
          mdevsim mount /tmp/mdev &
          mdevsim wait /tmp/mdev && mdevsim exec /tmp/mdev -- mdevctl types
        """
    )

    @Argument(help: "The directory the daemon mounts.")
    var directory: String

    @Option(help: "Seconds to wait.")
    var timeout: Double = 10

    func run() throws {
        let deadline = Date().addingTimeInterval(timeout)
        while !Ready.serving(directory) {
            guard Date() < deadline else {
                throw CLIError("\(directory) is not served by mdevsim after \(timeout) s; is `mdevsim mount \(directory)` running (see its log)?")
            }
            usleep(20_000)
        }
    }
}

struct Unmount: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Unmount a directory mounted by `mdevsim mount` (the daemon then exits).",
        discussion: "Example: mdevsim unmount /tmp/mdev"
    )

    @Argument(help: "The mounted directory.")
    var directory: String

    func run() throws {
        guard let entry = MountTable.mount(at: directory) else {
            throw CLIError(FileManager.default.fileExists(atPath: directory) ? "\(directory) is not a mount point" : "\(directory) does not exist")
        }
        guard entry.fstype == "fuse.mdevsim" else {
            throw CLIError("\(directory) is a \(entry.fstype) mount, not an mdevsim one; leaving it alone")
        }
        let daemon = (try? String(contentsOfFile: directory + "/.mdevsim/pid", encoding: .utf8))
            .flatMap { pid_t($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        if let problem = Unmounter.detach(directory) {
            throw CLIError(problem)
        }
        // The daemon ends when the last copy of the mount goes; a copy held in
        // another mount namespace (a running `mdevsim exec`) would keep it
        // serving, so after a moment the connection is ended outright.
        guard let daemon, daemon != getpid() else { return }
        func ended(within seconds: Double) -> Bool {
            let deadline = Date().addingTimeInterval(seconds)
            while Date() < deadline {
                if kill(daemon, 0) != 0 && errno == ESRCH { return true }
                // Exited but not yet reaped (its parent, `mount --daemon`, is gone).
                if let stat = try? String(contentsOfFile: "/proc/\(daemon)/stat", encoding: .utf8),
                   let close = stat.lastIndex(of: ")"), stat[stat.index(close, offsetBy: 2)] == "Z" { return true }
                usleep(10_000)
            }
            return false
        }
        if ended(within: 0.5) { return }
        MountTable.abortConnection(entry.minor)
        if !ended(within: 1.5) {
            throw CLIError("unmounted \(directory), but its daemon (pid \(daemon)) is still running; end it with kill \(daemon)")
        }
    }
}
