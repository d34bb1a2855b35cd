import Foundation
import MdevCore
import Testing

/// Reads the data file until EOF (returns true) or ENOMSG (returns false).
func readData(_ fd: Int32, into blob: inout [UInt8], chunk: Int = 1 << 20) throws -> Bool {
    var buf = [UInt8](repeating: 0, count: chunk)
    while true {
        let n = read(fd, &buf, chunk)
        if n > 0 { blob += buf[0..<n]; continue }
        if n == 0 { return true }
        if errno == ENOMSG { return false }
        throw Errno(code: errno)
    }
}

func writeAll(_ fd: Int32, _ bytes: [UInt8], chunk: Int) throws {
    var at = 0
    while at < bytes.count {
        let n = bytes[at..<min(at + chunk, bytes.count)].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard n > 0 else { throw Errno(code: errno) }
        at += n
    }
}

@Suite("v2 migration through vfio/<uuid>/migration/ on a real mount", .requires(canMount, "needs /dev/fuse and fusermount3"), .timeLimit(.minutes(1)))
struct MigrationFilesTests {
    let stepped = HostConfig.builtIn.withClock("stepped")

    func save(_ h: MountedHost, _ uuid: String) throws -> [UInt8] {
        let m = h.vfio(uuid) + "/migration"
        try writeText(h.vfio(uuid) + "/workload/dirty_rate_mbps", "4")
        try writeText(h.vfio(uuid) + "/workload/step", "100")
        try writeText(m + "/state", "PRE_COPY")
        #expect(try readText(m + "/state") == "PRE_COPY\n")
        let info = try readText(m + "/precopy_info")
        #expect(info.hasPrefix("initial_bytes ") && !info.hasPrefix("initial_bytes 0\n"), "\(info)")
        let fd = try openFile(m + "/data", O_RDONLY)
        defer { close(fd) }
        var blob: [UInt8] = []
        #expect(try readData(fd, into: &blob) == false)              // ENOMSG: drained for now
        for _ in 0..<2 {
            try writeText(h.vfio(uuid) + "/workload/step", "20")     // the workload dirties more pages
            #expect(!(try readText(m + "/precopy_info")).contains("dirty_bytes 0\n"))
            #expect(try readData(fd, into: &blob) == false)
        }
        try writeText(m + "/state", "STOP_COPY")
        #expect(try readText(h.vfio(uuid) + "/workload/running") == "0\n")
        #expect(try readData(fd, into: &blob, chunk: 70_000) == true)
        #expect(errnoOf { _ = try readText(m + "/precopy_info") } == EINVAL)
        return blob
    }

    @Test("live migration through the files: PRE_COPY iterations, STOP_COPY, RESUMING on another vGPU, equal digests")
    func liveMigration() throws {
        try withMountedHost(stepped) { h in
            try writeText(h.typeDir("i915-GVTg_V5_4") + "/create", uuidA)
            try writeText(h.typeDir("i915-GVTg_V5_4") + "/create", uuidB)
            #expect(try readText(h.vfio(uuidA) + "/migration/features") == "stop_copy p2p pre_copy\n")
            let blob = try save(h, uuidA)
            let srcDigest = try readText(h.vfio(uuidA) + "/state_digest")

            let m = h.vfio(uuidB) + "/migration"
            try writeText(m + "/state", "RESUMING")
            let fd = try openFile(m + "/data", O_WRONLY)
            try writeAll(fd, blob, chunk: 12_345)
            close(fd)
            try writeText(m + "/state", "STOP")
            #expect(try readText(h.vfio(uuidB) + "/state_digest") == srcDigest)
            #expect(try readText(m + "/error") == "")
            try writeText(m + "/state", "RUNNING")
            try writeText(h.vfio(uuidA) + "/migration/state", "RUNNING")
            try writeText(h.vfio(uuidA) + "/workload/step", "10")
            try writeText(h.vfio(uuidB) + "/workload/step", "10")
            #expect(try readText(h.vfio(uuidB) + "/state_digest") == (try readText(h.vfio(uuidA) + "/state_digest")))
        }
    }

    @Test("an incompatible stream fails at its first write with the reason in migration/error; the destination is untouched")
    func incompatible() throws {
        try withMountedHost(stepped) { h in
            try writeText(h.typeDir("i915-GVTg_V5_8") + "/create", uuidA)
            try writeText(h.typeDir("i915-GVTg_V5_4") + "/create", uuidB)
            let blob = try save(h, uuidA)
            let before = try readText(h.vfio(uuidB) + "/state_digest")
            let m = h.vfio(uuidB) + "/migration"
            try writeText(m + "/state", "RESUMING")
            let fd = try openFile(m + "/data", O_WRONLY)
            defer { close(fd) }
            #expect(errnoOf { try writeAll(fd, blob, chunk: 4096) } == EINVAL)
            let error = try readText(m + "/error")
            #expect(error.contains("migration parameter type=i915-GVTg_V5_8 is not supported by the destination (it has type=i915-GVTg_V5_4)"), "\(error)")
            #expect(errnoOf { try writeText(m + "/state", "STOP") } == EINVAL)
            #expect(try readText(m + "/state") == "RESUMING\n")
            try writeText(h.vfio(uuidB) + "/reset", "1")
            #expect(try readText(m + "/state") == "RUNNING\n")
            #expect(try readText(h.vfio(uuidB) + "/workload/ticks") == "0\n")
            _ = before
        }
    }

