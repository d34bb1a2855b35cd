#if canImport(Glibc)
import Glibc
#endif

/// How a file is opened.
public struct OpenAccess: OptionSet, Sendable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    public static let read = OpenAccess(rawValue: 1)
    public static let write = OpenAccess(rawValue: 2)

    /// From `open(2)` flags (`O_RDONLY`, `O_WRONLY`, `O_RDWR`).
    public init(openFlags: Int32) {
        switch openFlags & 3 {
        case 0: self = .read
        case 1: self = .write
        default: self = [.read, .write]
        }
    }
}

/// The object that serves a file's bytes. Each `open` gets its own `OpenFile`,
/// which is where per-open state (a sysfs `show()` snapshot, a stream position) lives.
public protocol FileContent: Sendable {
    /// The `st_size` reported by `stat`.
    var size: Int { get }
    /// Opens the file; refuse an access mode the file does not support with `EACCES`.
    func open(_ node: Node, access: OpenAccess) throws(FSError) -> any OpenFile
    /// `truncate(2)`/`O_TRUNC`. Sysfs ignores truncation of attributes.
    func truncate(_ node: Node) throws(FSError)
}

extension FileContent {
    public func truncate(_ node: Node) throws(FSError) {}
}

/// One open of a file.
///
/// `read` hands its bytes to `reply` exactly once on success, so a content that
/// already holds its bytes can give them without a copy.
public protocol OpenFile: AnyObject, Sendable {
    func read(offset: Int, size: Int, reply: (UnsafeRawBufferPointer) -> Void) throws(FSError)
    func write(offset: Int, data: UnsafeRawBufferPointer) throws(FSError) -> Int
    /// A write whose answer may come later, as a kernel store that blocks: the count now,
    /// or nil after arranging for `later` to be called exactly once (from any thread)
    /// with the result. The request is answered then; no worker waits meanwhile.
    func write(offset: Int, data: UnsafeRawBufferPointer, later: @escaping @Sendable (Result<Int, FSError>) -> Void) throws(FSError) -> Int?
    func release()
}

extension OpenFile {
    public func release() {}
    public func write(offset: Int, data: UnsafeRawBufferPointer, later: @escaping @Sendable (Result<Int, FSError>) -> Void) throws(FSError) -> Int? {
        try write(offset: offset, data: data)
    }
}

extension OpenFile {
    /// Reads into an array: for tests and tools that are not on a hot path.
    public func readBytes(offset: Int, size: Int) throws(FSError) -> [UInt8] {
        var out: [UInt8] = []
        try read(offset: offset, size: size) { out = Array($0) }
        return out
    }
}

extension Tree {
    /// Opens the file at `path` (no links followed), writes `bytes` at offset 0
    /// and releases it: a client's open+write+close without FUSE or the
    /// operation hook. For tests, fuzz targets and tools off the hot path.
    @discardableResult
    public func writeFile(_ path: String, _ bytes: [UInt8]) throws(FSError) -> Int {
        let file = try openFile(path, .write)
        defer { file.release() }
        var result: Result<Int, FSError> = .success(0)
        bytes.withUnsafeBytes { raw in
            do throws(FSError) { result = .success(try file.write(offset: 0, data: raw)) } catch { result = .failure(error) }
        }
        return try result.get()
    }

    /// Opens the file at `path`, reads up to `size` bytes from offset 0 and releases it.
    public func readFile(_ path: String, size: Int = 4096) throws(FSError) -> [UInt8] {
        let file = try openFile(path, .read)
        defer { file.release() }
        return try file.readBytes(offset: 0, size: size)
    }

    private func openFile(_ path: String, _ access: OpenAccess) throws(FSError) -> any OpenFile {
        let node = try resolve(path)
        guard case .file(let content) = node.kind else { throw FSError(EISDIR, "\(path) is not a file") }
        return try content.open(node, access: access)
    }
}
