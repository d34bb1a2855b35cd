import ArgumentParser
import Foundation
import Faults
import Migration
import RealDevice
import SysfsSnapshot
import Toolkit

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show a blob's header, records, checksum status and registers by name.",
        discussion: """
        Exit 0 for a sound blob; 1 (after showing what could be read and the first fault) for one that is not a
        stream, is cut short, has a bad checksum, or holds what no device could load.
          mdevsim inspect vgpu.blob
          mdevsim record DEV -o - | mdevsim inspect - --json
        """
    )
    @Argument(help: "Blob file, or - for stdin.") var file: String
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        try runTool("inspect") {
            let bytes = try FileIO.readAll(file)
            let framed = QEMUFraming.isFramed(bytes)
            let analysis = BlobAnalysis(try QEMUFraming.raw(bytes))
            if framed && !json { print("(QEMU VFIO framing: \(bytes.count) bytes framed, device data below)") }
            if QEMUMigrationFile.isMigrationFile(bytes), !json {
                let file = try QEMUMigrationFile(bytes)
                print(Extract.summary(file, try file.device(nil)))
            }
            print(json ? Toolkit.Inspect.json(analysis) : Toolkit.Inspect.text(analysis, source: file), terminator: "")
            if !analysis.sound { throw ExitCode(1) }
        }
    }
}


struct Extract: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Take a VFIO device's state out of a whole QEMU migration file.",
        discussion: """
        Walks QEMU's sections as its loader does (RAM by its own format, devices by the file's
        VMDESCRIPTION, each checked to end on its footer), reassembles the <slot>/vfio sections'
        DEV_DATA_STATE chunks into the vendor driver's stream, and writes it to -o. inspect,
        verify, diff and replay accept the migration file directly when it holds one VFIO device.
          qemu: migrate "exec:cat > /tmp/vm.mig"
          mdevsim extract /tmp/vm.mig -o gpu.blob && mdevsim verify gpu.blob
          mdevsim extract /tmp/vm.mig --json          # sections, devices, passes, config state
        """
    )
    @Argument(help: "A QEMU migration file (QEVM).") var file: String
    @Option(help: "The device's guest slot, e.g. 0000:00:01.0 (needed when the file holds several).") var device: String?
    @Option(name: .shortAndLong, help: "Where to write the device data (- for stdout).") var output: String?
    @Option(help: "Also write the VFIOPCIDevice config-state vmstate here.") var configState: String?
    @Flag(help: "Print JSON: the sections and VFIO devices found.") var json = false

    static func summary(_ f: QEMUMigrationFile, _ d: QEMUMigrationFile.VFIODevice) -> String {
        var pci = ""
        if let c = d.pciConfig {
            func le16(_ o: Int) -> String { String(format: "%04x", Int(c[o]) | Int(c[o + 1]) << 8) }
            pci = "; PCI config from QEMU: \(le16(0)):\(le16(2)) command 0x\(le16(4)) status 0x\(le16(6))"
        }
        return "(QEMU migration file: machine \(f.machine), \(f.sections.count) sections, \(f.ramBytes >> 20) MiB of RAM; "
            + "VFIO device \(d.slot): \(d.payload.count) bytes of device data in passes \(d.passes.map(String.init).joined(separator: " + ")), "
            + "config state \(d.config.count) bytes\(pci); device data below)"
    }

    func run() throws {
        try runTool("extract") {
            let f = try QEMUMigrationFile(try FileIO.readAll(file))
            if json {
                struct Device: Encodable {
                    let slot: String; let bytes: Int; let passes: [Int]; let configStateBytes: Int; let pciConfig: String?
                    enum CodingKeys: String, CodingKey { case slot, bytes, passes, configStateBytes = "config_state_bytes", pciConfig = "pci_config" }
                }
                struct Out: Encodable {
                    let machine: String; let ramBytes: UInt64; let sections: [QEMUMigrationFile.Section]; let devices: [Device]
                    enum CodingKeys: String, CodingKey { case machine, ramBytes = "ram_bytes", sections, devices }
                }
                printJSON(Out(machine: f.machine, ramBytes: f.ramBytes, sections: f.sections, devices: f.devices.map {
                    Device(slot: $0.slot, bytes: $0.payload.count, passes: $0.passes, configStateBytes: $0.config.count,
                           pciConfig: $0.pciConfig.map { $0.map { String(format: "%02x", $0) }.joined() })
                }))
                if output == nil { return }
            }
            guard let output else { throw ToolError("give -o BLOB (or --json to list what the file holds)") }
            let d = try f.device(device)
            try FileIO.writeAll(output, d.payload)
            if let configState { try FileIO.writeAll(configState, d.config) }
            if output != "-" && !json { print("extracted \(d.payload.count) bytes of \(d.slot)'s device data to \(output)") }
        }
    }
}


struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check a blob's structure, checksums and contents: exit 0 only for a sound blob.",
        discussion: "Sound: every checksum matches, the end record is there, and every record holds what a device of the header's type could load (register values, GGTT entries, frames, workload). The first fault is reported with its byte offset (exit 1).\n  mdevsim verify vgpu.blob"
    )
    @Argument(help: "Blob file, or - for stdin.") var file: String
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        try runTool("verify") {
            let a = BlobAnalysis(try QEMUFraming.raw(try FileIO.readAll(file)))
            if json {
                struct Out: Encodable { let file: String; let sound: Bool; let bytes: Int; let records: Int; let faultOffset: Int?; let fault: String? }
                printJSON(Out(file: file, sound: a.sound, bytes: a.size, records: a.records.count, faultOffset: a.fault?.offset, fault: a.fault?.message))
            } else if a.sound {
                print("\(file): sound (\(a.size) bytes, \(a.records.count) records, every checksum matches, end record present, every record loadable)")
            }
            if let fault = a.fault {
                if !json { FileHandle.standardError.write(Data("mdevsim verify: \(file): \(fault)\n".utf8)) }
                throw ExitCode(1)
            }
        }
    }
}


struct Diff: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compare two blobs: header fields, registers by name, memory as page ranges.",
        discussion: "Exit 0 when they hold the same state, 1 when they differ.\n  mdevsim diff before.blob after.blob"
    )
    @Argument(help: "First blob.") var a: String
    @Argument(help: "Second blob.") var b: String
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        try runTool("diff") {
            let lines = Toolkit.Diff.lines(BlobAnalysis(try QEMUFraming.raw(try FileIO.readAll(a))),
                                           BlobAnalysis(try QEMUFraming.raw(try FileIO.readAll(b))))
            if json {
                struct Out: Encodable { let same: Bool; let differences: [String] }
                printJSON(Out(same: lines.isEmpty, differences: lines))
            } else {
                print(lines.isEmpty ? "\(a) and \(b) hold the same device state" : "--- \(a)\n+++ \(b)\n" + lines.joined(separator: "\n"))
            }
            if !lines.isEmpty { throw ExitCode(1) }
        }
    }
}
