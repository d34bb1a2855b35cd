/// The mdevsim device-state stream, version 1.1. See docs/stream-format.md.
///
///     header  := magic[8] major:u16 minor:u16 length:u32 body[length] crc32c:u32
///     body    := model:str version:str count:u16 (param:str){count}
///     str     := length:u16 utf8[length]
///     record  := type:u16 flags:u16 length:u32 payload[length] crc32c:u32
///     stream  := header record* end-record
///
/// All integers little-endian. A record's CRC covers its type, flags, length
/// and payload; the header's covers everything before it.
public enum StreamFormat {
    public static let magic: [UInt8] = Array("MDEVSIM\u{1}".utf8)
    public static let major: UInt16 = 1
    /// 1.1: the config record is 4096 bytes (1.0's 256-byte one is converted on load).
    public static let minor: UInt16 = 1
    /// No record payload may claim more (a reader refuses it before buffering).
    public static let maxPayload = 16 << 20
    public static let maxHeader = 64 << 10
    public static let recordOverhead = 12
    /// Memory pages per memory record (1 MiB of page data).
    public static let pagesPerRecord = 256
}

/// Record types. Bit 15 of `flags` marks a record a reader may skip if it does
/// not know the type; an unknown type without it is refused.
public enum RecordType: UInt16, Sendable, CaseIterable {
    case config = 1          // 4096 bytes of PCI config space (256 in format 1.0)
    case mmio = 2            // u8 block, then (u32 offset, u64 value)*
    case fences = 3          // (u64 value)*
    case display = 4         // (u32 offset, u64 value)*
    case ggtt = 5            // (u32 index, u64 pte)*, pte 0 = unmapped
    case memory = 6          // (u32 frame, page[4096])*
    case dirtyPages = 7      // as memory: pages written again during pre-copy
    case workload = 8        // guest workload state, see WorkloadRecord
    case end = 0xffff

    public var name: String {
        switch self {
        case .config: "config"
        case .mmio: "mmio"
        case .fences: "fences"
        case .display: "display"
        case .ggtt: "ggtt"
        case .memory: "memory"
        case .dirtyPages: "dirty-pages"
        case .workload: "workload"
        case .end: "end"
        }
    }
}

public struct RecordFlags: OptionSet, Sendable {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    /// A reader that does not know this record's type may skip it.
    public static let optional = RecordFlags(rawValue: 1 << 15)
}

/// The stream header: what the stream is, and what a destination must accept.
public struct StreamHeader: Sendable, Equatable {
    /// Device model id, Go-style `<domain>/<path>`: the model's name never changes.
    public var model: String
    /// Parent driver version `x.y.z`.
    public var driverVersion: String
    /// Migration parameters `name=value`, in order: anything that changes compatibility.
    public var parameters: [(name: String, value: String)]
    public var formatMajor = StreamFormat.major
    public var formatMinor = StreamFormat.minor

    public init(model: String, driverVersion: String, parameters: [(name: String, value: String)]) {
        self.model = model
        self.driverVersion = driverVersion
        self.parameters = parameters
    }

    public static func == (l: StreamHeader, r: StreamHeader) -> Bool {
        l.model == r.model && l.driverVersion == r.driverVersion && l.formatMajor == r.formatMajor
            && l.formatMinor == r.formatMinor && l.parameters.map { "\($0.name)=\($0.value)" } == r.parameters.map { "\($0.name)=\($0.value)" }
    }

    public func parameter(_ name: String) -> String? { parameters.first { $0.name == name }?.value }
}
