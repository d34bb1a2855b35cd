/// Encodes headers and records into bytes, in place: a record's payload is
/// written straight into the output, then its length and checksum are patched.
public struct StreamWriter {
    public var bytes: [UInt8]

    public init(bytes: [UInt8] = []) { self.bytes = bytes }

    public mutating func take() -> [UInt8] {
        defer { bytes = [] }
        return bytes
    }

    public static func encodeHeader(_ h: StreamHeader) -> [UInt8] {
        var body = ByteBuffer()
        body.putString(h.model)
        body.putString(h.driverVersion)
        body.put16(UInt16(h.parameters.count))
        for p in h.parameters { body.putString("\(p.name)=\(p.value)") }
        var out = ByteBuffer()
        out.bytes += StreamFormat.magic
        out.put16(h.formatMajor)
        out.put16(h.formatMinor)
        out.put32(UInt32(body.bytes.count))
        out.bytes += body.bytes
        out.put32(CRC32C.checksum(out.bytes))
        return out.bytes
    }

    public mutating func header(_ h: StreamHeader) { bytes += StreamWriter.encodeHeader(h) }

    /// Appends one record; `fill` writes the payload.
    public mutating func record(_ type: RecordType, flags: RecordFlags = [], _ fill: (inout ByteBuffer) -> Void) {
        record(rawType: type.rawValue, flags: flags, fill)
    }

    public mutating func record(rawType: UInt16, flags: RecordFlags = [], _ fill: (inout ByteBuffer) -> Void) {
        let start = bytes.count
        var buffer = ByteBuffer()
        swap(&buffer.bytes, &bytes)
        buffer.put16(rawType)
        buffer.put16(flags.rawValue)
        buffer.put32(0)
        fill(&buffer)
        swap(&buffer.bytes, &bytes)
        let length = bytes.count - start - 8
        precondition(length <= StreamFormat.maxPayload, "record payload over the format's bound")
        withUnsafeBytes(of: UInt32(length).littleEndian) { raw in
            for i in 0..<4 { bytes[start + 4 + i] = raw[i] }
        }
        let crc = bytes.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[start...])) }
        withUnsafeBytes(of: crc.littleEndian) { bytes += $0 }
    }

    public mutating func record(rawType: UInt16, flags: RecordFlags = [], payload: [UInt8]) {
        record(rawType: rawType, flags: flags) { $0.putBytes(payload) }
    }

    public mutating func end() { record(.end) { _ in } }

    /// Bytes a record with this payload size takes.
    public static func recordSize(payload: Int) -> Int { StreamFormat.recordOverhead + payload }
}

/// Little-endian byte building.
public struct ByteBuffer: Sendable {
    public var bytes: [UInt8] = []
    public init() {}
    public init(capacity: Int) { bytes.reserveCapacity(capacity) }
    public mutating func put8(_ v: UInt8) { bytes.append(v) }
    public mutating func put16(_ v: UInt16) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
    public mutating func put32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
    public mutating func put64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
    public mutating func putString(_ s: String) {
        let utf8 = Array(s.utf8.prefix(Int(UInt16.max)))
        put16(UInt16(utf8.count))
        bytes += utf8
    }
    public mutating func putBytes(_ b: some Collection<UInt8>) { bytes += b }
    /// Room for `more` bytes, growing geometrically: calling it per record must not
    /// reallocate (and copy) the whole buffer each time, as an exact reserveCapacity would.
    public mutating func reserve(_ more: Int) {
        let need = bytes.count + more
        if bytes.capacity < need { bytes.reserveCapacity(max(need, bytes.capacity * 2)) }
    }
}

/// Little-endian reading with bounds checks: every read says whether it fit.
public struct ByteReader {
    let bytes: ArraySlice<UInt8>
    public private(set) var position: Int

    public init(_ bytes: ArraySlice<UInt8>) {
        self.bytes = bytes
        position = bytes.startIndex
    }

    public var remaining: Int { bytes.endIndex - position }

    public mutating func u8() -> UInt8? {
        guard remaining >= 1 else { return nil }
        defer { position += 1 }
        return bytes[position]
    }
    public mutating func u16() -> UInt16? { uint(2).map { UInt16($0) } }
    public mutating func u32() -> UInt32? { uint(4).map { UInt32($0) } }
    public mutating func u64() -> UInt64? { uint(8) }

    mutating func uint(_ n: Int) -> UInt64? {
        guard remaining >= n else { return nil }
        var v: UInt64 = 0
        for i in 0..<n { v |= UInt64(bytes[position + i]) << (8 * UInt64(i)) }
        position += n
        return v
    }

    public mutating func take(_ n: Int) -> ArraySlice<UInt8>? {
        guard n >= 0, remaining >= n else { return nil }
        defer { position += n }
        return bytes[position..<position + n]
    }

    public mutating func string() -> String? {
        guard let n = u16(), let raw = take(Int(n)) else { return nil }
        return String(validating: raw, as: UTF8.self)
    }
}
