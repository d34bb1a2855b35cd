import GPUModel
import MdevCore
import Migration
import StateStream
import Synchronization
import VirtualFS
#if canImport(Glibc)
import Glibc
#endif

/// `vfio/<uuid>/migration/`: the v2 protocol as files, since FUSE can neither
/// pass VFIO ioctls nor hand out a data_fd.
///
///     state           read: current state; write: target (name or number)
///     features        the VFIO_DEVICE_FEATURE_MIGRATION flags
///     data            the data_fd: read while saving, write while resuming
///     precopy_info    VFIO_MIG_GET_PRECOPY_INFO (EINVAL outside PRE_COPY*)
///     stop_copy_size  VFIO_DEVICE_FEATURE_MIG_DATA_SIZE
///     error           the last failure, in words
enum MigrationFiles {
    static func add(to dir: Inode, _ mig: any MigrationEndpoint, opens: OpenCount, v1: Bool, _ c: inout TreeContents) throws(FSError) {
        let m = try c.directory("migration", in: dir)
        let holds = SessionHolds()
        try c.attribute("error", in: m, Attribute(show: { mig.lastError.isEmpty ? "" : mig.lastError + "\n" }))
        // A v1 device migrates through regions/migration; only its last error is here.
        if v1 { return }
        try c.attribute("state", in: m, Attribute(
            show: { "\(mig.state)\n" },
            store: { (bytes: [UInt8]) throws(FSError) in
                let text = String(decoding: bytes, as: UTF8.self)
                guard let target = MigrationState(text: text) else {
                    throw .invalid("unknown state '\(text.prefix(40))'; use STOP, RUNNING, STOP_COPY, RESUMING, RUNNING_P2P, PRE_COPY or PRE_COPY_P2P")
                }
                // A new session of another kind would take the device from
                // whoever holds the current one's data open.
                if let kind = target.sessionKind, kind != mig.state.sessionKind, holds.isHeld(mig.currentSession) {
                    throw FSError(EBUSY, "migration/data of the device's current \(mig.state) session is open elsewhere; "
                                  + "\(target) would start a new session under it: wait for that reader or writer to close data, or reset the device")
                }
                do throws(MigrationError) { try mig.setState(target) } catch { throw FSError(error.errno, error.message) }
            }), permissions: 0o644)
        try c.attribute("features", in: m, .constant("\(mig.features)\n"))
        try c.file("data", in: m, DataFile(device: mig, opens: opens, holds: holds), permissions: 0o600)
        try c.attribute("precopy_info", in: m, Attribute(show: { () throws(FSError) -> String in
            do throws(MigrationError) {
                let info = try mig.precopyInfo()
                return "initial_bytes \(info.initialBytes)\ndirty_bytes \(info.dirtyBytes)\n"
            } catch { throw FSError(error.errno, error.message) }
        }))
        try c.attribute("stop_copy_size", in: m, Attribute(show: { () throws(FSError) -> String in
            do throws(MigrationError) { return "\(try mig.stopCopyBytes())\n" } catch { throw FSError(error.errno, error.message) }
        }))
    }
}

/// The data_fd as a file: a handle belongs to the session that was open when
/// it was opened; once that session ends, the handle fails like a closed fd.
/// It is a stream, as the data_fd is: a handle opened in the middle of a
/// saving session continues where the last one stopped (so `cat data >> blob`
/// twice works), and one handle at a time may hold a session (EBUSY for a second).
struct DataFile: FileContent {
    let device: any MigrationEndpoint
    let opens: OpenCount
    let holds: SessionHolds
    var size: Int { 0 }

    func open(_ node: Node, access: OpenAccess) throws(FSError) -> any OpenFile {
        let session = device.currentSession
        try holds.take(session, state: device.state)
        opens.increment()
        return OpenData(node: node, device: device, session: session, base: device.streamPosition(session: session),
                        opens: opens, holds: holds)
    }
}

/// Which sessions have a `data` handle open.
final class SessionHolds: Sendable {
    private let held = Mutex<Set<UInt64>>([])

    func take(_ session: UInt64?, state: MigrationState) throws(FSError) {
        guard let session else { return }
        try held.withLock { (h: inout Set<UInt64>) throws(FSError) in
            guard h.insert(session).inserted else {
                throw FSError(EBUSY, "migration/data of this \(state) session is already open; one reader or writer at a time, "
                              + "as with the kernel's single data_fd: wait for it to close, or reset the device")
            }
        }
    }

    func release(_ session: UInt64?) {
        guard let session else { return }
        held.withLock { _ = $0.remove(session) }
    }

    func isHeld(_ session: UInt64?) -> Bool {
        guard let session else { return false }
        return held.withLock { $0.contains(session) }
    }
}

final class OpenData: OpenFile {
    let node: Node
    let device: any MigrationEndpoint
    let session: UInt64?
    /// The stream offset this handle's file offset 0 stands for.
    let base: Int
    let opens: OpenCount
    let holds: SessionHolds

    init(node: Node, device: any MigrationEndpoint, session: UInt64?, base: Int, opens: OpenCount, holds: SessionHolds) {
        self.node = node
        self.device = device
        self.session = session
        self.base = base
        self.opens = opens
        self.holds = holds
    }

    func read(offset: Int, size: Int, reply: (UnsafeRawBufferPointer) -> Void) throws(FSError) {
        try node.checkAlive()
        do throws(MigrationError) {
            try device.read(session: session, offset: base + offset, size: size, reply: reply)
        } catch { throw FSError(error.errno, error.message) }
    }

    func write(offset: Int, data: UnsafeRawBufferPointer) throws(FSError) -> Int {
        try node.checkAlive()
        do throws(MigrationError) { return try device.write(session: session, bytes: data) } catch {
            throw FSError(error.errno, error.message)
        }
    }

    func release() {
        holds.release(session)
        opens.decrement()
    }
}

/// The proposed `migration_version` attribute: one line naming the device
/// model, driver version and migration parameters. Reading gives the source's;
/// writing a source's to a destination succeeds only if the destination can
/// load that source's state.
enum MigrationVersion {
    static func text(_ h: StreamHeader) -> String {
        ([h.model, h.driverVersion] + h.parameters.map { "\($0.name)=\($0.value)" }).joined(separator: ";") + "\n"
    }

    static func parse(_ text: String) -> StreamHeader? {
        let fields = text.split(separator: "\n").first.map { $0.split(separator: ";", omittingEmptySubsequences: false) } ?? []
        guard fields.count >= 2 else { return nil }
        var params: [(String, String)] = []
        for f in fields.dropFirst(2) {
            guard let eq = f.firstIndex(of: "=") else { return nil }
            params.append((String(f[..<eq]), String(f[f.index(after: eq)...])))
        }
        return StreamHeader(model: String(fields[0]), driverVersion: String(fields[1]), parameters: params)
    }

    static func attribute(_ identity: @escaping @Sendable () -> StreamHeader, onRefusal: @escaping @Sendable (String) -> Void) -> Attribute {
        Attribute(
            show: { text(identity()) },
            store: { (bytes: [UInt8]) throws(FSError) in
                let written = String(decoding: bytes, as: UTF8.self)
                guard let source = parse(written) else {
                    let reason = "migration_version '\(written.prefix(80))' is not model;version;name=value..."
                    onRefusal(reason)
                    throw .invalid(reason)
                }
                let problems = Compatibility.problems(source: source, destination: identity())
                guard problems.isEmpty else {
                    let reason = "incompatible: " + problems.joined(separator: "; ")
                    onRefusal(reason)
                    throw .invalid(reason)
                }
            })
    }
}
