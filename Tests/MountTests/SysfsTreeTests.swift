import Foundation
import MdevCore
import Testing

@Suite("sysfs tree through a real FUSE mount", .requires(canMount, "needs /dev/fuse and fusermount3"), .timeLimit(.minutes(1)))
struct SysfsTreeTests {
    @Test("parent GPU directory with PCI attributes and the kernel's relative links")
    func parentLayout() throws {
        try withMountedHost { h in
            #expect(try readLink(h.root + "/sys/class/mdev_bus/0000:00:02.0") == "../../devices/pci0000:00/0000:00:02.0")
            #expect(try readLink(h.root + "/sys/bus/pci/devices/0000:00:02.0") == "../../../devices/pci0000:00/0000:00:02.0")
            #expect(realPath(h.root + "/sys/class/mdev_bus/0000:00:02.0") == h.parent)
            #expect(realPath(h.root + "/sys/bus/pci/devices/0000:00:02.0") == h.parent)
            #expect(try readText(h.parent + "/vendor") == "0x8086\n")
            #expect(try readText(h.parent + "/device") == "0x591d\n")
            #expect(try readText(h.parent + "/subsystem_vendor") == "0x8086\n")
            #expect(try readText(h.parent + "/subsystem_device") == "0x2212\n")
            #expect(try readText(h.parent + "/class") == "0x030000\n")
            #expect(realPath(h.parent + "/driver") == h.root + "/sys/bus/pci/drivers/i915")
            #expect(realPath(h.parent + "/subsystem") == h.root + "/sys/bus/pci")

            let config = try readBytes(h.parent + "/config")
            #expect(config.count == 4096)                   // a PCI Express function's whole config space
            #expect(Array(config[0..<4]) == [0x86, 0x80, 0x1d, 0x59])
            #expect(Array(config[0x09...0x0b]) == [0x00, 0x00, 0x03])

            let group = try readLink(h.parent + "/iommu_group")
            #expect(group.hasPrefix("../../../kernel/iommu_groups/"))
            let groupNumber = String(group.split(separator: "/").last!)
            #expect(realPath(h.root + "/sys/kernel/iommu_groups/\(groupNumber)/devices/0000:00:02.0") == h.parent)
        }
    }

