/// A stable 128-bit digest (two independent multiply-xor lanes over 64-bit
/// words), the same in every process, for proving two devices hold the same
/// state. Not cryptographic.
public struct StateDigest: Sendable {
    private var a: UInt64 = 0x6a09_e667_f3bc_c908
    private var b: UInt64 = 0xbb67_ae85_84ca_a73b
    private var count: UInt64 = 0

    public init() {}

    @inline(__always)
    public mutating func add(_ word: UInt64) {
        a = (a ^ word) &* 0x0000_0100_0000_01b3
        a ^= a >> 29
        b = (b ^ (word &+ count)) &* 0x9e37_79b9_7f4a_7c15
        b ^= b >> 32
        count &+= 1
    }

    public mutating func add(bytes: some Collection<UInt8>) {
        add(UInt64(bytes.count))
        var word: UInt64 = 0
        var n = 0
        for byte in bytes {
            word |= UInt64(byte) << (8 * UInt64(n))
            n += 1
            if n == 8 { add(word); word = 0; n = 0 }
        }
        if n > 0 { add(word) }
    }

    /// Adds a page of 4 KiB fast, eight bytes at a time.
    public mutating func add(page: [UInt8]) { page.withUnsafeBytes { add(page: $0) } }
    public mutating func add(page raw: UnsafeRawBufferPointer) {
        for i in stride(from: 0, to: raw.count, by: 8) { add(raw.loadUnaligned(fromByteOffset: i, as: UInt64.self)) }
    }

    public var hex: String {
        func h(_ v: UInt64) -> String {
            let s = String(v, radix: 16)
            return String(repeating: "0", count: 16 - s.count) + s
        }
        return h(a ^ (b >> 7)) + h(b ^ (a << 3))
    }
}

/// splitmix64: the workload's deterministic random source.
public struct SplitMix64: Sendable, Equatable {
    public var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
    public mutating func next(below n: Int) -> Int { Int(next() % UInt64(max(n, 1))) }
}
