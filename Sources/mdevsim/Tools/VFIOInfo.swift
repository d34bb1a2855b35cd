import ArgumentParser
import Foundation
import Faults
import Migration
import RealDevice
import SysfsSnapshot
import Toolkit

struct VFIOInfo: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vfio-info",
        abstract: "Show a real VFIO device's migration features, state and stop-copy size (kernel v2 ioctls).",
        discussion: "  mdevsim vfio-info /dev/vfio/devices/vfio0"
    )
    @Argument(help: "A VFIO device node (vfio cdev).") var device: String
    @Flag(help: "Print JSON.") var json = false

    struct Info: Encodable {
        let device: String
        let features: String
        let state: String
        let stopCopySize: Int?
        enum CodingKeys: String, CodingKey { case device, features, state, stopCopySize = "stop_copy_size" }
    }

    func run() throws {
        try runTool("vfio-info") {
            let d: RealVFIODevice
            do { d = try RealVFIODevice(path: device) } catch { throw ToolError("\(error)") }
            let info = Info(device: device, features: "\(d.features)", state: "\(try d.currentState())", stopCopySize: try? d.stopCopyBytes())
            if json { printJSON(info); return }
            print("device:   \(info.device)")
            print("features: \(info.features)")
            print("state:    \(info.state)")
            if let size = info.stopCopySize { print("stop_copy_size: \(size)") }
        }
    }
}
