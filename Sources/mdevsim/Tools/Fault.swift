import ArgumentParser
import Foundation
import Faults
import Migration
import RealDevice
import SysfsSnapshot
import Toolkit

struct Fault: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Add, list and clear fault rules of a running mount (DIR/.mdevsim/faults).",
        discussion: """
        A rule says where (an operation on a path glob: * within a component, ** across),
        what (errno=NAME, delay_ms=N or short_read=N) and when (every time, once=true,
        every=N, after=N, probability=P with seed=S, and/or within from_ms=A until_ms=B of
        being added). Device rules (device=UUID-glob) strike migration instead: arc=FROM>TO
        with errno=E or to_error=true, stream=flip_bit|truncate at=BYTE, resume=reject|corrupt,
        spike_mbps=N. Fired faults are logged in DIR/.mdevsim/log and the daemon's log;
        DIR/.mdevsim/surprise_remove takes 'device UUID' or 'parent BDF'.

          mdevsim fault add /tmp/mdev 'path=sys/**/create op=write errno=ENOSPC'
          mdevsim fault add /tmp/mdev 'name=slow path=vfio/*/migration/data
              op=read delay_ms=200 every=3'
          mdevsim fault add /tmp/mdev 'device=* arc=*>STOP_COPY errno=EIO once=true'
          mdevsim fault list /tmp/mdev
          mdevsim fault clear /tmp/mdev
        Operations: lookup getattr setattr open read write readdir readlink, or any.
        """,
        subcommands: [Add.self, List.self, Clear.self]
    )

    /// Runs `body` on the mount's control file, explaining a failure to reach it.
    static func withControl(_ command: String, _ dir: String, _ body: (String) throws -> Void) throws {
        try runTool(command) {
            do { try body(dir + "/.mdevsim/faults") } catch let e as FileIO.Failure {
                throw ToolError("cannot use \(e.path): \(e.text); is \(dir) an mdevsim mount?", exitCode: 2)
            }
        }
    }

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add a rule (key=value words, or a JSON object).",
            discussion: """
            File rules: path=GLOB (relative to the mount; * ? [..] within a component,
            ** across) and op=OP (lookup getattr setattr open read write readdir
            readlink, or any), with exactly one of
              errno=NAME     the operation fails (any errno name: EIO, ENOSPC, ...)
              delay_ms=N     it waits N ms (0...60000) first
              short_read=N   a read returns at most N bytes
            Device rules: device=UUID-GLOB (default *) with exactly one of
              arc=FROM>TO    the arc fails with errno=NAME (default EIO), or with
                             to_error=true drops the device into ERROR (* = any state)
              stream=flip_bit|truncate at=BYTE   the saving stream is damaged there
              resume=reject|corrupt              resume refuses, or loads then corrupts
              spike_mbps=N   entering PRE_COPY makes the guest dirty N MB/s
            When (at most one; default every time): once=true, every=N, after=N,
            probability=P (0...1, with seed=S); and/or from_ms=A until_ms=B after
            the rule was added. name=NAME names it (each name once); booleans are
            true or false. A rule may go on over lines inside its quotes.

              mdevsim fault add /tmp/mdev 'path=sys/**/create op=write
                  errno=ENOSPC once=true'
              mdevsim fault add /tmp/mdev 'name=slow path=vfio/*/migration/data
                  op=read delay_ms=200 every=3'
              mdevsim fault add /tmp/mdev 'path=sys/** op=lookup errno=EIO
                  probability=0.1 seed=7'
              mdevsim fault add /tmp/mdev 'device=* arc=RUNNING>STOP_COPY to_error=true'
              mdevsim fault add /tmp/mdev '{"path": "sys/**", "short_read": 1}'
            """)
        @Argument(help: "The mount.") var directory: String
        @Argument(help: "The rule.") var rule: String
        func validate() throws {
            do { _ = try FaultRule.parse(rule) } catch { throw ValidationError("\(error)") }
        }
        func run() throws {
            try Fault.withControl("fault add", directory) { try FileIO.writeText($0, rule) }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the rules with how often each matched and fired.")
        @Argument(help: "The mount.") var directory: String
        func run() throws {
            try Fault.withControl("fault list", directory) { print(try FileIO.readText($0), terminator: "") }
        }
    }

    struct Clear: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove every rule.")
        @Argument(help: "The mount.") var directory: String
        func run() throws {
            try Fault.withControl("fault clear", directory) { try FileIO.writeText($0, "clear") }
        }
    }
}
