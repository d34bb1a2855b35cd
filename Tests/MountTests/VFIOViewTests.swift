import Foundation
import GPUModel
import MdevCore
import Synchronization
import Testing

/// pread/pwrite of a little-endian value of `size` bytes; throws Errno.
func preadValue(_ fd: Int32, _ offset: Int, _ size: Int) throws -> UInt64 {
    var value: UInt64 = 0
    let n = withUnsafeMutableBytes(of: &value) { pread(fd, $0.baseAddress, size, off_t(offset)) }
    guard n == size else { throw Errno(code: n < 0 ? errno : EIO) }
    return UInt64(littleEndian: value)
}

func pwriteValue(_ fd: Int32, _ offset: Int, _ size: Int, _ value: UInt64) throws {
    var v = value.littleEndian
    let n = withUnsafeBytes(of: &v) { pwrite(fd, $0.baseAddress, size, off_t(offset)) }
    guard n == size else { throw Errno(code: n < 0 ? errno : EIO) }
}

func openFile(_ path: String, _ flags: Int32 = O_RDWR) throws -> Int32 {
    let fd = open(path, flags)
    guard fd >= 0 else { throw Errno(code: errno) }
    return fd
}

@Suite("VFIO device view through a real FUSE mount", .requires(canMount, "needs /dev/fuse and fusermount3"), .timeLimit(.minutes(1)))
struct VFIOViewTests {
    let table = RegisterTable.gvt(VGPUGeometry(lowGMBytes: 128 << 20, highGMBytes: 512 << 20))
    func reg(_ name: String) -> Int { table[name]!.offset }

    @Test("each vGPU gets vfio/<uuid>/ with info as VFIO_DEVICE_GET_INFO reports it, linked both ways with sysfs")
    func layoutAndInfo() throws {
        try withMountedHost { h in
            try writeText(h.typeDir("i915-GVTg_V5_4") + "/create", uuidA)
            #expect(try listDir(h.vfio(uuidA)) == ["info", "migration", "regions", "reset", "state_digest", "sysfs", "workload"])
            #expect(try listDir(h.vfio(uuidA) + "/migration") == ["data", "error", "features", "precopy_info", "state", "stop_copy_size"])
            #expect(try listDir(h.vfio(uuidA) + "/regions") == ["bar0", "config", "edid", "opregion"])
            #expect(try listDir(h.vfio(uuidA) + "/workload") == ["clock", "dirty_rate_mbps", "fill", "running", "seed", "step", "ticks", "working_set_mib"])
            #expect(realPath(h.vfio(uuidA) + "/sysfs") == h.parent + "/" + uuidA)
            let vfioDev = try listDir(h.device(uuidA) + "/vfio-dev")
            #expect(vfioDev.count == 1 && vfioDev[0].hasPrefix("vfio"))
            #expect(realPath(h.device(uuidA) + "/vfio-dev/\(vfioDev[0])/mdevsim") == h.vfio(uuidA))

            let info = try JSONSerialization.jsonObject(with: Data(try readText(h.vfio(uuidA) + "/info").utf8)) as! [String: Any]
            #expect(info["flags_value"] as? Int == 3)          // VFIO_DEVICE_FLAGS_RESET | VFIO_DEVICE_FLAGS_PCI
            #expect(info["num_regions"] as? Int == 11)               // the 9 PCI regions, kvmgt's OpRegion and EDID
            #expect(info["num_irqs"] as? Int == 5)
            // As kvmgt: INTx and MSI, one vector each; GET_IRQ_INFO on MSI-X, ERR and REQ is EINVAL.
            let irqs = info["irqs"] as! [[String: Any]]
            #expect(irqs.map { $0["name"] as? String } == ["INTX", "MSI"] && irqs.allSatisfy { $0["count"] as? Int == 1 })
            #expect(info["irq_info_einval"] as? [Int] == [2, 3, 4])
            let regions = info["regions"] as! [[String: Any]]
            let bar0 = regions.first { $0["name"] as? String == "BAR0" }!
            #expect(bar0["index"] as? Int == 0)
            #expect(bar0["size"] as? Int == 16 << 20)
            #expect(bar0["flags_value"] as? Int == 3)
            let config = regions.first { $0["name"] as? String == "CONFIG" }!
            #expect(config["index"] as? Int == 7)
            #expect(config["size"] as? Int == 4096)
            // The IGD OpRegion as kvmgt registers it: vendor type 0x8086 | 1 << 31, subtype 1, read-only.
            let opregion = regions.first { $0["name"] as? String == "OPREGION" }!
            #expect(opregion["index"] as? Int == 9 && opregion["size"] as? Int == 8192)
            #expect(opregion["type"] as? Int == 0x8000_8086 && opregion["subtype"] as? Int == 1 && opregion["flags_value"] as? Int == 1)
            let signature = try readBytes(h.vfio(uuidA) + "/regions/opregion")
            #expect(signature.count == 8192 && String(decoding: signature.prefix(16), as: UTF8.self) == "IntelGraphicsMem")
            #expect(errnoOf { try writeText(h.vfio(uuidA) + "/regions/opregion", "x") } == EINVAL)
            // kvmgt's EDID region: type GFX, subtype EDID, registered with EDID_SIZE (128).
            let edid = regions.first { $0["name"] as? String == "EDID" }!
            #expect(edid["index"] as? Int == 10 && edid["size"] as? Int == 128 && edid["type"] as? Int == 1 && edid["subtype"] as? Int == 1)
            // BAR2: the host's 1 GiB aperture; the vGPU's low GM (above the host's 128 MB) is the mappable slice.
            let bar2 = regions.first { $0["name"] as? String == "BAR2" }!
            #expect(bar2["size"] as? Int == 1 << 30)
            let sparse = bar2["sparse_mmap"] as? [[String: Int]]
            #expect(sparse?.count == 1 && sparse?.first?["offset"] == 128 << 20 && sparse?.first?["size"] == 128 << 20, "\(bar2)")
            var st = stat()
            #expect(stat(h.vfio(uuidA) + "/regions/bar0", &st) == 0 && st.st_size == 16 << 20)
            // Removing the device removes its VFIO folder.
            try writeText(h.device(uuidA) + "/remove", "1")
            #expect(!exists(h.vfio(uuidA)))
        }
    }

