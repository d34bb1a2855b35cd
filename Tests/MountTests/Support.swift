import Foundation
import FuseBridge
import Logging
import MdevCore
import MdevSysfs
import Simulator
import Synchronization
import Testing
import VirtualFS

/// Whether this is CI's run (`CI=true`): there a missing prerequisite fails
/// the run instead of skipping the tests that need it.
let isCI = ProcessInfo.processInfo.environment["CI"] == "true"

/// Prerequisites to pretend are missing (`MDEVSIM_TEST_HIDE=fuse,root,mdevctl`),
/// to check that a run without them fails in CI and skips visibly elsewhere.
let hiddenPrerequisites = Set((ProcessInfo.processInfo.environment["MDEVSIM_TEST_HIDE"] ?? "").split(separator: ",").map(String.init))

/// FUSE tests need /dev/fuse and permission to mount.
let canMount: Bool = !hiddenPrerequisites.contains("fuse")
    && access("/dev/fuse", R_OK | W_OK) == 0 && FileManager.default.fileExists(atPath: "/usr/bin/fusermount3")

extension Trait where Self == ConditionTrait {
    /// A suite or test that needs `met`: skipped with `what` as the reason
    /// (swift test lists it as skipped, never as passed); in CI it runs anyway
    /// and fails, and `PrerequisiteTests` names what is missing.
    static func requires(_ met: Bool, _ what: Comment) -> Self {
        .enabled(if: met || isCI, what)
    }
}

let testLogger: Logger = {
    var logger = Logger(label: "mdevsim-test")
    logger.logLevel = .critical
    return logger
}()

/// In-process mounts are made directly (no fusermount3 watchdog): a watchdog is
/// a forked child that would inherit, and so keep alive, files the test has
/// open on other mounts. `defer` unmounts; a crashed run is swept by `testBase`.
let testMountOptions: MountOptions = {
    var options = MountOptions()
    options.autoUnmount = false
    return options
}()

/// A host mounted in this process on a fresh directory for one test; always
/// unmounted when the body returns or throws.
struct MountedHost {
    let root: String
    let host: SimulatedHost
    var bus: MdevBus { host.bus }

    var parent: String { root + "/sys/devices/pci0000:00/0000:00:02.0" }
    func typeDir(_ type: String, parent: String = "0000:00:02.0") -> String {
        root + "/sys/class/mdev_bus/\(parent)/mdev_supported_types/\(type)"
    }
    func available(_ type: String, parent: String = "0000:00:02.0") throws -> Int {
        Int(try readText(typeDir(type, parent: parent) + "/available_instances").trimmingCharacters(in: .whitespacesAndNewlines))!
    }
    func device(_ uuid: String) -> String { root + "/sys/bus/mdev/devices/\(uuid)" }
    func vfio(_ uuid: String) -> String { root + "/vfio/\(uuid)" }
}

let testBase: String = {
    let base = NSTemporaryDirectory() + "mdevsim-tests"
    try? FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
    // A test process that crashed may have left mounts behind: detach those
    // whose daemon is gone (ENOTCONN), never a live one another test run serves.
    if let mounts = try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8) {
        for line in mounts.split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard fields.count > 4, fields[4].hasPrefix(base) else { continue }
            // stat on its own thread with a deadline: a mount whose process is frozen
            // (stuck in a crash handler) would block this process for good.
            let path = String(fields[4])
            let stale = Atomic<Bool>(false)
            let done = DispatchSemaphore(value: 0)
            Thread {
                var st = stat()
                if stat(path, &st) != 0 && errno == ENOTCONN { stale.store(true, ordering: .relaxed) }
                done.signal()
            }.start()
            if done.wait(timeout: .now() + 1) == .success, stale.load(ordering: .relaxed) { umount2(path, Int32(MNT_DETACH)) }
        }
    }
    return base
}()

func makeTempDirectory(_ prefix: String = "mdevsim-test") -> String {
    let base = testBase
    var template = Array("\(base)/\(prefix)-XXXXXX".utf8CString)
    let path = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)!) }
    return path
}

func withMountedHost<R>(_ config: HostConfig = .builtIn, options: MountOptions = testMountOptions,
                        _ body: (MountedHost) throws -> R) throws -> R {
    try withMounted(try SimulatedHost(config: config), options: options, body)
}

