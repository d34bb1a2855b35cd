import ArgumentParser
import Foundation
import Faults
import Migration
import RealDevice
import SysfsSnapshot
import Toolkit

struct Record: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Save a device's state to a blob.",
        discussion: """
        DEV is DIR/vfio/<uuid> or DIR/sys/bus/mdev/devices/<uuid>; v2 and v1 devices are
        detected. Without --live: stop-and-copy only. The device is left stopped unless
        --resume-source; on failure it is put back to RUNNING.

          mdevsim record /tmp/mdev/vfio/$UUID -o vgpu.blob --live --resume-source
        """
    )
    @Argument(help: "The device.") var device: String
    @Option(name: .shortAndLong, help: "Output file, or - for stdout.") var output: String
    @Flag(help: "Pre-copy while the device keeps running, then stop-and-copy.") var live = false
    @Flag(help: "Put the source back to RUNNING afterwards.") var resumeSource = false
    @Option(help: "Pre-copy iterations at most.") var maxIterations = 8
    @Flag(help: "Wrap the data the way QEMU's VFIO migration code frames it (VFIO_MIG_FLAG_* tags, 1 MiB data chunks).")
    var qemuFraming = false
    @Flag(help: "Print progress even when stderr is not a terminal.") var verbose = false

    func run() throws {
        try runTool("record") {
            Interruption.install()
            var o = Recorder.Options()
            o.live = live
            o.resumeSource = resumeSource
            o.maxIterations = maxIterations
            o.progress = progress(verbose)
            let result = try Recorder.record(try DeviceHandle(device), o)
            try FileIO.writeAll(output, qemuFraming ? QEMUFraming.wrap(result.blob, passes: result.iterations) : result.blob)
            if output != "-" {
                print("recorded \(result.blob.count) bytes to \(output) (\(result.iterations.count) passes: \(result.iterations.map(String.init).joined(separator: " + ")))")
            }
        }
    }
}


struct Replay: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Resume a device from a blob and print the resulting state_digest.",
        discussion: """
        The blob may be raw or in QEMU's VFIO framing (record --qemu-framing).
        A refused blob is not loaded: the reason is printed, the device is reset to RUNNING
        (the only way out of RESUMING) and the exit code is 1.
          mdevsim replay vgpu.blob /tmp/mdev/vfio/$UUID --chunk 4096
        """
    )
    @Argument(help: "Blob file, or - for stdin.") var file: String
    @Argument(help: "The device.") var device: String
    @Option(help: "Bytes per write.") var chunk = 1 << 20
    @Flag(name: .customLong("run"), help: "Set the device RUNNING afterwards.") var setRunning = false

    func validate() throws {
        guard chunk > 0 else { throw ValidationError("--chunk must be positive") }
    }

    func run() throws {
        try runTool("replay") {
            Interruption.install()
            let blob = try QEMUFraming.raw(try FileIO.readAll(file))
            let digest = try Replayer.replay(blob, to: try DeviceHandle(device), chunk: chunk, run: setRunning)
            // A real device has no state_digest: its driver accepting the stream is all there is to report.
            print(digest.isEmpty ? "loaded \(blob.count) bytes (the device has no state_digest)" : digest)
        }
    }
}