    @Test("regions/config: header, BAR sizing and RW1C through pread/pwrite")
    func configRegion() throws {
        try withMountedHost { h in
            try writeText(h.typeDir("i915-GVTg_V5_8") + "/create", uuidA)
            let fd = try openFile(h.vfio(uuidA) + "/regions/config")
            defer { close(fd) }
            #expect(try preadValue(fd, 0, 4) == 0x591d_8086)
            #expect(try preadValue(fd, 0x0a, 2) == 0x0300)
            try pwriteValue(fd, 0x10, 4, 0xffff_ffff)
            #expect(try preadValue(fd, 0x10, 4) == 0xff00_0004)
            #expect(try preadValue(fd, 0x18, 4) == 0x8000_000c)       // preset to the host aperture's address
            try pwriteValue(fd, 0x18, 4, 0xffff_ffff)
            #expect(try preadValue(fd, 0x18, 4) == 0xc000_000c)       // the host's whole 1 GiB aperture
            // A whole read works, split as vfio-pci does: GVT-g's 4096 bytes, the host's capability list.
            let whole = try readBytes(h.vfio(uuidA) + "/regions/config")
            #expect(whole.count == 4096 && whole[0] == 0x86 && whole[0x34] == 0x40 && whole[0x40] == 0x09 && whole[0xac] == 0x05)
            var two = [UInt8](repeating: 0, count: 2)
            #expect(pread(fd, &two, 2, 4095) == 1)                       // clipped at the end of the region
            #expect(pread(fd, &two, 2, 4100) == -1 && errno == EINVAL)
            h.host.vfio.device(uuidA)!.signalConfigStatus(offset: 0x07, bits: 0x10)
            #expect(try preadValue(fd, 0x06, 2) == 0x1010)
            try pwriteValue(fd, 0x06, 2, 0x1000)
            #expect(try preadValue(fd, 0x06, 2) == 0x0010)
        }
    }

