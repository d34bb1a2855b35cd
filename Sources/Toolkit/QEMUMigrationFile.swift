import Foundation

/// A whole QEMU migration stream (what `migrate "exec:cat > FILE"` writes), walked
/// section by section as QEMU's qemu_loadvm_state reads it:
///
///     "QEVM" be32 3, [0x07 configuration], then sections until 0x00 (EOF), then the
///     0x06 VMDESCRIPTION JSON. Section START/FULL: type, be32 id, idstr, be32 instance,
///     be32 version; PART/END: type, be32 id; each ends with the footer 0x7e be32 id.
///
/// Section contents have no length in the stream: RAM is parsed in its own format,
/// `<slot>/vfio` in VFIO's framing (QEMUFraming), and every other device's vmstate by the
/// sizes the VMDESCRIPTION gives, each section checked to land on its footer.
public struct QEMUMigrationFile: Sendable {
    public struct Section: Sendable, Encodable {
        public let offset: Int
        public let kind: String
        public let id: UInt32
        public let name: String
        public let instance: UInt32
        public let version: UInt32
        public let size: Int
    }

    /// One VFIO device's state in the file.
    public struct VFIODevice: Sendable {
        /// The guest slot, as QEMU names the section ("0000:00:01.0").
        public let slot: String
        /// The device data: every DEV_DATA_STATE chunk in order (the vendor driver's stream).
        public var payload: [UInt8] = []
        /// Bytes of device data per section (setup, each iteration, the final pass).
        public var passes: [Int] = []
        /// The VFIOPCIDevice vmstate after DEV_CONFIG_STATE.
        public var config: [UInt8] = []
    }

    public let version: UInt32
    public let machine: String
    public private(set) var sections: [Section] = []
    public private(set) var devices: [VFIODevice] = []
    public let ramBytes: UInt64

    static let magic: [UInt8] = Array("QEVM".utf8)
    public static func isMigrationFile(_ bytes: [UInt8]) -> Bool { bytes.count >= 8 && Array(bytes.prefix(4)) == magic }

    struct Reader {
        let b: [UInt8]
        var at = 0
        mutating func need(_ n: Int, _ what: String) throws {
            guard n >= 0, n <= b.count - at else { throw ToolError("QEMU migration file ends at byte \(b.count) inside \(what) (at byte \(at), \(n) bytes needed)") }
        }
        mutating func u8(_ what: String) throws -> UInt8 { try need(1, what); defer { at += 1 }; return b[at] }
        mutating func be(_ n: Int, _ what: String) throws -> UInt64 {
            try need(n, what)
            defer { at += n }
            return (0..<n).reduce(0) { $0 << 8 | UInt64(b[at + $1]) }
        }
        mutating func bytes(_ n: Int, _ what: String) throws -> ArraySlice<UInt8> { try need(n, what); defer { at += n }; return b[at..<at + n] }
        mutating func string(_ what: String) throws -> String { let n = Int(try u8(what)); return String(decoding: try bytes(n, what), as: UTF8.self) }
        func peek() -> UInt8? { at < b.count ? b[at] : nil }
    }

