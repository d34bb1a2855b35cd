/// A stream taken apart into its header and records, to be changed and
/// sealed again with fresh checksums: what tests and the structure-aware
/// fuzzer use to reach what lies behind a checksum.
public struct StreamRecords: Sendable {
    public struct Record: Sendable, Equatable {
        public var rawType: UInt16
        public var flags: RecordFlags
        public var payload: [UInt8]
        public init(rawType: UInt16, flags: RecordFlags = [], payload: [UInt8]) {
            self.rawType = rawType
            self.flags = flags
            self.payload = payload
        }
        public var type: RecordType? { RecordType(rawValue: rawType) }
    }

    public var header: StreamHeader
    /// Every record in order, the end record included when the stream had one.
    public var records: [Record]

    public init(header: StreamHeader, records: [Record]) {
        self.header = header
        self.records = records
    }

    /// Takes a sound stream apart (an optional record that was skipped keeps
    /// its type and an empty payload).
    public init(parsing bytes: [UInt8]) throws(StreamError) {
        var header: StreamHeader?
        var records: [Record] = []
        try StreamParser.scan(bytes) { event in
            switch event {
            case .header(let h, _): header = h
            case .record(let type, let flags, let payload, _): records.append(Record(rawType: type.rawValue, flags: flags, payload: Array(payload)))
            case .skipped(let raw, _, _): records.append(Record(rawType: raw, flags: .optional, payload: []))
            case .end: records.append(Record(rawType: RecordType.end.rawValue, payload: []))
            }
        }
        self.header = header!
        self.records = records
    }

    /// The index of the first record of `type`.
    public func first(_ type: RecordType) -> Int? { records.firstIndex { $0.rawType == type.rawValue } }

    /// The stream's bytes with every checksum computed afresh; a payload over
    /// the format's bound is cut to it.
    public func sealed() -> [UInt8] {
        var w = StreamWriter()
        w.header(header)
        for r in records {
            w.record(rawType: r.rawType, flags: r.flags, payload: Array(r.payload.prefix(StreamFormat.maxPayload)))
        }
        return w.take()
    }
}
