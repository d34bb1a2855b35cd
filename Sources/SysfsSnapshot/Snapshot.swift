import Foundation
import VirtualFS

/// A recorded sysfs subtree: directories, attributes with their content and
/// mode, and links with their real targets. Paths are absolute paths of the
/// recorded host without the leading slash (`sys/devices/pci0000:00/...`), so
/// mounting a snapshot puts every entry where it was. See docs/snapshot-format.md.
public struct Snapshot: Codable, Sendable, Equatable {
    public static let format = "mdevsim-sysfs-snapshot/1"

    public struct Entry: Codable, Sendable, Equatable {
        public enum Kind: String, Codable, Sendable { case dir, file, link }
        public var path: String
        public var kind: Kind
        public var mode: String
        /// Text content (UTF-8 files).
        public var content: String?
        /// Binary content, base64 (e.g. PCI config space).
        public var base64: String?
        /// Why the file could not be read (the errno's name); it is served empty and write-only-looking.
        public var unreadable: String?
        public var target: String?
        /// A file's st_size as recorded (4096 for a text attribute, the real size for a
        /// binary one such as config); absent in older snapshots.
        public var size: Int?

        enum CodingKeys: String, CodingKey { case path, kind = "type", mode, content, base64, unreadable, target, size }
    }

    public var formatVersion = Snapshot.format
    public var source: String
    public var entries: [Entry]

    enum CodingKeys: String, CodingKey { case formatVersion = "format", source, entries }

    /// Largest file content recorded (sysfs attributes are at most a page; binary ones a few KiB).
    public static let maxFile = 1 << 20

    /// Records `root` (an absolute path) and everything below it, without following links.
    public static func capture(_ root: String) throws -> Snapshot {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard root.hasPrefix("/"), fm.fileExists(atPath: root, isDirectory: &isDir) else {
            throw SnapshotError("\(root) does not exist (give an absolute path such as /sys/devices/pci0000:00)")
        }
        var entries: [Entry] = []
        func visit(_ path: String) {
            var st = stat()
            guard lstat(path, &st) == 0 else { return }
            let rel = String(path.dropFirst())
            let mode = String(st.st_mode & 0o7777, radix: 8)
            switch st.st_mode & S_IFMT {
            case S_IFLNK:
                let target = (try? fm.destinationOfSymbolicLink(atPath: path)) ?? ""
                entries.append(Entry(path: rel, kind: .link, mode: mode, target: target))
            case S_IFDIR:
                entries.append(Entry(path: rel, kind: .dir, mode: mode))
                for name in ((try? fm.contentsOfDirectory(atPath: path)) ?? []).sorted() { visit(path + "/" + name) }
            case S_IFREG:
                var e = Entry(path: rel, kind: .file, mode: mode)
                e.size = Int(st.st_size)
                switch read(path) {
                case .success(let bytes):
                    if let text = String(validating: bytes, as: UTF8.self), !bytes.contains(0) { e.content = text } else { e.base64 = Data(bytes).base64EncodedString() }
                case .failure(let error):
                    e.unreadable = error.name
                }
                entries.append(e)
            default:
                break
            }
        }
        visit(root.hasSuffix("/") ? String(root.dropLast()) : root)
        return Snapshot(source: root, entries: entries)
    }

    static func read(_ path: String) -> Result<[UInt8], FSError> {
        let fd = open(path, O_RDONLY | O_NONBLOCK)
        guard fd >= 0 else { return .failure(FSError(errno)) }
        defer { close(fd) }
        var out = [UInt8]()
        var buf = [UInt8](repeating: 0, count: 4096)
        while out.count < maxFile {
            let n = Glibc.read(fd, &buf, buf.count)
            if n < 0 { return .failure(FSError(errno)) }
            if n == 0 { break }
            out += buf[0..<n]
        }
        return .success(out)
    }

    public func write(to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let data = try encoder.encode(self)
        if path == "-" { FileHandle.standardOutput.write(data) } else { try data.write(to: URL(fileURLWithPath: path)) }
    }

    public static func load(_ path: String) throws -> Snapshot {
        guard let data = FileManager.default.contents(atPath: path) else { throw SnapshotError("\(path): cannot read the snapshot") }
        let s: Snapshot
        do { s = try JSONDecoder().decode(Snapshot.self, from: data) } catch { throw SnapshotError("\(path): not a snapshot: \(error)") }
        guard s.formatVersion == Snapshot.format else { throw SnapshotError("\(path): format '\(s.formatVersion)' is not \(Snapshot.format)") }
        for e in s.entries where e.path.isEmpty || e.path.hasPrefix("/") || e.path.split(separator: "/").contains("..") {
            throw SnapshotError("\(path): entry '\(e.path)' is not a relative path inside the tree")
        }
        return s
    }

    /// Adds every entry to a tree, as static nodes: files read as recorded and refuse writes.
    public func add(to tree: Tree) throws(FSError) {
        try tree.update { (c: inout TreeContents) throws(FSError) in
            for e in entries {
                let parts = e.path.split(separator: "/").map(String.init)
                let parent = try c.directories(parts.dropLast().joined(separator: "/"))
                let name = parts.last!
                let mode = UInt32(e.mode, radix: 8) ?? 0o444
                switch e.kind {
                case .dir:
                    try c.directory(name, in: parent, permissions: mode)
                case .link:
                    try c.symlink(name, in: parent, to: e.target ?? "")
                case .file:
                    let bytes: [UInt8] = e.content.map { Array($0.utf8) } ?? e.base64.flatMap { Data(base64Encoded: $0).map(Array.init) } ?? []
                    // An attribute that could not be read fails the same way when served.
                    let failure = e.unreadable.map { FSError(FSError.errno(named: $0) ?? EIO, "recorded as unreadable") }
                    try c.file(name, in: parent, BinaryAttribute(size: e.size ?? max(bytes.count, 4096), read: { (offset: Int, count: Int) throws(FSError) -> [UInt8] in
                        if let failure { throw failure }
                        let start = min(max(offset, 0), bytes.count)
                        return Array(bytes[start..<min(start + max(count, 0), bytes.count)])
                    }), permissions: mode)
                }
            }
        }
    }
}

public struct SnapshotError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