    public init(_ bytes: [UInt8]) throws {
        var r = Reader(b: bytes)
        guard Array(try r.bytes(4, "the magic")) == QEMUMigrationFile.magic else { throw ToolError("not a QEMU migration file (no QEVM magic)") }
        version = UInt32(try r.be(4, "the version"))
        guard version == 3 else { throw ToolError("QEMU migration file version \(version); only version 3 is known") }
        let descriptions = try QEMUMigrationFile.vmdescription(bytes)
        var machine = ""
        var ram: UInt64 = 0
        var ids: [UInt32: (name: String, instance: UInt32)] = [:]
        var vfio: [String: VFIODevice] = [:]
        var order: [String] = []
        loop: while true {
            let start = r.at
            let type = try r.u8("a section type")
            switch type {
            case 0x00:      // QEMU_VM_EOF
                break loop
            case 0x07:      // QEMU_VM_CONFIGURATION: be32 length, the machine name
                let n = Int(try r.be(4, "the configuration"))
                machine = String(decoding: try r.bytes(n, "the machine name"), as: UTF8.self)
                try QEMUMigrationFile.skipConfigurationSubsections(&r)
            case 0x01, 0x04, 0x02, 0x03:
                let id = UInt32(try r.be(4, "a section id"))
                var name = "", instance: UInt32 = 0, version: UInt32 = 0
                if type == 0x01 || type == 0x04 {
                    name = try r.string("a section name")
                    instance = UInt32(try r.be(4, "an instance id"))
                    version = UInt32(try r.be(4, "a version id"))
                    ids[id] = (name, instance)
                } else {
                    guard let known = ids[id] else { throw ToolError("section at byte \(start) continues section \(id), which never started") }
                    (name, instance) = known
                }
                let bodyStart = r.at
                if name == "ram" {
                    let total = try QEMUMigrationFile.skipRAM(&r, first: type == 0x01)
                    if type == 0x01 { ram = total }
                } else if name.hasSuffix("/vfio") {
                    let slot = String(name.dropLast(5))
                    if vfio[slot] == nil { vfio[slot] = VFIODevice(slot: slot); order.append(slot) }
                    try QEMUMigrationFile.readVFIO(&r, into: &vfio[slot]!, full: type == 0x04, description: descriptions[name + "#\(instance)"])
                } else {
                    guard type == 0x04 else { throw ToolError("section '\(name)' at byte \(start) is a live section of a kind this reader does not know (only ram and vfio)") }
                    guard let d = descriptions[name + "#\(instance)"] else {
                        throw ToolError("section '\(name)' (instance \(instance)) at byte \(start) has no VMDESCRIPTION entry, so its size is unknown")
                    }
                    try QEMUMigrationFile.skipVMState(&r, d, name)
                }
                let footer = try r.u8("the footer of section '\(name)'")
                let footerID = UInt32(try r.be(4, "the footer of section '\(name)'"))
                guard footer == 0x7e, footerID == id else {
                    throw ToolError("section '\(name)' (id \(id)) starting at byte \(start) does not end on its footer at byte \(r.at - 5) (found 0x\(String(footer, radix: 16)) id \(footerID))")
                }
                sections.append(Section(offset: start, kind: ["", "start", "part", "end", "full"][Int(type)], id: id, name: name,
                                        instance: instance, version: version, size: r.at - 5 - bodyStart))
            case 0x08:      // QEMU_VM_COMMAND: be16 command, be16 length, data
                _ = try r.be(2, "a command")
                let n = Int(try r.be(2, "a command length"))
                _ = try r.bytes(n, "a command's data")
            default:
                throw ToolError("unknown section type 0x\(String(type, radix: 16)) at byte \(start)")
            }
        }
        self.machine = machine
        ramBytes = ram
        devices = order.map { vfio[$0]! }
    }

    /// The device named by slot (or the only one).
    public func device(_ slot: String?) throws -> VFIODevice {
        if let slot {
            guard let d = devices.first(where: { $0.slot == slot }) else {
                throw ToolError("no VFIO device at slot \(slot) in this migration file (it has: \(devices.map(\.slot).joined(separator: ", ")))")
            }
            return d
        }
        guard devices.count == 1 else {
            throw ToolError(devices.isEmpty ? "this QEMU migration file holds no VFIO device section (<slot>/vfio)"
                            : "this QEMU migration file holds \(devices.count) VFIO devices (\(devices.map(\.slot).joined(separator: ", "))); choose one with mdevsim extract FILE --device SLOT")
        }
        return devices[0]
    }

    // MARK: Pieces

    /// The VMDESCRIPTION after EOF: each section's field sizes, keyed "name#instance".
    static func vmdescription(_ b: [UInt8]) throws -> [String: [String: Any]] {
        // It is the last thing in the file: 0x06, be32 length, JSON of exactly that length.
        guard let brace = b.lastIndex(where: { $0 == 0x06 }).flatMap({ _ in findDescription(b) }) else { return [:] }
        guard let json = try? JSONSerialization.jsonObject(with: Data(b[brace...])) as? [String: Any],
              let devices = json["devices"] as? [[String: Any]] else { return [:] }
        var out: [String: [String: Any]] = [:]
        for d in devices {
            if let name = d["name"] as? String { out[name + "#\((d["instance_id"] as? Int) ?? 0)"] = d }
        }
        return out
    }

    /// Where the description's JSON starts: the 0x06 byte whose be32 length reaches exactly the end.
    static func findDescription(_ b: [UInt8]) -> Int? {
        var i = b.count - 6
        while i >= 8 {
            if b[i] == 0x06 {
                let n = (1...4).reduce(0) { $0 << 8 | Int(b[i + $1]) }
                if i + 5 + n == b.count, b[i + 5] == UInt8(ascii: "{") { return i + 5 }
            }
            i -= 1
        }
        return nil
    }

    static func skipConfigurationSubsections(_ r: inout Reader) throws {
        while r.peek() == 0x05 {
            _ = try r.u8("a subsection")
            let name = try r.string("a subsection name")
            _ = try r.be(4, "a subsection version")
            switch name {
            case "configuration/target-page-bits": _ = try r.be(4, name)
            case "configuration/capabilities":
                let n = Int(try r.be(4, name))
                for _ in 0..<n { _ = try r.string(name) }
            case "configuration/uuid": _ = try r.bytes(16, name)
            default: throw ToolError("configuration subsection '\(name)' is not known to this reader")
            }
        }
    }