    @Test("remove of a vGPU whose VFIO files are open blocks until the last is closed; surprise removal does not wait")
    func removeWaitsForRelease() throws {
        try withMountedHost { h in
            try writeText(h.typeDir("i915-GVTg_V5_4") + "/create", uuidA)
            var bar0 = try openFile(h.vfio(uuidA) + "/regions/bar0")
            var data = try openFile(h.vfio(uuidA) + "/regions/config")
            // Closed on every path: a mount cannot be taken down under its own test's open files.
            defer { if bar0 >= 0 { close(bar0) }; if data >= 0 { close(data) } }
            let finished = Mutex<Date?>(nil)
            let started = Date()
            let writer = Thread {
                try? writeText(h.device(uuidA) + "/remove", "1")
                finished.withLock { $0 = Date() }
            }
            writer.start()
            Thread.sleep(forTimeInterval: 0.5)
            #expect(finished.withLock { $0 } == nil, "the remove returned while the device was open")
            #expect(exists(h.device(uuidA)) && exists(h.vfio(uuidA)))
            #expect((try? preadValue(bar0, reg("VGT_MAGIC"), 8)) == 0x4776_5447_7654_4776, "the held device still answers")
            close(bar0); bar0 = -1
            Thread.sleep(forTimeInterval: 0.3)
            #expect(finished.withLock { $0 } == nil, "one file is still open")
            close(data); data = -1
            let deadline = Date().addingTimeInterval(3)
            while finished.withLock({ $0 }) == nil && Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
            let done = try #require(finished.withLock { $0 })
            #expect(done.timeIntervalSince(started) >= 0.8)
            #expect(!exists(h.device(uuidA)) && !exists(h.vfio(uuidA)))
            // Surprise removal takes a held device at once.
            try writeText(h.typeDir("i915-GVTg_V5_4") + "/create", uuidB)
            let held = try openFile(h.vfio(uuidB) + "/regions/bar0")
            defer { close(held) }
            try writeText(h.root + "/.mdevsim/surprise_remove", "device \(uuidB)")
            #expect(!exists(h.device(uuidB)))
            #expect(errnoOf { _ = try preadValue(held, 0, 4) } == ENODEV)
        }
    }

    @Test("regions/edid: kvmgt's registers, a valid EDID block for the type's resolution, link state and size checked")
    func edidRegion() throws {
        try withMountedHost { h in
            try writeText(h.typeDir("i915-GVTg_V5_8") + "/create", uuidA)      // 1024x768
            let fd = try openFile(h.vfio(uuidA) + "/regions/edid")
            defer { close(fd) }
            let regs = try (0..<6).map { try preadValue(fd, $0 * 4, 4) }
            #expect(regs == [0x800, 128, 128, 1024, 768, 0], "edid_offset, edid_max_size, edid_size, max_xres, max_yres, link_state")
            var block = [UInt8](repeating: 0, count: 128)
            #expect(pread(fd, &block, 128, 0x800) == 128)
            // Checked from the bytes alone: header, checksum, version 1.4, and the preferred timing's active size.
            #expect(Array(block[0..<8]) == [0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0])
            #expect(block.reduce(0, &+) == 0 && block[18] == 1 && block[19] == 4)
            #expect(Int(block[56]) | Int(block[58] >> 4) << 8 == 1024 && Int(block[59]) | Int(block[61] >> 4) << 8 == 768)
            try pwriteValue(fd, 20, 4, 1)                                       // link UP with the valid block
            #expect(try preadValue(fd, 20, 4) == 1)
            #expect(errnoOf { try pwriteValue(fd, 20, 4, 3) } == EINVAL)         // neither UP nor DOWN
            #expect(errnoOf { _ = try preadValue(fd, 0, 2) } == EINVAL)          // registers are u32
            #expect(errnoOf { try pwriteValue(fd, 0, 4, 0x900) } == EINVAL)      // edid_offset is read-only
            #expect(errnoOf { try pwriteValue(fd, 8, 4, 129) } == EINVAL)        // beyond edid_max_size
            // A VMM's own block: written, then UP checks it; a bad checksum is refused.
            var bad = block
            bad[127] &+= 1
            #expect(pwrite(fd, bad, 128, 0x800) == 128)
            #expect(errnoOf { try pwriteValue(fd, 20, 4, 1) } == EINVAL)
            try pwriteValue(fd, 20, 4, 2)                                       // DOWN needs no block
            try pwriteValue(fd, 8, 4, 64)
            #expect(pread(fd, &block, 128, 0x800) == -1 && errno == EINVAL)       // beyond the new edid_size
        }
    }

