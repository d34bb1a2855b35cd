import ArgumentParser

@main
struct Mdevsim: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mdevsim",
        abstract: "A simulated mdev vendor driver (a fake Intel GVT-g GPU) served as a FUSE sysfs.",
        discussion: """
        Mount a sysfs tree with GVT-g vGPU types, then point mdevctl, libvirt or your own
        tools at it:

          mdevsim mount --daemon /tmp/mdev
          T=/tmp/mdev/sys/class/mdev_bus/0000:00:02.0/mdev_supported_types
          cat $T/i915-GVTg_V5_4/available_instances
          mdevsim exec /tmp/mdev -- mdevctl types
          mdevsim unmount /tmp/mdev
        """,
        subcommands: [Mount.self, Unmount.self, Wait.self, Exec.self, Record.self, Inspect.self, Extract.self, Verify.self, Diff.self, Replay.self, Migrate.self, Compat.self, FSM.self, Fault.self, SnapshotCommand.self, VFIOInfo.self]
    )
}
