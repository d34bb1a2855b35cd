/// A fault in a stream, at a byte offset.
public struct StreamError: Error, Sendable, Equatable, CustomStringConvertible {
    public let offset: Int
    public let message: String
    public init(offset: Int, _ message: String) {
        self.offset = offset
        self.message = message
    }
    public var description: String { "at byte \(offset): \(message)" }
}

/// What the parser found.
public enum StreamEvent: Sendable {
    case header(StreamHeader, length: Int)
    /// A known record; `offset` is where its type field starts.
    case record(RecordType, flags: RecordFlags, payload: ArraySlice<UInt8>, offset: Int)
    /// An unknown record marked optional, skipped.
    case skipped(rawType: UInt16, length: Int, offset: Int)
    case end(offset: Int)
}

/// Incremental stream reader: feed it bytes in any chunks; it returns every
/// complete header or record. It never trusts a length before bounding it, so
/// it buffers at most one record (16 MiB) whatever the input claims.
public struct StreamParser {
    private var pending: [UInt8] = []
    private var start = 0
    /// Stream offset of `pending[start]`.
    public private(set) var consumed = 0
    public private(set) var header: StreamHeader?
    public private(set) var isComplete = false
    public private(set) var failure: StreamError?

    public init() {}

    public mutating func feed(_ bytes: UnsafeRawBufferPointer) throws(StreamError) -> [StreamEvent] {
        if let failure { throw failure }
        if isComplete, bytes.count > 0 {
            throw fail(StreamError(offset: consumed, "\(bytes.count) bytes after the end record"))
        }
        if start > 0 && start >= pending.count / 2 {
            pending.removeFirst(start)
            start = 0
        }
        pending.append(contentsOf: bytes)
        var events: [StreamEvent] = []
        while true {
            let event: StreamEvent?
            do throws(StreamError) { event = try next() } catch { throw fail(error) }
            guard let event else { break }
            events.append(event)
        }
        return events
    }

    public mutating func feed(_ bytes: [UInt8]) throws(StreamError) -> [StreamEvent] {
        var result: Result<[StreamEvent], StreamError> = .success([])
        bytes.withUnsafeBytes { raw in
            do throws(StreamError) { result = .success(try feed(raw)) } catch { result = .failure(error) }
        }
        return try result.get()
    }

    /// Call at the end of the input: a stream without its end record is truncated.
    public func finish() throws(StreamError) {
        if let failure { throw failure }
        guard isComplete else {
            let what = header == nil ? "the header" : "the end record"
            throw StreamError(offset: consumed + (pending.count - start), "stream is truncated: it ends before \(what)")
        }
        // Bytes that came in the same chunk as the end record (later chunks are refused in feed).
        guard available == 0 else { throw StreamError(offset: consumed, "\(available) bytes after the end record") }
    }

    private mutating func fail(_ error: StreamError) -> StreamError {
        failure = error
        return error
    }

    private var available: Int { pending.count - start }

    private mutating func next() throws(StreamError) -> StreamEvent? {
        if isComplete { return nil }
        if header == nil { return try parseHeader() }
        return try parseRecord()
    }