    @Test("regions/bar0: any access split as kvmgt does (aligned 8/4/2/1 pieces), GGTT in the upper half, EINVAL outside")
    func bar0Region() throws {
        try withMountedHost { h in
            try writeText(h.typeDir("i915-GVTg_V5_4") + "/create", uuidA)
            let fd = try openFile(h.vfio(uuidA) + "/regions/bar0")
            defer { close(fd) }
            #expect(try preadValue(fd, reg("VGT_MAGIC"), 8) == 0x4776_5447_7654_4776)
            #expect(try preadValue(fd, reg("PLANE_1_A_SIZE"), 4) == UInt64(1199 << 16 | 1919))
            // An 8-byte read at RING_TAIL gives TAIL and HEAD; 4 bytes of a fence give one half; 2 bytes of TAIL its low half.
            try pwriteValue(fd, reg("RING_TAIL"), 4, 0x0001_2348)
            #expect(try preadValue(fd, reg("RING_TAIL"), 8) == 0x0001_2348)
            #expect(try preadValue(fd, reg("RING_TAIL"), 2) == 0x2348)
            #expect(try preadValue(fd, reg("RING_TAIL") + 2, 2) == 0x0001)
            try pwriteValue(fd, reg("FENCE_5"), 8, 0x0012_3000_0004_5001)
            #expect(try preadValue(fd, reg("FENCE_5"), 8) == 0x0012_3000_0004_5001)
            #expect(try preadValue(fd, reg("FENCE_5"), 4) == 0x0004_5001)
            #expect(try preadValue(fd, reg("FENCE_5") + 4, 4) == 0x0012_3000)
            try pwriteValue(fd, reg("FENCE_5") + 4, 4, 0x0034_5000)                     // the high half alone
            #expect(try preadValue(fd, reg("FENCE_5"), 8) == 0x0034_5000_0004_5001)
            #expect(try preadValue(fd, reg("RING_TAIL") + 1, 2) == 0x0123)               // unaligned: two 1-byte pieces
            #expect(errnoOf { _ = try preadValue(fd, 16 << 20, 4) } == EINVAL)
            // A whole page at 0 is read in 8-byte pieces; the ring registers show in it.
            var page = [UInt8](repeating: 0xee, count: 4096)
            #expect(pread(fd, &page, 4096, 0x2000) == 4096)
            #expect(page[0x30] == 0x48 && page[0x31] == 0x23 && page[0] == 0)
            // The GGTT is the host's whole space: entry N maps GM page N; the vGPU owns the entries of its placement.
            let ggtt = 8 << 20
            let low = Int(try preadValue(fd, reg("VGT_LOW_GM_BASE"), 4)) / 4096 + 100
            #expect(low == (128 << 20) / 4096 + 100, "the first vGPU's low GM starts above the host's 128 MB")
            try pwriteValue(fd, ggtt + low * 8, 8, 777 << 12 | 1)
            #expect(try preadValue(fd, ggtt + low * 8, 8) == 777 << 12 | 1)
            #expect(h.host.vfio.device(uuidA)!.withHardware { $0.frame(forGraphicsAddress: UInt64(low) * 4096) } == 777)
            // GGTT entries also take 4-byte halves; a 2-byte access is refused.
            try pwriteValue(fd, ggtt + low * 8 + 4, 4, 0)
            #expect(try preadValue(fd, ggtt + low * 8, 4) == 777 << 12 | 1)
            #expect(errnoOf { _ = try preadValue(fd, ggtt + low * 8, 2) } == EINVAL)
            // Another vGPU's or the host's entries read as zero and ignore writes.
            try pwriteValue(fd, ggtt + 100 * 8, 8, 555 << 12 | 1)
            #expect(try preadValue(fd, ggtt + 100 * 8, 8) == 0)
        }
    }

    @Test("workload through files: stepped clock, same seed and steps give the same state_digest")
    func steppedWorkload() throws {
        try withMountedHost(HostConfig.builtIn.withClock("stepped")) { h in
            func run(_ uuid: String, seed: String, steps: [String]) throws -> String {
                try writeText(h.typeDir("i915-GVTg_V5_8") + "/create", uuid)
                try writeText(h.vfio(uuid) + "/workload/dirty_rate_mbps", "4")
                try writeText(h.vfio(uuid) + "/workload/seed", seed)
                for n in steps { try writeText(h.vfio(uuid) + "/workload/step", n) }
                return try readText(h.vfio(uuid) + "/state_digest")
            }
            let a = try run(uuidA, seed: "1", steps: ["120"])
            #expect(a.count == 33)
            #expect(try readText(h.vfio(uuidA) + "/workload/ticks") == "120\n")
            #expect(try readText(h.vfio(uuidA) + "/workload/clock") == "stepped\n")
            try writeText(h.device(uuidA) + "/remove", "1")
            // The same device again (same vGPU id), same seed, the same ticks in other chunks.
            #expect(try run(uuidA, seed: "1", steps: ["60", "60"]) == a)
            try writeText(h.device(uuidA) + "/remove", "1")
            #expect(try run(uuidA, seed: "2", steps: ["120"]) != a)
            #expect(try run(uuidB, seed: "1", steps: ["0"]) != a)
            #expect(errnoOf { try writeText(h.vfio(uuidA) + "/workload/clock", "sometimes") } == EINVAL)
            #expect(errnoOf { try writeText(h.vfio(uuidA) + "/workload/dirty_rate_mbps", "-1") } == EINVAL)
            try writeText(h.vfio(uuidA) + "/workload/clock", "real")
            #expect(errnoOf { try writeText(h.vfio(uuidA) + "/workload/step", "1") } == EINVAL)
        }
    }

