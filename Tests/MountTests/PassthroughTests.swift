import Faults
import Foundation
import FuseBridge
import MdevCore
import Simulator
import Testing
import VirtualFS

@Suite("passthrough of real directories", .requires(canMount, "needs /dev/fuse and fusermount3"), .timeLimit(.minutes(1)))
struct PassthroughTests {
    func mirrored<R>(_ mirrors: [(String, String)], allowWrites: Bool = false, config: HostConfig? = nil, options: MountOptions = testMountOptions,
                     _ body: (String, SimulatedHost) throws -> R) throws -> R {
        let tree = Tree()
        try tree.update { (c: inout TreeContents) throws(FSError) in
            for (real, dest) in mirrors {
                let parts = dest.split(separator: "/").map(String.init)
                try c.mirror(parts.last!, in: try c.directories(parts.dropLast().joined(separator: "/")), realPath: real, allowWrites: allowWrites)
            }
        }
        var p = ParentConfig(address: "0000:00:10.0")
        p.iommuGroup = 40
        return try withMounted(try SimulatedHost(config: config ?? HostConfig(parents: [p]), tree: tree), options: options) { try body($0.root, $0.host) }
    }

    @Test("this machine's PCI devices mirrored: every stable readable file and every link equals the original", .requires(FileManager.default.fileExists(atPath: "/sys/devices/pci0000:00"), "needs a real PCI tree at /sys/devices/pci0000:00"))
    func realSysfs() throws {
        let (compared, links) = try mirrored([("/sys/devices/pci0000:00", "sys/devices/pci0000:00"), ("/sys/bus/pci/devices", "sys/bus/pci/devices")]) { dir, _ -> (Int, Int) in
            var compared = 0, links = 0
            let fm = FileManager.default
            let walker = fm.enumerator(atPath: "/sys/devices/pci0000:00")!
            while let rel = walker.nextObject() as? String {
                let real = "/sys/devices/pci0000:00/" + rel, mine = dir + "/sys/devices/pci0000:00/" + rel
                var st = stat()
                guard lstat(real, &st) == 0 else { continue }
                if st.st_mode & S_IFMT == S_IFLNK {
                    #expect((try? readLink(mine)) == (try? readLink(real)), "\(rel)")
                    links += 1
                    walker.skipDescendants()
                } else if st.st_mode & S_IFMT == S_IFREG, st.st_mode & 0o444 != 0 {
                    guard let a = try? readBytes(real), let b = try? readBytes(mine), let c = try? readBytes(real) else { continue }
                    if a == c { #expect(a == b, "\(rel)"); compared += 1 }     // skip values that change by themselves
                    var mst = stat()
                    #expect(lstat(mine, &mst) == 0 && mst.st_mode & 0o7777 == st.st_mode & 0o7777, "\(rel) mode")
                }
            }
            #expect(realPath(dir + "/sys/bus/pci/devices/0000:00:10.0") == dir + "/sys/devices/pci0000:00/0000:00:10.0")
            return (compared, links)
        }
        #expect(compared > 50 && links > 5, "\(compared) files, \(links) links")
    }

    @Test("read-through by default, write-through with allowWrites; live values; nothing above SRC is reachable")
    func writesAndEscapes() throws {
        let real = makeTempDirectory("real")
        try FileManager.default.createDirectory(atPath: real + "/src/inner", withIntermediateDirectories: true)
        try "one\n".write(toFile: real + "/src/inner/value", atomically: true, encoding: .utf8)
        try "secret\n".write(toFile: real + "/outside", atomically: true, encoding: .utf8)
        try FileManager.default.createSymbolicLink(atPath: real + "/src/up", withDestinationPath: "../outside")
        defer { try? FileManager.default.removeItem(atPath: real) }

        try mirrored([(real + "/src", "m/src")]) { dir, _ in
            #expect(try readText(dir + "/m/src/inner/value") == "one\n")
            try "two\n".write(toFile: real + "/src/inner/value", atomically: false, encoding: .utf8)
            #expect(try readText(dir + "/m/src/inner/value") == "two\n")           // live
            #expect(errnoOf { try writeText(dir + "/m/src/inner/value", "three\n") } == EACCES)
            #expect(try readLink(dir + "/m/src/up") == "../outside")              // the real target, as text
            #expect(!exists(dir + "/m/outside"))                                   // resolving it stays inside the mount
            #expect(errnoOf { _ = try readText(dir + "/m/src/up") } == ENOENT)
            #expect(try listDir(dir + "/m/src/..") == ["src"])                     // .. is the mount's own parent
            try FileManager.default.removeItem(atPath: real + "/src/inner/value")
            #expect(!exists(dir + "/m/src/inner/value"))
        }
        try "four\n".write(toFile: real + "/src/inner/value", atomically: true, encoding: .utf8)
        try mirrored([(real + "/src", "m/src")], allowWrites: true) { dir, host in
            try writeText(dir + "/m/src/inner/value", "five\n")
            #expect(try String(contentsOfFile: real + "/src/inner/value", encoding: .utf8) == "five\n")
            // Faults apply to mirrored paths too.
            try host.faults.add(FaultRuleShim.eio("m/src/**"))
            #expect(errnoOf { _ = try readText(dir + "/m/src/inner/value") } == EIO)
        }
    }

    @Test("a mirrored device at a simulated parent's address is a clear start-up error", .requires(FileManager.default.fileExists(atPath: "/sys/devices/pci0000:00/0000:00:02.0"), "needs a real PCI device at 0000:00:02.0"))
    func conflict() throws {
        do {
            try mirrored([("/sys/devices/pci0000:00", "sys/devices/pci0000:00")], config: .builtIn) { _, _ in }
            Issue.record("a real 0000:00:02.0 was shadowed")
        } catch let e as FSError {
            #expect(e.reason.contains("0000:00:02.0 is both in the recorded or mirrored tree"), "\(e)")
        }
    }

    @Test("a slow real file system behind a mirror stalls only the requests that reach it")
    func slowRealFileSystem() throws {
        var live = testMountOptions
        live.entryCacheSeconds = 0
        // The "real" file system is another mount whose lookups of one directory take 1.5 s.
        try withMountedHost(options: live) { slow in
            try slow.host.faults.add(try FaultRule.parse("path=sys/bus/pci/devices op=lookup delay_ms=1500"))
            try mirrored([(slow.root + "/sys/bus/pci", "m/pci")], options: live) { dir, _ in
                let stalled = DispatchSemaphore(value: 0)
                Thread {
                    _ = exists(dir + "/m/pci/devices")        // waits on the slow file system
                    stalled.signal()
                }.start()
                usleep(200_000)
                let start = Date()
                let vendor = try readText(dir + "/sys/bus/pci/devices/0000:00:10.0/vendor")
                let took = Date().timeIntervalSince(start)
                #expect(vendor == "0x8086\n")
                #expect(took < 0.5, "an unrelated read waited \(took) s behind the slow lookup")
                _ = stalled.wait(timeout: .now() + 5)
            }
        }
    }
}

enum FaultRuleShim {
    static func eio(_ path: String) throws -> FaultRule { try FaultRule.parse("path=\(path) op=read errno=EIO") }
}
