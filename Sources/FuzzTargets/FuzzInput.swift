/// Reads a fuzzer's bytes as a program: each call takes what it needs and
/// gives zeros once the input runs out, so every input is a valid program.
public struct FuzzInput {
    let bytes: UnsafeRawBufferPointer
    var at = 0

    public init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    public var isEmpty: Bool { at >= bytes.count }
    public var remaining: Int { max(0, bytes.count - at) }

    public mutating func u8() -> UInt8 {
        guard at < bytes.count else { return 0 }
        defer { at += 1 }
        return bytes[at]
    }

    public mutating func u16() -> UInt16 { UInt16(u8()) | UInt16(u8()) << 8 }
    public mutating func u32() -> UInt32 { UInt32(u16()) | UInt32(u16()) << 16 }
    public mutating func u64() -> UInt64 { UInt64(u32()) | UInt64(u32()) << 32 }

    /// Up to `n` bytes (fewer at the end of the input).
    public mutating func take(_ n: Int) -> [UInt8] {
        let n = min(n, remaining)
        defer { at += n }
        return Array(bytes[at..<at + n])
    }

    /// Everything left.
    public mutating func rest() -> [UInt8] { take(remaining) }
}

/// A broken invariant: the fuzzer reports it as a crash with this message.
@inline(never)
func invariant(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String,
               file: StaticString = #fileID, line: UInt = #line) {
    if !condition() { fatalError("invariant broken: \(message())", file: file, line: line) }
}