    @Test("a freshly created vGPU visibly works on the real-time clock")
    func realTimeDefault() throws {
        try withMountedHost { h in
            try writeText(h.typeDir("i915-GVTg_V5_8") + "/create", uuidA)
            #expect(try readText(h.vfio(uuidA) + "/workload/running") == "1\n")
            let first = try readText(h.vfio(uuidA) + "/state_digest")
            usleep(50_000)
            #expect(try readText(h.vfio(uuidA) + "/state_digest") != first)
            let fd = try openFile(h.vfio(uuidA) + "/regions/bar0")
            defer { close(fd) }
            #expect(try preadValue(fd, reg("RING_CTL"), 4) & 1 == 1)
            #expect(try preadValue(fd, reg("RING_HEAD"), 4) > 0)
        }
    }

    @Test("reset: writing 1 returns registers to reset values")
    func reset() throws {
        try withMountedHost { h in
            try writeText(h.typeDir("i915-GVTg_V5_8") + "/create", uuidA)
            try writeText(h.vfio(uuidA) + "/workload/clock", "stepped")
            try writeText(h.vfio(uuidA) + "/workload/step", "5")
            let fd = try openFile(h.vfio(uuidA) + "/regions/bar0")
            defer { close(fd) }
            #expect(try preadValue(fd, reg("RING_CTL"), 4) != 0)
            try writeText(h.vfio(uuidA) + "/reset", "0")
            #expect(try preadValue(fd, reg("RING_CTL"), 4) != 0)
            try writeText(h.vfio(uuidA) + "/reset", "1")
            #expect(try preadValue(fd, reg("RING_CTL"), 4) == 0)
            #expect(try preadValue(fd, reg("GT_IMR"), 4) == 0xffff_ffff)
            #expect(errnoOf { try writeText(h.vfio(uuidA) + "/reset", "please") } == EINVAL)
        }
    }

    @Test("aggregation is refused with EBUSY while a region is open, and resizes the hardware once allowed")
    func aggregationWhileOpen() throws {
        try withMountedHost(twoParentConfig) { h in
            try writeText(h.typeDir("i915-GVTg_V5_4") + "/create", uuidA)
            let fd = try openFile(h.vfio(uuidA) + "/regions/bar0")
            #expect(errnoOf { try writeText(h.device(uuidA) + "/mdev/aggregated_instances", "2") } == EBUSY)
            #expect(try readText(h.device(uuidA) + "/mdev/aggregated_instances") == "1\n")
            close(fd)
            try writeText(h.device(uuidA) + "/mdev/aggregated_instances", "2")
            let again = try openFile(h.vfio(uuidA) + "/regions/bar0")
            defer { close(again) }
            #expect(try preadValue(again, reg("VGT_LOW_GM_SIZE"), 4) == 256 << 20)
            #expect(try preadValue(again, reg("VGT_HIGH_GM_SIZE"), 4) == 1024 << 20)
            #expect(try preadValue(again, reg("VGT_FENCE_NUM"), 4) == 8)
        }
    }

    @Test("a region opened before its device was surprise-removed fails with ENODEV")
    func removedDevice() throws {
        try withMountedHost { h in
            try writeText(h.typeDir("i915-GVTg_V5_8") + "/create", uuidA)
            let fd = try openFile(h.vfio(uuidA) + "/regions/bar0")
            defer { close(fd) }
            // (An orderly remove would wait for this fd: removeWaitsForRelease.)
            try writeText(h.root + "/.mdevsim/surprise_remove", "device \(uuidA)")
            #expect(errnoOf { _ = try preadValue(fd, reg("RING_CTL"), 4) } == ENODEV)
        }
    }
}
