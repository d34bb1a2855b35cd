import CLinux
import Foundation
import Migration
import Synchronization

/// Where `mdevsim exec --vfio` hands its seccomp listener to the process that
/// owns the devices: a Unix socket (0600) that accepts one listener per
/// connection from root or the server's own user, and serves each on a
/// thread of its own until its processes are gone.
public final class EmulationServer: Sendable {
    public let path: String
    let socket: Int32
    let backend: any VFIOBackend
    let log: @Sendable (String) -> Void
    private let active = Atomic<Int>(0)
    private let stopped = Atomic<Bool>(false)

    /// The hello a client sends with its listener.
    static let hello = "mdevsim-vfio 1\n"

    public init(path: String, backend: any VFIOBackend, log: @escaping @Sendable (String) -> Void) throws(MigrationError) {
        self.path = path
        self.backend = backend
        self.log = log
        unlink(path)
        let s = Foundation.socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard s >= 0 else { throw MigrationError(errno, "socket: \(String(cString: strerror(errno)))") }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else {
            close(s)
            throw MigrationError(ENAMETOOLONG, "\(path) is too long for a Unix socket path (at most 107 bytes)")
        }
        withUnsafeMutableBytes(of: &addr.sun_path) { $0.copyBytes(from: bytes + [0]) }
        let old = umask(0o077)
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(s, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        umask(old)
        guard rc == 0, listen(s, 16) == 0 else {
            let e = errno
            close(s)
            throw MigrationError(e, "cannot listen on \(path): \(String(cString: strerror(e)))")
        }
        socket = s
        let thread = Thread { [self] in acceptLoop() }
        thread.name = "vfio-emulation"
        thread.start()
    }

    /// Listeners being served now.
    public var activeListeners: Int { active.load(ordering: .relaxed) }

    public func stop() {
        stopped.store(true, ordering: .relaxed)
        shutdown(socket, Int32(SHUT_RDWR))
        unlink(path)
    }

    private func acceptLoop() {
        while !stopped.load(ordering: .relaxed) {
            let c = accept(socket, nil, nil)
            if c < 0 {
                if errno == EINTR { continue }
                break
            }
            serve(c)
        }
        close(socket)
    }

    private func serve(_ c: Int32) {
        defer { close(c) }
        var uid: UInt32 = 0, pid: Int32 = 0
        guard mdevsim_peer_uid(c, &uid, &pid) == 0, uid == 0 || uid == geteuid() else {
            reply(c, "error only root or uid \(geteuid()) may use this VFIO emulation\n")
            return
        }
        var fd: Int32 = -1
        var buffer = [UInt8](repeating: 0, count: 64)
        let n = buffer.withUnsafeMutableBytes { mdevsim_recv_fd(c, &fd, $0.baseAddress, $0.count) }
        guard n > 0, String(decoding: buffer.prefix(n), as: UTF8.self) == EmulationServer.hello, fd >= 0 else {
            if fd >= 0 { close(fd) }
            reply(c, "error expected '\(EmulationServer.hello.dropLast())' with a seccomp listener fd\n")
            return
        }
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        let caller = pid
        let supervisor = Supervisor(listener: fd, backend: backend, log: log)
        active.add(1, ordering: .relaxed)
        log("VFIO emulation: serving the processes of pid \(caller)")
        let thread = Thread { [self] in
            supervisor.run()
            active.subtract(1, ordering: .relaxed)
            log("VFIO emulation: pid \(caller) and its children are gone; calls served: \(supervisor.stats.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))")
        }
        thread.name = "vfio-supervisor"
        thread.start()
        reply(c, "ok\n")
    }

    private func reply(_ c: Int32, _ text: String) {
        _ = text.withCString { send(c, $0, strlen($0), Int32(MSG_NOSIGNAL)) }
    }
}

/// The client side, for `mdevsim exec --vfio`: puts the calling thread under
/// the filter and hands the listener to the server. The next execve runs the
/// command under it; nothing else of this process may open files meanwhile
/// without the server answering (it does, at once).
public enum EmulationClient {
    public static func attach(socket path: String) throws(MigrationError) {
        let s = Foundation.socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard s >= 0 else { throw MigrationError(errno, "socket: \(String(cString: strerror(errno)))") }
        defer { close(s) }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else { throw MigrationError(ENAMETOOLONG, "\(path) is too long for a Unix socket path") }
        withUnsafeMutableBytes(of: &addr.sun_path) { $0.copyBytes(from: bytes + [0]) }
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(s, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        guard rc == 0 else {
            throw MigrationError(errno, "cannot reach the VFIO emulation at \(path): \(String(cString: strerror(errno))); is the mount's daemon running?")
        }
        let listener = mdevsim_seccomp_install(Supervisor.fdRange.lowerBound, Supervisor.fdRange.upperBound)
        guard listener >= 0 else {
            throw MigrationError(-listener, "cannot install the seccomp filter: \(String(cString: strerror(-listener))) (needs Linux 5.9 or later)")
        }
        defer { close(listener) }
        let sent = EmulationServer.hello.withCString { mdevsim_send_fd(s, listener, $0, strlen($0)) }
        guard sent == 0 else { throw MigrationError(-sent, "cannot hand the listener to \(path): \(String(cString: strerror(-sent)))") }
        var answer = [UInt8](repeating: 0, count: 256)
        let n = answer.withUnsafeMutableBytes { recv(s, $0.baseAddress, $0.count, 0) }
        let text = n > 0 ? String(decoding: answer.prefix(n), as: UTF8.self) : ""
        guard text == "ok\n" else {
            throw MigrationError(EPERM, "the VFIO emulation at \(path) refused: \(text.isEmpty ? "no answer" : String(text.dropFirst(6).dropLast()))")
        }
    }
}
