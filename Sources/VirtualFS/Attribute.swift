import Dispatch
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A sysfs text attribute: `show` renders the value, `store` parses a write.
///
/// It behaves as kernfs does for a sysfs attribute: `st_size` is 4096; opening
/// for read an attribute that has no `show` (or for write one that has no
/// `store`) is `EACCES`; `show` runs once per open and again whenever a read
/// starts at offset 0, later reads are served from that snapshot; every
/// `write(2)` is one whole `store` call whatever its offset; a write longer than
/// a page is `E2BIG`; truncation is ignored.
public struct Attribute: FileContent {
    public typealias Show = @Sendable () throws(FSError) -> String
    public typealias Store = @Sendable (_ bytes: [UInt8]) throws(FSError) -> Void
    /// A store that may finish later (a removal that waits for the device's release):
    /// returns false when done, or true after arranging to call `finish` exactly once.
    public typealias DeferredStore = @Sendable (_ bytes: [UInt8], _ finish: @escaping @Sendable (FSError?) -> Void) throws(FSError) -> Bool

    public static let pageSize = 4096

    let show: Show?
    let store: DeferredStore?

    public init(show: Show? = nil, store: Store? = nil) {
        self.show = show
        if let store {
            self.store = { (bytes: [UInt8], _: @escaping @Sendable (FSError?) -> Void) throws(FSError) -> Bool in
                try store(bytes)
                return false
            }
        } else {
            self.store = nil
        }
    }

    public init(show: Show? = nil, storeLater: @escaping DeferredStore) {
        self.show = show
        self.store = storeLater
    }

    /// A read-only attribute whose value never changes.
    public static func constant(_ value: String) -> Attribute {
        Attribute(show: { value })
    }

    public var size: Int { Attribute.pageSize }

    /// The permission bits the kernel gives such an attribute (0444, 0200 or 0644).
    public var defaultPermissions: UInt32 {
        (show != nil ? 0o444 : 0) | (store != nil ? 0o200 : 0)
    }

    public func open(_ node: Node, access: OpenAccess) throws(FSError) -> any OpenFile {
        if access.contains(.read) && show == nil {
            throw .accessDenied("this attribute is write-only; write to it instead of reading it")
        }
        if access.contains(.write) && store == nil {
            throw .accessDenied("this attribute is read-only")
        }
        return OpenAttribute(node: node, attribute: self)
    }
}

final class OpenAttribute: OpenFile {
    let node: Node
    let attribute: Attribute
    let snapshot = Mutex<[UInt8]?>(nil)

    init(node: Node, attribute: Attribute) {
        self.node = node
        self.attribute = attribute
    }

    func read(offset: Int, size: Int, reply: (UnsafeRawBufferPointer) -> Void) throws(FSError) {
        try node.checkAlive()
        guard let show = attribute.show else { throw .accessDenied("write-only attribute") }
        var bytes = snapshot.withLock { $0 }
        if offset == 0 || bytes == nil {
            bytes = Array(try show().utf8.prefix(Attribute.pageSize))
            snapshot.withLock { $0 = bytes }
        }
        let all = bytes!
        let start = min(max(offset, 0), all.count)
        let end = min(start + max(size, 0), all.count)
        all[start..<end].withUnsafeBytes { reply($0) }
    }

    func write(offset: Int, data: UnsafeRawBufferPointer, later: @escaping @Sendable (Result<Int, FSError>) -> Void) throws(FSError) -> Int? {
        try node.checkAlive()
        guard let store = attribute.store else { throw .accessDenied("read-only attribute") }
        guard data.count <= Attribute.pageSize else {
            throw FSError(E2BIG, "a sysfs attribute takes at most \(Attribute.pageSize) bytes per write")
        }
        let n = data.count
        let deferred = try store(Array(data)) { error in later(error.map { .failure($0) } ?? .success(n)) }
        return deferred ? nil : n
    }

    /// For callers without a request to answer later (tools, tests): waits for a deferred store.
    func write(offset: Int, data: UnsafeRawBufferPointer) throws(FSError) -> Int {
        let done = DispatchSemaphore(value: 0)
        let result = Mutex<Result<Int, FSError>>(.success(0))
        if let n = try write(offset: offset, data: data, later: { r in result.withLock { $0 = r }; done.signal() }) { return n }
        done.wait()
        return try result.withLock { $0 }.get()
    }
}

/// A fixed-size binary attribute (sysfs `bin_attribute`, e.g. PCI `config`):
/// positional reads, and writes only if a writer is given.
public struct BinaryAttribute: FileContent {
    public typealias Reader = @Sendable (_ offset: Int, _ count: Int) throws(FSError) -> [UInt8]
    public typealias Writer = @Sendable (_ offset: Int, _ bytes: [UInt8]) throws(FSError) -> Int

    public let size: Int
    let reader: Reader
    let writer: Writer?

    public init(size: Int, read: @escaping Reader, write: Writer? = nil) {
        self.size = size
        self.reader = read
        self.writer = write
    }

    /// Constant bytes, such as a snapshot of a device's config space.
    public static func constant(_ bytes: [UInt8]) -> BinaryAttribute {
        BinaryAttribute(size: bytes.count, read: { offset, count in
            let start = min(max(offset, 0), bytes.count)
            return Array(bytes[start..<min(start + max(count, 0), bytes.count)])
        })
    }

    public func open(_ node: Node, access: OpenAccess) throws(FSError) -> any OpenFile {
        if access.contains(.write) && writer == nil {
            throw .accessDenied("this binary attribute is read-only")
        }
        return OpenBinaryAttribute(node: node, attribute: self)
    }
}

final class OpenBinaryAttribute: OpenFile {
    let node: Node
    let attribute: BinaryAttribute

    init(node: Node, attribute: BinaryAttribute) {
        self.node = node
        self.attribute = attribute
    }

    func read(offset: Int, size: Int, reply: (UnsafeRawBufferPointer) -> Void) throws(FSError) {
        try node.checkAlive()
        guard offset < attribute.size else { return reply(UnsafeRawBufferPointer(start: nil, count: 0)) }
        try attribute.reader(offset, min(size, attribute.size - offset)).withUnsafeBytes { reply($0) }
    }

    func write(offset: Int, data: UnsafeRawBufferPointer) throws(FSError) -> Int {
        try node.checkAlive()
        guard let writer = attribute.writer else { throw .accessDenied("read-only binary attribute") }
        guard offset < attribute.size else { throw FSError(ENOSPC, "write past the end of a \(attribute.size)-byte attribute") }
        return try writer(offset, Array(data.prefix(attribute.size - offset)))
    }
}