    /// RAM's own format (migration/ram.c): be64 address|flags words, EOS ends a section.
    static func skipRAM(_ r: inout Reader, first: Bool) throws -> UInt64 {
        var total: UInt64 = 0
        while true {
            let word = try r.be(8, "a RAM header")
            let flags = word & 0xfff
            if flags & 0x04 != 0 {               // MEM_SIZE: the block list
                total = word & ~0xfff
                var left = total
                while left > 0 {
                    _ = try r.string("a RAM block name")
                    let length = try r.be(8, "a RAM block length")
                    guard length > 0, length <= left else { throw ToolError("RAM block list at byte \(r.at): a block of \(length) bytes does not fit the total") }
                    left -= length
                }
            }
            if flags & 0x10 != 0 { return total }  // EOS
            if flags & (0x02 | 0x08) != 0 {
                if flags & 0x20 == 0 { _ = try r.string("a RAM block name") }     // not CONTINUE
                if flags & 0x02 != 0 { _ = try r.u8("a zero page") } else { _ = try r.bytes(4096, "a RAM page") }
            } else if flags & ~(0x04 | 0x200) != 0 {
                throw ToolError("RAM flags 0x\(String(flags, radix: 16)) at byte \(r.at - 8) (compression, xbzrle or postcopy) are not supported by this reader")
            }
        }
    }

    /// A vmstate by its VMDESCRIPTION: fields, then subsections (0x05 name version fields).
    /// A subsection this level does not describe belongs to an enclosing one: left for it
    /// (at the top level, an error).
    static func skipVMState(_ r: inout Reader, _ d: [String: Any], _ name: String, top: Bool = true) throws {
        for f in d["fields"] as? [[String: Any]] ?? [] {
            let size = (f["size"] as? Int) ?? 0
            let count = (f["array_len"] as? Int) ?? 1
            let (total, overflow) = size.multipliedReportingOverflow(by: count)
            _ = try r.bytes(overflow ? -1 : total, "field \(f["name"] ?? "?") of '\(name)'")
        }
        let subsections = d["subsections"] as? [[String: Any]] ?? []
        while r.peek() == 0x05 {
            let mark = r.at
            _ = try r.u8("a subsection")
            let sub = try r.string("a subsection name")
            guard let sd = subsections.first(where: { ($0["vmsd_name"] as? String) == sub }) else {
                if !top { r.at = mark; return }
                throw ToolError("subsection '\(sub)' of '\(name)' at byte \(mark) is not in the VMDESCRIPTION")
            }
            _ = try r.be(4, "a subsection version")
            try skipVMState(&r, sd, sub, top: false)
        }
    }

    /// A vfio section: its VFIO_MIG_FLAG tags up to END_OF_STATE.
    static func readVFIO(_ r: inout Reader, into d: inout VFIODevice, full: Bool, description: [String: Any]?) throws {
        var passBytes = 0
        while true {
            let tag = try r.be(8, "a VFIO tag of \(d.slot)")
            switch tag {
            case QEMUFraming.endOfState:
                d.passes.append(passBytes)
                return
            case QEMUFraming.dataState:
                let n = Int(clamping: try r.be(8, "a DEV_DATA_STATE size"))
                d.payload += try r.bytes(n, "\(n) bytes of \(d.slot)'s device data")
                passBytes += n
            case QEMUFraming.setupState, QEMUFraming.initDataSent:
                continue
            case QEMUFraming.configState:
                // The VFIOPCIDevice vmstate: its size is the section's (VMDESCRIPTION) less the three tags.
                let total = ((description?["fields"] as? [[String: Any]])?.first?["size"] as? Int) ?? 0
                guard total >= 24, total < 1 << 20 else { throw ToolError("\(d.slot)/vfio: DEV_CONFIG_STATE without a VMDESCRIPTION size") }
                d.config = Array(try r.bytes(total - 16, "the config state of \(d.slot)"))
                guard try r.be(8, "the end of \(d.slot)'s config state") == QEMUFraming.endOfState else {
                    throw ToolError("\(d.slot)/vfio: the config state does not end with END_OF_STATE at byte \(r.at - 8)")
                }
                return
            default:
                throw ToolError("\(d.slot)/vfio: unknown VFIO tag 0x\(String(tag, radix: 16)) at byte \(r.at - 8)")
            }
        }
    }
}

extension QEMUMigrationFile.VFIODevice {
    /// The PCI part of the config state (VMSTATE_PCI_DEVICE: be32 version, 256 bytes of config, 4 × be32 irq_state).
    public var pciConfig: [UInt8]? { config.count >= 260 ? Array(config[4..<260]) : nil }
}
