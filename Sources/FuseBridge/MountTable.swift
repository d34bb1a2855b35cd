import Foundation

/// This process's view of the mount table (/proc/self/mountinfo), and the
/// kernel's control files of a FUSE connection (fusectl).
public enum MountTable {
    public struct Entry: Sendable {
        public let mountpoint: String
        public let fstype: String
        /// The device number's minor: a FUSE mount's connection number.
        public let minor: Int
    }

    public static func entries() -> [Entry] {
        guard let text = try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { line in
            // id parent major:minor root mountpoint options [optional...] - fstype source superopts
            let fields = line.split(separator: " ", omittingEmptySubsequences: false)
            guard fields.count > 6, let dash = fields.firstIndex(of: "-"), dash + 1 < fields.count else { return nil }
            let device = fields[2].split(separator: ":")
            guard device.count == 2, let minor = Int(device[1]) else { return nil }
            return Entry(mountpoint: unescape(String(fields[4])), fstype: String(fields[dash + 1]), minor: minor)
        }
    }

    /// The topmost mount at `path` (symlinks and `..` resolved), if `path` is a mount point.
    public static func mount(at path: String) -> Entry? {
        let resolved = URL(fileURLWithPath: path).resolvingSymlinksInPath().standardizedFileURL.path
        return entries().last { $0.mountpoint == resolved }
    }

    /// mountinfo escapes space, tab, newline and backslash as octal.
    static func unescape(_ s: String) -> String {
        guard s.contains("\\") else { return s }
        var out = [UInt8]()
        let b = Array(s.utf8)
        var i = 0
        while i < b.count {
            if b[i] == UInt8(ascii: "\\"), i + 3 < b.count, let v = UInt8(String(decoding: b[i + 1...i + 3], as: UTF8.self), radix: 8) {
                out.append(v)
                i += 4
            } else {
                out.append(b[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The fusectl directory of connection `minor` (mounting fusectl if needed).
    public static func connectionDirectory(_ minor: Int) -> String? {
        let base = "/sys/fs/fuse/connections"
        if !FileManager.default.fileExists(atPath: "\(base)/\(minor)") && !entries().contains(where: { $0.fstype == "fusectl" }) {
            _ = Glibc.mount("fusectl", base, "fusectl", 0, nil)
        }
        let dir = "\(base)/\(minor)"
        return FileManager.default.fileExists(atPath: dir) ? dir : nil
    }

    /// Ends connection `minor` at once: every request fails, the daemon's loop
    /// returns, copies of the mount in other namespaces stop answering.
    @discardableResult
    public static func abortConnection(_ minor: Int) -> Bool {
        guard let dir = connectionDirectory(minor) else { return false }
        let fd = open(dir + "/abort", O_WRONLY)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        return write(fd, "1", 1) == 1
    }
}
