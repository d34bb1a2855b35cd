import Foundation
import MdevCore
import Testing

/// The data file behaves as the kernel's data_fd: one stream per session
/// whoever opens it, one holder at a time, no session taken from its holder.
@Suite("data sessions: a stream per session, one holder at a time", .requires(canMount, "needs /dev/fuse and fusermount3"), .timeLimit(.minutes(1)))
struct DataSessionTests {
    let stepped = HostConfig.builtIn.withClock("stepped")
    static let readme = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../README.md").standardized.path

    /// The README's v2 shell recipe, as written there.
    static func readmeRecipe() throws -> String {
        let text = try String(contentsOfFile: readme, encoding: .utf8)
        let start = try #require(text.range(of: "```sh\nV=/tmp/mdev/vfio\n"))
        let end = try #require(text.range(of: "```", range: start.upperBound..<text.endIndex))
        return String(text[start.upperBound..<end.lowerBound])
    }

    @Test("the README's v2 recipe runs as written: reopened data continues the stream, digests equal")
    func readmeBlock() throws {
        try withMountedHost(stepped) { h in
            try writeText(h.typeDir("i915-GVTg_V5_4") + "/create", uuidA)
            try writeText(h.typeDir("i915-GVTg_V5_4") + "/create", uuidB)
            try writeText(h.vfio(uuidA) + "/workload/step", "50")
            let dir = makeTempDirectory("recipe")
            defer { try? FileManager.default.removeItem(atPath: dir) }
            // V=/tmp/mdev/vfio is the README's mount; point it at this one.
            let script = "cd \(dir)\nV=\(h.root)/vfio\nSRC=\(uuidA) DST=\(uuidB)\n"
                + (try Self.readmeRecipe()).replacingOccurrences(of: "V=/tmp/mdev/vfio\n", with: "")
            let r = try run("/bin/bash", ["-c", script])
            let digests = r.out.split(separator: "\n")
            #expect(digests.count == 2 && digests[0] == digests[1], "\(r)")
            #expect(!r.err.contains("Illegal seek"), "\(r)")
            #expect(try readText(h.vfio(uuidB) + "/migration/state") == "STOP\n")
        }
    }

    @Test("a second open of data in one session is EBUSY; after the first closes it continues the stream")
    func secondHolder() throws {
        try withMountedHost(stepped) { h in
            try writeText(h.typeDir("i915-GVTg_V5_4") + "/create", uuidA)
            let m = h.vfio(uuidA) + "/migration"
            try writeText(m + "/state", "STOP_COPY")
            let first = try openFile(m + "/data", O_RDONLY)
            var head = [UInt8](repeating: 0, count: 1000)
            #expect(read(first, &head, 1000) == 1000)
            #expect(errnoOf { _ = try openFile(m + "/data", O_RDONLY) } == EBUSY)
            close(first)
            // FUSE sends RELEASE after close(2) returns: under load it can arrive a little later.
            var second: Int32 = -1
            #expect(waitFor({ second = (try? openFile(m + "/data", O_RDONLY)) ?? -1; return second >= 0 }, seconds: 5))
            defer { close(second) }
            var rest: [UInt8] = []
            #expect(try readData(second, into: &rest) == true)
            // The whole stream is the first 1000 bytes and the rest: a fresh save gives the same bytes.
            try writeText(m + "/state", "STOP")
            try writeText(m + "/state", "STOP_COPY")
            let again = try openFile(m + "/data", O_RDONLY)
            defer { close(again) }
            var whole: [UInt8] = []
            #expect(try readData(again, into: &whole) == true)
            #expect(head + rest == whole)
        }
    }

    @Test("a device being saved or resumed by another holder is not taken over: RESUMING or STOP_COPY is EBUSY")
    func noTakeover() throws {
        try withMountedHost(stepped) { h in
            try writeText(h.typeDir("i915-GVTg_V5_4") + "/create", uuidA)
            let m = h.vfio(uuidA) + "/migration"
            try writeText(m + "/state", "PRE_COPY")
            let reader = try openFile(m + "/data", O_RDONLY)
            #expect(errnoOf { try writeText(m + "/state", "RESUMING") } == EBUSY)
            #expect(try readText(m + "/state") == "PRE_COPY\n")
            var blob: [UInt8] = []
            #expect(try readData(reader, into: &blob) == false)          // the reader keeps its session
            try writeText(m + "/state", "STOP_COPY")                      // the holder's own next step is fine
            #expect(try readData(reader, into: &blob) == true)
            close(reader)
            try writeText(m + "/state", "RESUMING")                       // nobody holds it now
            let writer = try openFile(m + "/data", O_WRONLY)
            try writeAll(writer, Array(blob.prefix(100)), chunk: 100)
            #expect(errnoOf { try writeText(m + "/state", "STOP_COPY") } == EBUSY)
            #expect(errnoOf { _ = try openFile(m + "/data", O_WRONLY) } == EBUSY)
            try writeAll(writer, Array(blob.dropFirst(100)), chunk: 65536)
            close(writer)
            try writeText(m + "/state", "STOP")
            #expect(try readText(m + "/state") == "STOP\n")
        }
    }
}