    @Test("state writes: names, numbers, refused requests with the reason")
    func stateFile() throws {
        try withMountedHost { h in
            try writeText(h.typeDir("i915-GVTg_V5_8") + "/create", uuidA)
            let m = h.vfio(uuidA) + "/migration"
            #expect(try readText(m + "/state") == "RUNNING\n")
            try writeText(m + "/state", "3")                        // STOP_COPY by number
            #expect(try readText(m + "/state") == "STOP_COPY\n")
            #expect(errnoOf { try writeText(m + "/state", "PRE_COPY") } == EINVAL)
            #expect(try readText(m + "/error").contains("STOP_COPY cannot return to pre-copy"))
            #expect(errnoOf { try writeText(m + "/state", "ERROR") } == EINVAL)
            #expect(errnoOf { try writeText(m + "/state", "PAUSED") } == EINVAL)
            #expect(Int(try readText(m + "/stop_copy_size").dropLast()) ?? 0 > 0)
            // A data handle from the ended session fails like a closed data_fd.
            let fd = try openFile(m + "/data", O_RDONLY)
            defer { close(fd) }
            try writeText(m + "/state", "stop")
            var byte: UInt8 = 0
            #expect(read(fd, &byte, 1) == -1 && errno == EBADF)
        }
    }

    @Test("migration_version: compatible writes succeed, incompatible ones are EINVAL with the reason")
    func migrationVersion() throws {
        try withMountedHost(twoParentConfig) { h in
            try writeText(h.typeDir("i915-GVTg_V5_4") + "/create", uuidA)
            try writeText(h.typeDir("i915-GVTg_V5_4", parent: "0000:00:03.0") + "/create", uuidB)
            try writeText(h.typeDir("i915-GVTg_V5_8") + "/create", uuidC)
            let version = try readText(h.device(uuidA) + "/migration_version")
            #expect(version == "mdevsim.dev/gvt-g;1.0.0;type=i915-GVTg_V5_4;aggregation=1;low_gm_mb=128;high_gm_mb=512;fences=4;resolution=1920x1200\n")
            try writeText(h.device(uuidB) + "/migration_version", version)                 // same type on another parent
            try writeText(h.typeDir("i915-GVTg_V5_4", parent: "0000:00:03.0") + "/migration_version", version)
            #expect(errnoOf { try writeText(h.device(uuidC) + "/migration_version", version) } == EINVAL)
            #expect(try readText(h.vfio(uuidC) + "/migration/error").contains("type=i915-GVTg_V5_4 is not supported"))
            #expect(errnoOf { try writeText(h.typeDir("i915-GVTg_V5_8") + "/migration_version", version) } == EINVAL)
            #expect(errnoOf { try writeText(h.device(uuidB) + "/migration_version", "garbage") } == EINVAL)
            try writeText(h.device(uuidA) + "/mdev/aggregated_instances", "2")
            #expect(errnoOf { try writeText(h.device(uuidB) + "/migration_version", try readText(h.device(uuidA) + "/migration_version")) } == EINVAL)
        }
    }

    @Test("a v1 type exposes regions/migration with the 5.8 layout and native-width rules")
    func v1Region() throws {
        var parent = ParentConfig(address: "0000:00:02.0")
        parent.types = parent.types.map { var t = $0; t.migrationProtocol = "v1"; return t }
        try withMountedHost(HostConfig(parents: [parent]).withClock("stepped")) { h in
            try writeText(h.typeDir("i915-GVTg_V5_8") + "/create", uuidA)
            #expect(try listDir(h.vfio(uuidA) + "/regions") == ["bar0", "config", "edid", "migration", "opregion"])
            #expect(try listDir(h.vfio(uuidA) + "/migration") == ["error"])
            let info = try JSONSerialization.jsonObject(with: Data(try readText(h.vfio(uuidA) + "/info").utf8)) as! [String: Any]
            #expect(info["num_regions"] as? Int == 12)             // 9 PCI regions, the migration region, the OpRegion and EDID after it
            let opregion = (info["regions"] as! [[String: Any]]).first { $0["name"] as? String == "OPREGION" }!
            #expect(opregion["index"] as? Int == 10)
            let region = (info["regions"] as! [[String: Any]]).first { $0["name"] as? String == "MIGRATION" }!
            #expect(region["index"] as? Int == 9 && region["type"] as? Int == 3 && region["subtype"] as? Int == 1)
            let fd = try openFile(h.vfio(uuidA) + "/regions/migration")
            defer { close(fd) }
            #expect(try preadValue(fd, 0, 4) == 0b001)
            #expect(errnoOf { try pwriteValue(fd, 0, 4, 0b101) } == EINVAL)
            #expect(try readText(h.vfio(uuidA) + "/migration/error").contains("101b and 111b are invalid"))
            #expect(errnoOf { _ = try preadValue(fd, 0, 8) } == EINVAL)
            try pwriteValue(fd, 0, 4, 0b010)                               // stop-and-copy
            #expect(try preadValue(fd, 8, 8) > 0)                          // pending_bytes
            #expect(try preadValue(fd, 16, 8) == 4096)                     // data_offset
            #expect(try preadValue(fd, 24, 8) > 0)                         // data_size
            #expect(try readText(h.vfio(uuidA) + "/workload/running") == "0\n")
        }
    }
}
