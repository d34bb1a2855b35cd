import Foundation
import Simulator

/// Debian's QEMU (qemu-system-x86), unmodified, as a VMM developer runs it.
let qemuBinary = "/usr/bin/qemu-system-x86_64"
let haveQEMU = !hiddenPrerequisites.contains("qemu") && FileManager.default.isExecutableFile(atPath: qemuBinary)
/// KVM when this machine lets us use it, TCG otherwise.
let qemuAccel: String = {
    let fd = open("/dev/kvm", O_RDWR | O_CLOEXEC)
    if fd >= 0 { close(fd); return "kvm" }
    return "tcg"
}()

/// A QEMU started under `mdevsim exec --vfio`, driven over QMP; killed when the test ends.
final class QEMU {
    let process = Process()
    let qmpPath: String
    let log: String
    private var socket: Int32 = -1
    /// Bytes read and not yet parsed (QMP ends lines with \r\n, one Character in Swift: split bytes).
    private var pending: [UInt8] = []

    /// `arguments` follow the common ones (machine, no display, QMP, accelerator).
    init(root: String, arguments: [String], paused: Bool = true, accel: String = qemuAccel) throws {
        let dir = makeTempDirectory("qemu")
        qmpPath = dir + "/qmp.sock"
        log = dir + "/qemu.log"
        FileManager.default.createFile(atPath: log, contents: nil)
        process.executableURL = URL(fileURLWithPath: mdevsimBinary)
        process.arguments = ["exec", root, "--vfio", "--", qemuBinary, "-M", "q35", "-m", "256", "-nodefaults", "-display", "none",
                             "-qmp", "unix:\(qmpPath),server=on,wait=off", "-accel", accel] + (paused ? ["-S"] : []) + arguments
        let out = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        process.standardOutput = out
        process.standardError = out
        process.standardInput = FileHandle.nullDevice
        try process.run()
        guard waitFor({ connect() || !process.isRunning }, seconds: 30), socket >= 0 else {
            throw QEMUError("QEMU did not open QMP at \(qmpPath): \(output)")
        }
        _ = try readMessage()   // greeting
        _ = try command("qmp_capabilities")
    }

    deinit { stop() }

    var output: String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }

    func stop() {
        if socket >= 0 { close(socket); socket = -1 }
        if process.isRunning {
            process.terminate()
            if !waitFor({ !self.process.isRunning }, seconds: 5) { kill(process.processIdentifier, SIGKILL) }
        }
        process.waitUntilExit()
    }

    private func connect() -> Bool {
        let s = Foundation.socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { $0.copyBytes(from: Array(qmpPath.utf8) + [0]) }
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Foundation.connect(s, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        if rc == 0 { socket = s; return true }
        close(s)
        return false
    }

    private func readMessage(timeout: Double = 60) throws -> [String: Any] {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            if let nl = pending.firstIndex(of: 0x0a) {
                let line = Data(pending[..<nl])
                pending.removeSubrange(...nl)
                if let obj = try? JSONSerialization.jsonObject(with: line) as? [String: Any] { return obj }
                continue
            }
            var p = pollfd(fd: socket, events: Int16(POLLIN), revents: 0)
            guard Date() < deadline else { throw QEMUError("no QMP answer in \(timeout) s; QEMU said: \(output)") }
            if poll(&p, 1, 200) <= 0 { continue }
            var buf = [UInt8](repeating: 0, count: 65536)
            let n = read(socket, &buf, buf.count)
            guard n > 0 else { throw QEMUError("QMP connection closed; QEMU said: \(output)") }
            pending += buf.prefix(n)
        }
    }

    /// Events seen while waiting for answers.
    private(set) var events: [[String: Any]] = []

    @discardableResult
    func command(_ name: String, _ arguments: [String: Any] = [:], timeout: Double = 60) throws -> Any {
        var message: [String: Any] = ["execute": name]
        if !arguments.isEmpty { message["arguments"] = arguments }
        let data = try JSONSerialization.data(withJSONObject: message) + Data("\n".utf8)
        _ = data.withUnsafeBytes { write(socket, $0.baseAddress, $0.count) }
        while true {
            let m = try readMessage(timeout: timeout)
            if m["event"] != nil { events.append(m); continue }
            if let e = m["error"] as? [String: Any] { throw QEMUError("\(name): \(e["desc"] ?? e)") }
            return m["return"] ?? [:]
        }
    }

    /// Human monitor commands through QMP.
    func hmp(_ line: String) throws -> String { (try command("human-monitor-command", ["command-line": line]) as? String) ?? "" }
}

struct QEMUError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// Serves the host's VFIO emulation on a socket beside the mount, for `exec --vfio`; stopped at the end.
func withVFIOEmulation<R>(_ h: MountedHost, _ body: () throws -> R) throws -> R {
    let dir = makeTempDirectory("vfio")
    defer { h.host.stopVFIO(); try? FileManager.default.removeItem(atPath: dir) }
    try h.host.serveVFIO(socket: dir + "/vfio.sock", log: { _ in })
    return try body()
}

/// Guests boot under TCG unless MDEVSIM_GUEST_ACCEL says otherwise: on these machines KVM
/// (nested) realizes devices but cannot boot Linux (QEMU's default CPU prints nothing, -cpu host
/// has MSR 0x10a refused); TCG boots the test guest in about 6 s of CPU.
let guestAccel = ProcessInfo.processInfo.environment["MDEVSIM_GUEST_ACCEL"] ?? "tcg"

/// A TCP port on 127.0.0.1 nothing listens on now (for `-incoming`).
func freePort() -> Int {
    let s = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(s) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(s, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(s, $0, &len) } }
    return Int(UInt16(bigEndian: addr.sin_port))
}

extension QEMU {
    /// Migrates to `uri` and waits for the end: the final query-migrate.
    func migrate(to uri: String, timeout: Double = 60) throws -> [String: Any] {
        try command("migrate", ["uri": uri])
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let r = try command("query-migrate") as? [String: Any] ?? [:]
            if let status = r["status"] as? String, ["completed", "failed", "cancelled"].contains(status) { return r }
            usleep(100_000)
        }
        throw QEMUError("migration to \(uri) did not end in \(timeout) s")
    }

    /// The return path: the source waits for the destination's verdict, so a destination that
    /// fails to load fails the migration and the source runs on.
    func returnPath() throws {
        try command("migrate-set-capabilities", ["capabilities": [["capability": "return-path", "state": true]]])
    }

    var status: String { ((try? command("query-status")) as? [String: Any])?["status"] as? String ?? "?" }
}