    @Test("GVT-g types: names, device_api, exact description, counts of a real host")
    func typeAttributes() throws {
        try withMountedHost { h in
            let types = try listDir(h.parent + "/mdev_supported_types")
            #expect(types == ["i915-GVTg_V5_1", "i915-GVTg_V5_2", "i915-GVTg_V5_4", "i915-GVTg_V5_8"])
            for type in types {
                #expect(try listDir(h.typeDir(type)) == ["available_instances", "create", "description", "device_api", "devices", "migration_version", "name"])
                #expect(try readText(h.typeDir(type) + "/device_api") == "vfio-pci\n")
                #expect(try readText(h.typeDir(type) + "/name") == String(type.dropFirst("i915-".count)) + "\n")
            }
            #expect(try readText(h.typeDir("i915-GVTg_V5_4") + "/description")
                    == "low_gm_size: 128MB\nhigh_gm_size: 512MB\nfence: 4\nresolution: 1920x1200\nweight: 4\n")
            #expect(try readText(h.typeDir("i915-GVTg_V5_8") + "/description")
                    == "low_gm_size: 64MB\nhigh_gm_size: 384MB\nfence: 4\nresolution: 1024x768\nweight: 2\n")
            #expect(try h.available("i915-GVTg_V5_1") == 1)
            #expect(try h.available("i915-GVTg_V5_2") == 2)
            #expect(try h.available("i915-GVTg_V5_4") == 5)
            #expect(try h.available("i915-GVTg_V5_8") == 7)
        }
    }

    @Test("attributes look like sysfs: st_size 4096 and the kernel's modes")
    func attributeModes() throws {
        try withMountedHost { h in
            func mode(_ path: String) -> (perm: mode_t, size: Int) {
                var st = stat()
                #expect(stat(path, &st) == 0, "stat \(path)")
                return (st.st_mode & 0o7777, Int(st.st_size))
            }
            #expect(mode(h.typeDir("i915-GVTg_V5_4") + "/create") == (0o200, 4096))
            #expect(mode(h.typeDir("i915-GVTg_V5_4") + "/available_instances") == (0o444, 4096))
            #expect(mode(h.typeDir("i915-GVTg_V5_4") + "/description") == (0o444, 4096))
            #expect(mode(h.parent + "/vendor") == (0o444, 4096))
            #expect(mode(h.parent + "/config") == (0o644, 4096))
            var link = stat()
            #expect(lstat(h.parent + "/driver", &link) == 0 && link.st_size == 0, "sysfs links have st_size 0")
        }
    }

    @Test("create builds the device directory and every link before write(2) returns")
    func createIsSynchronous() throws {
        try withMountedHost { h in
            try writeText(h.typeDir("i915-GVTg_V5_4") + "/create", uuidA)
            // No waiting: the kernel's create_store returns after device_add.
            let dev = h.parent + "/" + uuidA
            #expect(try listDir(dev) == ["driver", "intel_vgpu", "iommu_group", "mdev_type", "migration_version", "remove", "subsystem", "uevent", "vfio-dev"])
            #expect(try readLink(dev + "/mdev_type") == "../mdev_supported_types/i915-GVTg_V5_4")
            #expect(realPath(dev + "/mdev_type") == h.parent + "/mdev_supported_types/i915-GVTg_V5_4")
            #expect(try readLink(h.device(uuidA)) == "../../../devices/pci0000:00/0000:00:02.0/\(uuidA)")
            #expect(realPath(h.device(uuidA)) == dev)
            #expect(try readLink(h.typeDir("i915-GVTg_V5_4") + "/devices/\(uuidA)") == "../../../\(uuidA)")
            #expect(realPath(h.typeDir("i915-GVTg_V5_4") + "/devices/\(uuidA)") == dev)
            #expect(try readLink(dev + "/driver") == "../../../../bus/mdev/drivers/intel_vgpu_mdev")
            #expect(realPath(h.root + "/sys/bus/mdev/drivers/intel_vgpu_mdev/\(uuidA)") == dev)
            #expect(try readLink(dev + "/subsystem") == "../../../../bus/mdev")
            #expect(try readText(dev + "/intel_vgpu/vgpu_id") == "1\n")
            #expect(try readText(dev + "/uevent") == "DRIVER=intel_vgpu_mdev\n")   // mdev_driver.c adds no variables

            let group = try readLink(dev + "/iommu_group")
            #expect(group.hasPrefix("../../../../kernel/iommu_groups/"))
            let groupDir = h.root + "/sys/kernel/iommu_groups/" + group.split(separator: "/").last!
            #expect(realPath(groupDir + "/devices/\(uuidA)") == dev)
            #expect(try readText(groupDir + "/name") == "vfio-noiommu\n")
            #expect(try listDir(h.root + "/sys/bus/mdev/devices") == [uuidA])
        }
    }

    @Test("create accepts 36 or 37 bytes, names the device in lowercase, and gives ids 1, 2, ...")
    func createAcceptsKernelForms() throws {
        try withMountedHost { h in
            try writeText(h.typeDir("i915-GVTg_V5_8") + "/create", uuidA.uppercased() + "\n")
            try writeText(h.typeDir("i915-GVTg_V5_8") + "/create", uuidB)
            #expect(try listDir(h.root + "/sys/bus/mdev/devices") == [uuidA, uuidB].sorted())
            #expect(try readText(h.device(uuidA) + "/intel_vgpu/vgpu_id") == "1\n")
            #expect(try readText(h.device(uuidB) + "/intel_vgpu/vgpu_id") == "2\n")
        }
    }

    @Test("create refuses what the kernel refuses: EINVAL, EEXIST on any parent, ENOSPC, E2BIG")
    func createErrnos() throws {
        try withMountedHost(twoParentConfig) { h in
            let create = h.typeDir("i915-GVTg_V5_1") + "/create"
            #expect(errnoOf { try writeText(create, String(uuidA.dropLast())) } == EINVAL)      // 35 bytes
            #expect(errnoOf { try writeText(create, uuidA + "\n\n") } == EINVAL)                 // 38 bytes
            #expect(errnoOf { try writeText(create, "83b8f4f2-509f-382f-3c1e-e6bfe0fa100g") } == EINVAL)
            #expect(errnoOf { try writeText(create, "83b8f4f2x509f-382f-3c1e-e6bfe0fa1001") } == EINVAL)
            #expect(errnoOf { try writeText(create, String(repeating: "a", count: 5000)) } == E2BIG)
            #expect(try listDir(h.root + "/sys/bus/mdev/devices").isEmpty)

            try writeText(create, uuidA)
            #expect(errnoOf { try writeText(h.typeDir("i915-GVTg_V5_8") + "/create", uuidA) } == EEXIST)
            #expect(errnoOf { try writeText(h.typeDir("i915-GVTg_V5_8", parent: "0000:00:03.0") + "/create", uuidA) } == EEXIST)
            // V5_1 had one instance; the pool cannot hold a second.
            #expect(try h.available("i915-GVTg_V5_1") == 0)
            #expect(errnoOf { try writeText(create, uuidB) } == ENOSPC)
            #expect(!exists(h.device(uuidB)))
        }
    }

    @Test("available_instances is GVT-g's min of low GM, high GM and fences over one shared pool")
    func availableInstancesArithmetic() throws {
        try withMountedHost { h in
            let parent = ParentConfig(address: "0000:00:02.0")
            // The pool as GVT-g computes it, from the config this host was built from.
            func expected(_ t: VGPUTypeConfig, used: [VGPUTypeConfig]) -> Int {
                let low = parent.apertureMB - parent.hostLowGMMB - used.map(\.lowGMMB).reduce(0, +)
                let high = parent.hiddenMB - parent.hostHighGMMB - used.map(\.highGMMB).reduce(0, +)
                let fence = parent.fences - parent.hostFences - used.map(\.fences).reduce(0, +)
                return max(0, min(low / t.lowGMMB, high / t.highGMMB, fence / t.fences))
            }
            let types = Dictionary(uniqueKeysWithValues: parent.types.map { ("i915-GVTg_V5_\($0.name)", $0) })
            var used: [VGPUTypeConfig] = []
            func checkAll() throws {
                for (id, t) in types { #expect(try h.available(id) == expected(t, used: used), "\(id) after \(used.map(\.name))") }
            }
            try checkAll()
            // Creating one type changes the others' counts.
            let plan = [("i915-GVTg_V5_4", uuidA), ("i915-GVTg_V5_2", uuidB), ("i915-GVTg_V5_8", uuidC)]
            for (type, uuid) in plan {
                try writeText(h.typeDir(type) + "/create", uuid)
                used.append(types[type]!)
                try checkAll()
            }
            #expect(try h.available("i915-GVTg_V5_1") == 0)
            #expect(try h.available("i915-GVTg_V5_4") == 1)   // 192 MB of low GM left
            try writeText(h.device(uuidB) + "/remove", "1")
            used.remove(at: 1)
            try checkAll()
        }
    }

    @Test("remove: 0 is a no-op, a non-number is EINVAL, 1 removes the device and every link")
    func removeSemantics() throws {
        try withMountedHost { h in
            try writeText(h.typeDir("i915-GVTg_V5_4") + "/create", uuidA)
            let dev = h.parent + "/" + uuidA
            try writeText(dev + "/remove", "0")
            #expect(exists(dev))
            #expect(errnoOf { try writeText(dev + "/remove", "yes") } == EINVAL)
            #expect(errnoOf { try writeText(dev + "/remove", "\n") } == EINVAL)
            #expect(exists(dev))
            #expect(try h.available("i915-GVTg_V5_4") == 4)

            // A handle opened before removal fails afterwards, as kernfs does.
            let stale = open(dev + "/remove", O_WRONLY)
            #expect(stale >= 0)
            defer { close(stale) }
            try writeText(dev + "/remove", "0x1\n")
            #expect(!exists(dev))
            #expect(!exists(h.device(uuidA)))
            #expect(!exists(h.typeDir("i915-GVTg_V5_4") + "/devices/\(uuidA)"))
            #expect(!exists(h.root + "/sys/bus/mdev/drivers/intel_vgpu_mdev/\(uuidA)"))
            #expect(try listDir(h.root + "/sys/bus/mdev/devices").isEmpty)
            #expect(try h.available("i915-GVTg_V5_4") == 5)
            #expect(write(stale, "1", 1) == -1 && errno == ENODEV)
            // The UUID is free again.
            try writeText(h.typeDir("i915-GVTg_V5_8") + "/create", uuidA)
            #expect(realPath(dev + "/mdev_type") == h.typeDir("i915-GVTg_V5_8").replacingOccurrences(of: "/sys/class/mdev_bus", with: "/sys/devices/pci0000:00"))
        }
    }

    @Test("chmod and chown of attributes work as kernfs lets them; the new mode is enforced", .requires(isRoot, "needs root"))
    func chmodChown() throws {
        try withMountedHost { h in
            let uevent = h.parent + "/uevent"
            #expect(chmod(uevent, 0o600) == 0)
            var st = stat()
            #expect(stat(uevent, &st) == 0 && st.st_mode & 0o7777 == 0o600)
            #expect(chown(uevent, 65534, 65534) == 0)
            #expect(stat(uevent, &st) == 0 && st.st_uid == 65534 && st.st_gid == 65534)
            #expect(chown(h.parent + "/mdev_supported_types", 0, 1) == 0)
            #expect(stat(h.parent + "/mdev_supported_types", &st) == 0 && st.st_uid == 0 && st.st_gid == 1)
            #expect(chmod(h.typeDir("i915-GVTg_V5_4") + "/create", 0o000) == 0)
            #expect(stat(h.typeDir("i915-GVTg_V5_4") + "/create", &st) == 0 && st.st_mode & 0o7777 == 0)
        }
    }

    @Test("a host imitating a kernel before 5.16 binds mdevs to vfio_mdev, a later one to intel_vgpu_mdev")
    func kernelGeneration() throws {
        for (kernel, driver) in [("5.15", "vfio_mdev"), ("5.16", "intel_vgpu_mdev"), ("6.1", "intel_vgpu_mdev")] {
            try withMountedHost(HostConfig(parents: [ParentConfig(address: "0000:00:02.0")], kernel: kernel)) { h in
                try writeText(h.typeDir("i915-GVTg_V5_4") + "/create", uuidA)
                #expect(try readLink(h.device(uuidA) + "/driver") == "../../../../bus/mdev/drivers/\(driver)", "\(kernel)")
                #expect(try readText(h.device(uuidA) + "/uevent") == "DRIVER=\(driver)\n")
                #expect(realPath(h.root + "/sys/bus/mdev/drivers/\(driver)/\(uuidA)") == h.parent + "/" + uuidA)
            }
        }
        #expect(throws: ConfigError.self) { try HostConfig.parse("kernel: banana\nparents: [{address: '0000:00:02.0'}]") }
        #expect(try HostConfig.parse("kernel: '5.10'\nparents: [{address: '0000:00:02.0'}]").mdevDriver == "vfio_mdev")
    }

    @Test("a directory's link count is 2 + its subdirectories, as kernfs counts it")
    func directoryLinks() throws {
        try withMountedHost { h in
            func check(_ dir: String) throws -> Int {
                var st = stat(), sub = stat()
                #expect(stat(dir, &st) == 0)
                let subdirs = try listDir(dir).filter { lstat(dir + "/" + $0, &sub) == 0 && sub.st_mode & S_IFMT == S_IFDIR }.count
                #expect(Int(st.st_nlink) == 2 + subdirs, "\(dir): nlink \(st.st_nlink), \(subdirs) subdirectories")
                return Int(st.st_nlink)
            }
            let before = try check(h.parent)
            try writeText(h.typeDir("i915-GVTg_V5_4") + "/create", uuidA)
            #expect(try check(h.parent) == before + 1)
            _ = try check(h.parent + "/mdev_supported_types")
            _ = try check(h.root + "/sys/bus/mdev/devices")
            try writeText(h.device(uuidA) + "/remove", "1")
            #expect(try check(h.parent) == before)
        }
    }

    @Test("file operations sysfs refuses get the kernel's errnos")
    func refusedOperations() throws {
        try withMountedHost { h in
            let create = h.typeDir("i915-GVTg_V5_4") + "/create"
            #expect(open(create, O_RDONLY) == -1 && errno == EACCES)
            #expect(open(h.typeDir("i915-GVTg_V5_4") + "/available_instances", O_WRONLY) == -1 && errno == EACCES)
            #expect(open(h.typeDir("i915-GVTg_V5_4") + "/no_such_attribute", O_RDONLY) == -1 && errno == ENOENT)
            #expect(open(h.typeDir("i915-GVTg_V5_4") + "/new_file", O_WRONLY | O_CREAT, 0o644) == -1 && errno == EACCES)
            #expect(mkdir(h.parent + "/newdir", 0o755) == -1 && errno == EPERM)
            #expect(unlink(h.parent + "/vendor") == -1 && errno == EPERM)
            #expect(rmdir(h.parent + "/mdev_supported_types") == -1 && errno == EPERM)
            #expect(symlink("x", h.parent + "/link") == -1 && errno == EPERM)
            #expect(rename(h.parent + "/vendor", h.parent + "/vendor2") == -1 && errno == EPERM)
            // Truncating a writable attribute is accepted and ignored (mdevctl opens with O_TRUNC).
            #expect(truncate(create, 0) == 0)
            var st = stat()
            #expect(stat(create, &st) == 0 && st.st_size == 4096)
        }
    }

    @Test("reads are fresh: a re-read at offset 0 sees the count change")
    func directIOFreshness() throws {
        try withMountedHost { h in
            let fd = open(h.typeDir("i915-GVTg_V5_8") + "/available_instances", O_RDONLY)
            #expect(fd >= 0)
            defer { close(fd) }
            var buf = [UInt8](repeating: 0, count: 64)
            var n = pread(fd, &buf, 64, 0)
            #expect(String(decoding: buf[0..<max(n, 0)], as: UTF8.self) == "7\n")
            try writeText(h.typeDir("i915-GVTg_V5_8") + "/create", uuidA)
            n = pread(fd, &buf, 64, 0)
            #expect(String(decoding: buf[0..<max(n, 0)], as: UTF8.self) == "6\n")
        }
    }

    @Test("uevent accepts kernel actions and refuses others")
    func ueventStore() throws {
        try withMountedHost { h in
            try writeText(h.typeDir("i915-GVTg_V5_8") + "/create", uuidA)
            try writeText(h.device(uuidA) + "/uevent", "change\n")
            #expect(errnoOf { try writeText(h.device(uuidA) + "/uevent", "explode") } == EINVAL)
        }
    }

    @Test("aggregation: mdev/aggregated_instances charges the pool × the count, bounded by max_aggregation")
    func aggregation() throws {
        try withMountedHost(twoParentConfig) { h in
            #expect(try readText(h.typeDir("i915-GVTg_V5_4") + "/description").hasSuffix("weight: 4\naggregation: yes\n"))
            try writeText(h.typeDir("i915-GVTg_V5_4") + "/create", uuidA)
            let mdev = h.device(uuidA) + "/mdev"
            #expect(try listDir(mdev) == ["aggregated_instances", "max_aggregation"])
            #expect(try readText(mdev + "/aggregated_instances") == "1\n")
            #expect(try readText(mdev + "/max_aggregation") == "4\n")
            #expect(try h.available("i915-GVTg_V5_4") == 4)
            try writeText(mdev + "/aggregated_instances", "3")
            #expect(try readText(mdev + "/aggregated_instances") == "3\n")
            #expect(try h.available("i915-GVTg_V5_4") == 2)
            #expect(try h.available("i915-GVTg_V5_8") == 3)       // high GM: 2688 - 3 × 512 = 1152 MB, 3 × 384
            #expect(errnoOf { try writeText(mdev + "/aggregated_instances", "5") } == EINVAL)
            #expect(errnoOf { try writeText(mdev + "/aggregated_instances", "0") } == EINVAL)
            #expect(errnoOf { try writeText(mdev + "/aggregated_instances", "many") } == EINVAL)
            #expect(try readText(mdev + "/aggregated_instances") == "3\n")
            try writeText(mdev + "/aggregated_instances", "1")
            #expect(try h.available("i915-GVTg_V5_4") == 4)
            // Removing an aggregated device gives back everything it was charged.
            try writeText(mdev + "/aggregated_instances", "4")
            try writeText(h.device(uuidA) + "/remove", "1")
            #expect(try h.available("i915-GVTg_V5_4") == 5)
            // Types that do not declare aggregation have no mdev/ group.
            try writeText(h.typeDir("i915-GVTg_V5_8") + "/create", uuidB)
            #expect(!exists(h.device(uuidB) + "/mdev"))
        }
    }

    @Test("aggregation beyond the pool is ENOSPC and leaves the count unchanged")
    func aggregationNoSpace() throws {
        try withMountedHost(twoParentConfig) { h in
            try writeText(h.typeDir("i915-GVTg_V5_4") + "/create", uuidA)
            try writeText(h.typeDir("i915-GVTg_V5_4") + "/create", uuidB)
            try writeText(h.typeDir("i915-GVTg_V5_4") + "/create", uuidC)
            // 5 fit; 3 used; raising one to 4 needs 3 more.
            #expect(errnoOf { try writeText(h.device(uuidA) + "/mdev/aggregated_instances", "4") } == ENOSPC)
            #expect(try readText(h.device(uuidA) + "/mdev/aggregated_instances") == "1\n")
            #expect(try h.available("i915-GVTg_V5_4") == 2)
        }
    }

    @Test("second parent has its own pool and its own types")
    func secondParent() throws {
        try withMountedHost(twoParentConfig) { h in
            #expect(try listDir(h.root + "/sys/class/mdev_bus") == ["0000:00:02.0", "0000:00:03.0"])
            #expect(try readText(h.root + "/sys/bus/pci/devices/0000:00:03.0/device") == "0x3e92\n")
            try writeText(h.typeDir("i915-GVTg_V5_1") + "/create", uuidA)
            #expect(try h.available("i915-GVTg_V5_1") == 0)
            #expect(try h.available("i915-GVTg_V5_1", parent: "0000:00:03.0") == 1)
            try writeText(h.typeDir("i915-GVTg_V5_1", parent: "0000:00:03.0") + "/create", uuidB)
            #expect(realPath(h.device(uuidB)) == h.root + "/sys/devices/pci0000:00/0000:00:03.0/\(uuidB)")
            // Each mdev gets its own IOMMU group.
            #expect(try readLink(h.device(uuidA) + "/iommu_group") != (try readLink(h.device(uuidB) + "/iommu_group")))
        }
    }
}
