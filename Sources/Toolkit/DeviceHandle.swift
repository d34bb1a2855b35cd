import Foundation

/// A failure of a tool, with the exit code the command returns.
public struct ToolError: Error, CustomStringConvertible {
    public let message: String
    public let exitCode: Int32
    public init(_ message: String, exitCode: Int32 = 1) {
        self.message = message
        self.exitCode = exitCode
    }
    public var description: String { message }
}

/// A device as outside tools see it: its `vfio/<uuid>/` folder in a mount. The
/// tools talk to it only through these files, so they work on any device that
/// exposes them.
public struct DeviceHandle: Sendable {
    public let path: String
    public enum MigrationProtocol: String, Sendable { case v1, v2 }

    /// Accepts `DIR/vfio/<uuid>`, a sysfs device (`DIR/sys/bus/mdev/devices/<uuid>`,
    /// found through its `vfio-dev/*/mdevsim` link) or anything that resolves to one.
    public init(_ argument: String) throws {
        let fm = FileManager.default
        let resolved = URL(fileURLWithPath: argument).resolvingSymlinksInPath().path
        if fm.fileExists(atPath: resolved + "/migration") && fm.fileExists(atPath: resolved + "/regions") {
            path = resolved
            return
        }
        if let entries = try? fm.contentsOfDirectory(atPath: resolved + "/vfio-dev"), let first = entries.first {
            let link = URL(fileURLWithPath: resolved + "/vfio-dev/\(first)/mdevsim").resolvingSymlinksInPath().path
            if fm.fileExists(atPath: link + "/migration") {
                path = link
                return
            }
        }
        throw ToolError("\(argument) is not an mdevsim device: expected DIR/vfio/<uuid> or DIR/sys/bus/mdev/devices/<uuid>", exitCode: 2)
    }

    /// A device served from outside the simulator (`mount --vfio-device`): no
    /// simulated registers, state_digest or migration_version.
    public var isExternal: Bool { !FileManager.default.fileExists(atPath: path + "/state_digest") }

    public var uuid: String { URL(fileURLWithPath: path).lastPathComponent }
    public var migrationProtocol: MigrationProtocol {
        FileManager.default.fileExists(atPath: path + "/migration/state") ? .v2 : .v1
    }

    public func read(_ name: String) throws -> String {
        try FileIO.readText(path + "/" + name)
    }

    public func write(_ name: String, _ value: String) throws {
        do {
            try FileIO.writeText(path + "/" + name, value)
        } catch let e as FileIO.Failure {
            let reason = (try? read("migration/error"))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
            throw ToolError("writing '\(value)' to \(path)/\(name) failed: \(e.text)" + (reason.isEmpty ? "" : ": \(reason)"))
        }
    }

    public var state: String { ((try? read("migration/state")) ?? "").trimmingCharacters(in: .whitespacesAndNewlines) }
    public var digest: String { ((try? read("state_digest")) ?? "").trimmingCharacters(in: .whitespacesAndNewlines) }
    public var migrationVersion: String? { try? read("sysfs/migration_version") }

    public func precopyInfo() throws -> (initial: Int, dirty: Int) {
        let text = try read("migration/precopy_info")
        var values: [String: Int] = [:]
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: " ")
            if parts.count == 2 { values[String(parts[0])] = Int(parts[1]) }
        }
        return (values["initial_bytes"] ?? 0, values["dirty_bytes"] ?? 0)
    }
}

/// Plain POSIX file I/O with errno kept, as any outside tool would do it.
public enum FileIO {
    public struct Failure: Error {
        public let errno: Int32
        public let path: String
        public var text: String { String(cString: strerror(errno)) }
    }

    public static func readText(_ path: String) throws -> String {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw Failure(errno: errno, path: path) }
        defer { close(fd) }
        var out = [UInt8]()
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = Glibc.read(fd, &buf, buf.count)
            if n < 0 { throw Failure(errno: errno, path: path) }
            if n == 0 { break }
            out += buf[0..<n]
        }
        return String(decoding: out, as: UTF8.self)
    }

    public static func writeText(_ path: String, _ text: String) throws {
        let fd = open(path, O_WRONLY)
        guard fd >= 0 else { throw Failure(errno: errno, path: path) }
        defer { close(fd) }
        let bytes = Array(text.utf8)
        guard Glibc.write(fd, bytes, bytes.count) == bytes.count else { throw Failure(errno: errno, path: path) }
    }

    /// Reads a whole file (or stdin for "-").
    public static func readAll(_ path: String) throws -> [UInt8] {
        let fd = path == "-" ? 0 : open(path, O_RDONLY)
        guard fd >= 0 else { throw ToolError("cannot open \(path): \(String(cString: strerror(errno)))", exitCode: 2) }
        defer { if path != "-" { close(fd) } }
        // A regular file is read straight into one buffer of its size; a pipe grows one.
        var st = stat()
        var capacity = 1 << 20
        if fstat(fd, &st) == 0, st.st_mode & S_IFMT == S_IFREG { capacity = Int(st.st_size) + 1 }
        var out = [UInt8](repeating: 0, count: capacity)
        var used = 0
        while true {
            if used == out.count { out += [UInt8](repeating: 0, count: max(out.count, 1 << 20)) }
            let n = out.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress! + used, $0.count - used) }
            if n < 0 { throw ToolError("cannot read \(path): \(String(cString: strerror(errno)))", exitCode: 2) }
            if n == 0 { break }
            used += n
        }
        out.removeLast(out.count - used)
        return out
    }

    public static func writeAll(_ path: String, _ bytes: [UInt8]) throws {
        let fd = path == "-" ? 1 : open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw ToolError("cannot create \(path): \(String(cString: strerror(errno)))", exitCode: 2) }
        defer { if path != "-" { close(fd) } }
        var at = 0
        try bytes.withUnsafeBytes { raw in
            while at < raw.count {
                let n = Glibc.write(fd, raw.baseAddress! + at, min(1 << 20, raw.count - at))
                if n <= 0 { throw ToolError("cannot write \(path): \(String(cString: strerror(errno)))", exitCode: 2) }
                at += n
            }
        }
    }
}

/// One open data handle (the data_fd of the current session).
public final class DataStream {
    let fd: Int32
    public let path: String
    /// The device's folder (for its migration/error when a write is refused).
    let device: String

    public init(_ device: DeviceHandle, write: Bool) throws {
        path = device.path + "/migration/data"
        self.device = device.path
        fd = open(path, write ? O_WRONLY : O_RDONLY)
        guard fd >= 0 else { throw ToolError("cannot open \(path): \(String(cString: strerror(errno)))") }
    }

    deinit { close(fd) }

    public enum ReadResult { case data(Int), drained, end }

    /// Reads up to `buffer.count` bytes: data, ENOMSG (nothing more for now) or end of stream.
    public func read(into buffer: inout [UInt8]) throws -> ReadResult {
        let n = Glibc.read(fd, &buffer, buffer.count)
        if n > 0 { return .data(n) }
        if n == 0 { return .end }
        if errno == ENOMSG { return .drained }
        throw ToolError("reading \(path) failed: \(String(cString: strerror(errno)))")
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        var at = 0
        while at < bytes.count {
            let n = Glibc.write(fd, bytes.baseAddress! + at, bytes.count - at)
            if n <= 0 {
                let why = String(cString: strerror(errno))
                // The device says why it refused (the stream's end is checked at its last write).
                let reason = (try? String(contentsOfFile: device + "/migration/error", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
                throw ToolError("writing \(path) failed: \(why)" + (reason.isEmpty ? "" : ": \(reason)"))
            }
            at += n
        }
    }
}
