import Foundation
import FuseBridge
import Simulator
import Testing

/// `mount --cache-entries`: the kernel caches directory and link entries, and
/// a removed device must still be gone the moment its `remove` write returns.
@Suite("entry cache with invalidation", .requires(canMount, "needs /dev/fuse and fusermount3"), .serialized)
struct EntryCacheTests {
    func withCachedMount(_ body: (MountedHost) throws -> Void) throws {
        var options = testMountOptions
        options.entryCacheSeconds = 60
        try withMountedHost(options: options, body)
    }

    func exists(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0
    }

    @Test("a removed device is gone at once through every cached path; a created one appears at once")
    func removeInvalidates() throws {
        try withCachedMount { h in
            for round in 0..<40 {
                try writeText(h.typeDir("i915-GVTg_V5_4") + "/create", uuidA)
                // Walk every path to it so the kernel caches each entry.
                for path in [h.device(uuidA), h.device(uuidA) + "/mdev_type", h.vfio(uuidA) + "/migration", h.parent + "/" + uuidA] {
                    #expect(exists(path), "round \(round): \(path) missing after create")
                }
                try writeText(h.device(uuidA) + "/remove", "1")
                for path in [h.device(uuidA), h.vfio(uuidA), h.vfio(uuidA) + "/migration", h.parent + "/" + uuidA] {
                    #expect(!exists(path), "round \(round): \(path) still there after remove returned")
                }
            }
        }
    }

    @Test("mdevctl-style path walks stay correct with the cache: links resolve and list what exists")
    func walks() throws {
        try withCachedMount { h in
            try writeText(h.typeDir("i915-GVTg_V5_8") + "/create", uuidA)
            try writeText(h.typeDir("i915-GVTg_V5_8") + "/create", uuidB)
            let target = try FileManager.default.destinationOfSymbolicLink(atPath: h.device(uuidA) + "/mdev_type")
            #expect(target.hasSuffix("mdev_supported_types/i915-GVTg_V5_8"))
            #expect(try readText(h.device(uuidB) + "/mdev_type/name") == "GVTg_V5_8\n")
            try writeText(h.device(uuidB) + "/remove", "1")
            let listed = try FileManager.default.contentsOfDirectory(atPath: h.root + "/sys/bus/mdev/devices")
            #expect(listed == [uuidA])
            #expect(try readText(h.typeDir("i915-GVTg_V5_8") + "/available_instances") == "6\n", "attributes are never cached")
        }
    }

    @Test("a fault rule added while entries and attributes are cached fires on the next matching access")
    func ruleAfterCaching() throws {
        try withCachedMount { h in
            let attr = h.typeDir("i915-GVTg_V5_4") + "/available_instances"
            var st = stat()
            for _ in 0..<3 { #expect(stat(attr, &st) == 0) }            // entry and attributes now cached for 60 s
            #expect(exists(h.device(uuidA)) == false)
            try writeText(h.root + "/.mdevsim/faults", "name=g path=sys/devices/**/available_instances op=getattr errno=EIO")
            #expect(stat(attr, &st) == -1 && errno == EIO, "the cached attributes hid the new rule")
            try writeText(h.root + "/.mdevsim/faults", "clear")
            try writeText(h.root + "/.mdevsim/faults", "name=l path=sys/devices/**/i915-GVTg_V5_4 op=lookup errno=ENOSPC")
            #expect(stat(attr, &st) == -1 && errno == ENOSPC, "the cached entry hid the new lookup rule")
        }
    }
}