    private mutating func parseHeader() throws(StreamError) -> StreamEvent? {
        let magic = StreamFormat.magic
        let prefix = min(available, magic.count)
        guard Array(pending[start..<start + prefix]) == Array(magic.prefix(prefix)) else {
            throw StreamError(offset: consumed, "not an mdevsim device-state stream (bad magic)")
        }
        guard available >= 16 else { return nil }
        var r = ByteReader(pending[start + 8..<start + 16])
        let major = r.u16()!, minor = r.u16()!, length = Int(r.u32()!)
        guard major == StreamFormat.major else {
            throw StreamError(offset: consumed + 8, "stream format \(major).\(minor) is not readable by this reader (format \(StreamFormat.major).x)")
        }
        guard length <= StreamFormat.maxHeader else {
            throw StreamError(offset: consumed + 12, "header claims \(length) bytes, more than the \(StreamFormat.maxHeader) allowed")
        }
        guard available >= 16 + length + 4 else { return nil }
        let all = pending[start..<start + 16 + length]
        var crcReader = ByteReader(pending[start + 16 + length..<start + 20 + length])
        let stored = crcReader.u32()!
        let computed = Array(all).withUnsafeBytes { CRC32C.checksum($0) }
        guard stored == computed else {
            throw StreamError(offset: consumed + 16 + length, "header checksum mismatch (stored 0x\(String(stored, radix: 16)), computed 0x\(String(computed, radix: 16)))")
        }
        var body = ByteReader(pending[start + 16..<start + 16 + length])
        guard let model = body.string(), let version = body.string(), let count = body.u16() else {
            throw StreamError(offset: consumed + 16, "header body is malformed")
        }
        var params: [(String, String)] = []
        for _ in 0..<count {
            guard let p = body.string(), let eq = p.firstIndex(of: "=") else {
                throw StreamError(offset: consumed + 16 + body.position - (start + 16), "migration parameter \(params.count) is not name=value")
            }
            params.append((String(p[..<eq]), String(p[p.index(after: eq)...])))
        }
        var h = StreamHeader(model: model, driverVersion: version, parameters: params)
        h.formatMajor = major
        h.formatMinor = minor
        header = h
        advance(20 + length)
        return .header(h, length: 20 + length)
    }

    private mutating func parseRecord() throws(StreamError) -> StreamEvent? {
        guard available >= 8 else { return nil }
        var r = ByteReader(pending[start..<start + 8])
        let rawType = r.u16()!, flags = RecordFlags(rawValue: r.u16()!), length = Int(r.u32()!)
        let offset = consumed
        guard length <= StreamFormat.maxPayload else {
            throw StreamError(offset: offset + 4, "record claims \(length) bytes, more than the \(StreamFormat.maxPayload) allowed")
        }
        guard available >= 8 + length + 4 else { return nil }
        var crcReader = ByteReader(pending[start + 8 + length..<start + 12 + length])
        let stored = crcReader.u32()!
        let computed = pending.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[start..<start + 8 + length])) }
        let typeName = RecordType(rawValue: rawType)?.name ?? "type \(rawType)"
        guard stored == computed else {
            throw StreamError(offset: offset + 8 + length, "\(typeName) record checksum mismatch (stored 0x\(String(stored, radix: 16)), computed 0x\(String(computed, radix: 16)))")
        }
        guard let type = RecordType(rawValue: rawType) else {
            if flags.contains(.optional) {
                advance(12 + length)
                return .skipped(rawType: rawType, length: length, offset: offset)
            }
            throw StreamError(offset: offset, "unknown record type \(rawType) is not marked optional; this reader cannot skip it")
        }
        let payload = pending[start + 8..<start + 8 + length]
        advance(12 + length)
        if type == .end {
            guard length == 0 else { throw StreamError(offset: offset + 4, "end record must be empty") }
            isComplete = true
            return .end(offset: offset)
        }
        return .record(type, flags: flags, payload: payload, offset: offset)
    }

    private mutating func advance(_ n: Int) {
        start += n
        consumed += n
    }

    /// Parses a whole stream held in memory.
    public static func parse(_ bytes: [UInt8]) throws(StreamError) -> [StreamEvent] {
        var events: [StreamEvent] = []
        try scan(bytes) { events.append($0) }
        return events
    }

    /// Walks a whole stream held in memory without copying it: payloads are
    /// slices of `bytes`. Events before a fault are visited, then the fault is thrown.
    public static func scan(_ bytes: [UInt8], _ visit: (StreamEvent) -> Void) throws(StreamError) {
        var p = StreamParser()
        p.pending = bytes
        while true {
            let event: StreamEvent?
            do throws(StreamError) { event = try p.next() } catch { throw p.fail(error) }
            guard let event else { break }
            visit(event)
        }
        try p.finish()
    }
}
