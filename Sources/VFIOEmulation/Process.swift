import CLinux
import Foundation
import Migration

/// The memory of the thread that made a notified call (its `notif.pid`): a
/// call's pointers are that process's, and QEMU's helper children and
/// threads are served as well as its main thread.
struct CallerMemory {
    let tid: Int32

    func read(_ address: UInt64, _ count: Int) throws(MigrationError) -> [UInt8] {
        guard count > 0 else { return [] }
        var out = [UInt8](repeating: 0, count: count)
        let n = out.withUnsafeMutableBytes { mdevsim_mem_read(tid, address, $0.baseAddress, count) }
        guard n == count else { throw MigrationError(EFAULT, "cannot read \(count) bytes at 0x\(String(address, radix: 16)) of thread \(tid)") }
        return out
    }

    func write(_ address: UInt64, _ bytes: [UInt8]) throws(MigrationError) {
        try bytes.withUnsafeBytes { b in Result { () throws(MigrationError) in try write(address, b) } }.get()
    }

    func write(_ address: UInt64, _ bytes: UnsafeRawBufferPointer) throws(MigrationError) {
        guard bytes.count > 0 else { return }
        let n = mdevsim_mem_write(tid, address, bytes.baseAddress, bytes.count)
        guard n == bytes.count else { throw MigrationError(EFAULT, "cannot write \(bytes.count) bytes at 0x\(String(address, radix: 16)) of thread \(tid)") }
    }

    /// A NUL-terminated string, read page by page so no read crosses into an unmapped page.
    func string(_ address: UInt64, max: Int = 4096) throws(MigrationError) -> String {
        var out = [UInt8]()
        var at = address
        while out.count < max {
            let chunk = Int(4096 - at % 4096)
            let bytes = try read(at, Swift.min(chunk, max - out.count))
            if let nul = bytes.firstIndex(of: 0) { return String(decoding: out + bytes[..<nul], as: UTF8.self) }
            out += bytes
            at += UInt64(bytes.count)
        }
        throw MigrationError(ENAMETOOLONG, "string at 0x\(String(address, radix: 16)) is longer than \(max) bytes")
    }
}

/// /proc facts about a thread: its thread group (which shares one fd table) and parent.
enum ProcFS {
    static func status(_ tid: Int32, _ key: String) -> Int32? {
        guard let text = try? String(contentsOfFile: "/proc/\(tid)/status", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix(key + ":") {
            return Int32(line.dropFirst(key.count + 1).trimmingCharacters(in: .whitespaces))
        }
        return nil
    }

    /// Whether `pid` has an fd `fd` open now.
    static func hasFD(_ pid: Int32, _ fd: Int32) -> Bool {
        var st = stat()
        return lstat("/proc/\(pid)/fd/\(fd)", &st) == 0
    }
}
