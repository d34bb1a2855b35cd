/// Parsers that accept exactly what the kernel's own helpers accept, so a
/// client sees the same success or EINVAL as on a real host.
public enum KernelParsing {
    /// `guid_parse()` on a `create` write: 36 bytes of `8-4-4-4-12` hex (either
    /// case), optionally followed by one more byte (the newline `echo` adds).
    /// Returns the canonical lowercase form the kernel names the device with.
    public static func mdevUUID(_ bytes: [UInt8]) throws(MdevError) -> String {
        guard bytes.count == 36 || bytes.count == 37 else {
            throw .invalid("create expects a 36-character UUID (optionally followed by a newline), got \(bytes.count) bytes")
        }
        var out = [UInt8]()
        out.reserveCapacity(36)
        for (i, byte) in bytes.prefix(36).enumerated() {
            if i == 8 || i == 13 || i == 18 || i == 23 {
                guard byte == UInt8(ascii: "-") else {
                    throw .invalid("'\(printable(bytes.prefix(36)))' is not a UUID: expected '-' at position \(i + 1)")
                }
                out.append(byte)
                continue
            }
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "a")...UInt8(ascii: "f"):
                out.append(byte)
            case UInt8(ascii: "A")...UInt8(ascii: "F"):
                out.append(byte + 32)
            default:
                throw .invalid("'\(printable(bytes.prefix(36)))' is not a UUID: position \(i + 1) is not a hex digit")
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// `kstrtoul(buf, 0, &val)`: optional '+', base from the prefix (0x hex,
    /// 0 octal, else decimal), one optional trailing newline, no overflow.
    public static func kstrtoul(_ bytes: [UInt8]) -> UInt64? {
        var digits = bytes[...]
        if digits.last == UInt8(ascii: "\n") { digits = digits.dropLast() }
        if digits.first == UInt8(ascii: "+") { digits = digits.dropFirst() }
        var base: UInt64 = 10
        if digits.count >= 2, digits.first == UInt8(ascii: "0"),
           digits[digits.startIndex + 1] | 0x20 == UInt8(ascii: "x") {
            base = 16
            digits = digits.dropFirst(2)
        } else if digits.first == UInt8(ascii: "0") {
            base = 8
        }
        guard !digits.isEmpty else { return nil }
        var value: UInt64 = 0
        for byte in digits {
            let digit: UInt64
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt64(byte - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = UInt64(byte - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = UInt64(byte - UInt8(ascii: "A") + 10)
            default: return nil
            }
            guard digit < base else { return nil }
            let (mul, o1) = value.multipliedReportingOverflow(by: base)
            let (sum, o2) = mul.addingReportingOverflow(digit)
            guard !o1, !o2 else { return nil }
            value = sum
        }
        return value
    }

    static func printable(_ bytes: some Sequence<UInt8>) -> String {
        String(bytes.map { $0 >= 0x20 && $0 < 0x7f ? Character(UnicodeScalar($0)) : "?" })
    }
}