/// Mounts a host a test built itself (a snapshot tree, mirrors, extra
/// devices) in this process on a fresh directory; always unmounted and removed.
func withMounted<R>(_ host: SimulatedHost, options: MountOptions = testMountOptions,
                    _ body: (MountedHost) throws -> R) throws -> R {
    let dir = makeTempDirectory()
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let mount = try BackgroundMount(tree: host.tree, mountpoint: dir, options: options, logger: testLogger)
    defer { mount.stop() }
    host.vfio.mounted(at: dir)
    return try body(MountedHost(root: dir, host: host))
}

/// Polls `condition` every 10 ms for up to `seconds`.
func waitFor(_ condition: () -> Bool, seconds: Double = 10) -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if condition() { return true }
        usleep(10_000)
    }
    return condition()
}

/// Whether `path` is a mount point in this process's namespace.
func isMounted(_ path: String) -> Bool {
    let mounts = (try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)) ?? ""
    return mounts.split(separator: "\n").contains { $0.split(separator: " ").dropFirst(4).first.map(String.init) == path }
}

// MARK: Plain POSIX file calls, reporting errno

struct Errno: Error, Equatable, CustomStringConvertible {
    let code: Int32
    var description: String { "errno \(code) (\(String(cString: strerror(code))))" }
}

func readText(_ path: String) throws -> String {
    let fd = open(path, O_RDONLY)
    guard fd >= 0 else { throw Errno(code: errno) }
    defer { close(fd) }
    var out = [UInt8]()
    var buf = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = read(fd, &buf, buf.count)
        if n < 0 { throw Errno(code: errno) }
        if n == 0 { break }
        out += buf[0..<n]
    }
    return String(decoding: out, as: UTF8.self)
}

func readBytes(_ path: String) throws -> [UInt8] {
    Array(try Data(contentsOf: URL(fileURLWithPath: path)))
}

/// One `write(2)` of the whole string, like `echo` (opened O_WRONLY|O_TRUNC).
func writeText(_ path: String, _ text: String) throws {
    let fd = open(path, O_WRONLY | O_TRUNC)
    guard fd >= 0 else { throw Errno(code: errno) }
    defer { close(fd) }
    let bytes = Array(text.utf8)
    let n = write(fd, bytes, bytes.count)
    if n < 0 { throw Errno(code: errno) }
    #expect(n == bytes.count)
}

/// The errno a throwing file call failed with, or 0.
func errnoOf(_ body: () throws -> Void) -> Int32 {
    do {
        try body()
        return 0
    } catch let e as Errno {
        return e.code
    } catch {
        return -1
    }
}

func readLink(_ path: String) throws -> String {
    var buf = [CChar](repeating: 0, count: 4096)
    let n = readlink(path, &buf, buf.count - 1)
    guard n >= 0 else { throw Errno(code: errno) }
    return String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

func listDir(_ path: String) throws -> [String] {
    try FileManager.default.contentsOfDirectory(atPath: path).sorted()
}

func exists(_ path: String) -> Bool {
    var st = stat()
    return lstat(path, &st) == 0
}

/// The canonical path with every link resolved, as mdevctl's canonicalize does.
func realPath(_ path: String) -> String? {
    guard let p = realpath(path, nil) else { return nil }
    defer { free(p) }
    return String(cString: p)
}

let uuidA = "83b8f4f2-509f-382f-3c1e-e6bfe0fa1001"
let uuidB = "a297db4a-f4c2-11e6-90f6-d3b88d6c9525"
let uuidC = "0b9a0b6e-6d1f-4f4e-9b1c-3c1d2e3f4a5b"

/// A host with two parents, where V5_4 on the first can be aggregated up to 4.
let twoParentConfig: HostConfig = {
    var first = ParentConfig(address: "0000:00:02.0")
    first.types = first.types.map { t in
        var t = t
        if t.name == "4" { t.aggregation = true; t.maxAggregation = 4 }
        return t
    }
    var second = ParentConfig(address: "0000:00:03.0")
    second.device = 0x3e92
    return HostConfig(parents: [first, second])
}()
