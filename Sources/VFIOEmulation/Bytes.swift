/// Little-endian fields of the uAPI's structs in a byte buffer.
struct Bytes {
    var raw: [UInt8]

    init(count: Int) { raw = [UInt8](repeating: 0, count: count) }
    init(_ raw: [UInt8]) { self.raw = raw }

    var count: Int { raw.count }

    func u32(_ at: Int) -> UInt32 {
        guard at + 4 <= raw.count else { return 0 }
        return (0..<4).reduce(0) { $0 | UInt32(raw[at + $1]) << (8 * UInt32($1)) }
    }
    func u64(_ at: Int) -> UInt64 {
        guard at + 8 <= raw.count else { return 0 }
        return (0..<8).reduce(0) { $0 | UInt64(raw[at + $1]) << (8 * UInt64($1)) }
    }
    func i32(_ at: Int) -> Int32 { Int32(bitPattern: u32(at)) }

    mutating func put32(_ at: Int, _ v: UInt32) {
        grow(at + 4)
        for i in 0..<4 { raw[at + i] = UInt8((v >> (8 * UInt32(i))) & 0xff) }
    }
    mutating func put64(_ at: Int, _ v: UInt64) {
        grow(at + 8)
        for i in 0..<8 { raw[at + i] = UInt8((v >> (8 * UInt64(i))) & 0xff) }
    }
    mutating func put16(_ at: Int, _ v: UInt16) {
        grow(at + 2)
        raw[at] = UInt8(v & 0xff)
        raw[at + 1] = UInt8(v >> 8)
    }
    mutating func grow(_ n: Int) { if raw.count < n { raw += [UInt8](repeating: 0, count: n - raw.count) } }
}

/// A chain of `struct vfio_info_cap_header` capabilities (id, version, next),
/// laid out after a fixed part of `base` bytes; `next` offsets are from the
/// start of the whole struct, 0 ends the chain.
struct CapabilityChain {
    var entries: [(id: UInt16, version: UInt16, body: [UInt8])] = []
    var isEmpty: Bool { entries.isEmpty }

    mutating func add(id: UInt16, version: UInt16, _ body: Bytes) { entries.append((id, version, body.raw)) }

    func bytes(base: Int) -> [UInt8] {
        var out = Bytes(count: 0)
        var at = 0
        for (i, e) in entries.enumerated() {
            let size = 8 + e.body.count
            out.put16(at, e.id)
            out.put16(at + 2, e.version)
            out.put32(at + 4, i == entries.count - 1 ? 0 : UInt32(base + at + size))
            out.grow(at + size)
            out.raw.replaceSubrange(at + 8..<at + size, with: e.body)
            at += size
        }
        return out.raw
    }
}
