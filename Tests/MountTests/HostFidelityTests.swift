import Foundation
import MdevCore
import Testing

/// The simulated parent as host tools see it: lspci, setpci, and a comparison
/// with this machine's own PCI devices.
@Suite("a real Kaby Lake host to lspci and setpci", .requires(canMount && haveMdevsimBinary, "needs /dev/fuse, fusermount3 and the mdevsim binary"),
       .timeLimit(.minutes(1)))
struct HostFidelityTests {
    static let haveSetpci = FileManager.default.isExecutableFile(atPath: "/usr/bin/setpci")

    func exec(_ h: MountedHost, _ command: String...) throws -> Ran { try run(mdevsimBinary, ["exec", h.root, "--"] + command) }

    @Test("lspci -vvv, -xxxx, -k and -b -v exit 0 and show the real device's capabilities, BARs and driver",
          .requires(isRoot && FileManager.default.isExecutableFile(atPath: "/usr/bin/lspci"), "needs root and lspci (apt-get install pciutils)"))
    func lspci() throws {
        try withMountedHost { h in
            var r = try exec(h, "lspci", "-vvv", "-s", "00:02.0")
            #expect(r.status == 0, "\(r)")
            for line in ["Region 0: Memory at f6000000 (64-bit, non-prefetchable) [size=16M]",
                         "Region 2: Memory at 80000000 (64-bit, prefetchable) [size=1G]", "Region 4: I/O ports at f000 [size=64]",
                         "Capabilities: [40] Vendor Specific Information: Len=0c", "Capabilities: [70] Express (v2) Root Complex Integrated Endpoint",
                         "Capabilities: [ac] MSI: Enable- Count=1/1", "Capabilities: [d0] Power Management version 2",
                         "Capabilities: [100 v1] Process Address Space ID (PASID)", "Capabilities: [200 v1] Address Translation Service (ATS)",
                         "Capabilities: [300 v1] Page Request Interface (PRI)", "Kernel driver in use: i915", "Interrupt: pin A routed to IRQ 16"] {
                #expect(r.out.contains(line), "lspci -vvv lacks '\(line)':\n\(r.out)")
            }
            r = try exec(h, "lspci", "-xxxx", "-s", "00:02.0")
            #expect(r.status == 0 && r.out.contains("ff0: "), "the whole 4096 bytes: \(r)")
            r = try exec(h, "lspci", "-k")
            #expect(r.status == 0 && r.out.contains("Kernel driver in use: i915"), "\(r)")
            r = try exec(h, "lspci", "-b", "-v", "-s", "00:02.0")
            #expect(r.status == 0 && r.out.contains("Memory at 80000000 (64-bit, prefetchable)") && !r.out.contains("unassigned"), "\(r)")
        }
    }

    @Test("setpci reads and writes COMMAND; read-only bits stay, the write shows in config",
          .requires(isRoot && haveSetpci, "needs root and setpci (apt-get install pciutils)"))
    func setpci() throws {
        try withMountedHost { h in
            var r = try exec(h, "setpci", "-s", "00:02.0", "COMMAND")
            #expect(r.status == 0 && r.out == "0007\n", "\(r)")
            r = try exec(h, "setpci", "-s", "00:02.0", "COMMAND=0xffff")
            #expect(r.status == 0, "\(r)")
            r = try exec(h, "setpci", "-s", "00:02.0", "COMMAND")
            #expect(r.out == "0547\n", "only the writable command bits take a write: \(r)")
            let config = try readBytes(h.parent + "/config")
            #expect(config[4] == 0x47 && config[5] == 0x05)
            r = try exec(h, "setpci", "-s", "00:02.0", "VENDOR_ID=0x1234")
            #expect(try exec(h, "setpci", "-s", "00:02.0", "VENDOR_ID").out == "8086\n")
        }
    }

    @Test("udevadm info -q all and -a work for the parent, a vGPU and its vfio-dev node, up to the root",
          .requires(isRoot && FileManager.default.isExecutableFile(atPath: "/usr/bin/udevadm"), "needs root and udevadm (apt-get install udev)"))
    func udevadm() throws {
        try withMountedHost { h in
            try writeText(h.typeDir("i915-GVTg_V5_4") + "/create", uuidA)
            let parent = "/sys/devices/pci0000:00/0000:00:02.0", vgpu = parent + "/" + uuidA, node = vgpu + "/vfio-dev/vfio0"
            for (path, subsystem, driver) in [(parent, "pci", "i915"), (vgpu, "mdev", "intel_vgpu_mdev"), (node, "vfio-dev", "")] {
                let r = try exec(h, "udevadm", "info", "-q", "all", "-p", path)
                #expect(r.status == 0 && r.out.contains("U: \(subsystem)\n"), "\(path): \(r)")
                if !driver.isEmpty { #expect(r.out.contains("E: DRIVER=\(driver)\n"), "\(r)") }
            }
            let walk = try exec(h, "udevadm", "info", "-a", "-p", "/sys/class/vfio-dev/vfio0")
            #expect(walk.status == 0, "\(walk)")
            let levels = walk.out.split(separator: "\n").filter { $0.contains("looking at") }.map { $0.split(separator: "'")[1] }
            #expect(levels == ["/devices/pci0000:00/0000:00:02.0/\(uuidA)/vfio-dev/vfio0", "/devices/pci0000:00/0000:00:02.0/\(uuidA)",
                               "/devices/pci0000:00/0000:00:02.0", "/devices/pci0000:00"], "\(walk.out)")
            // The node's link back to the device's files holds inside exec's namespace too.
            let link = try exec(h, "cat", "/sys/bus/mdev/devices/\(uuidA)/vfio-dev/vfio0/mdevsim/migration/state")
            #expect(link.status == 0 && link.out == "RUNNING\n", "\(link)")
            let node0 = try exec(h, "udevadm", "info", "-q", "all", "-p", node)
            #expect(node0.out.contains("E: DEVNAME=/dev/vfio/devices/vfio0") && node0.out.contains("D: c \(511):0"), "\(node0)")
        }
    }

    @Test("uevent contents per device kind, as the kernel writes them; 'change' is accepted")
    func uevents() throws {
        try withMountedHost { h in
            try writeText(h.typeDir("i915-GVTg_V5_4") + "/create", uuidA)
            #expect(try readText(h.parent + "/uevent") == "DRIVER=i915\nPCI_CLASS=30000\nPCI_ID=8086:591D\nPCI_SUBSYS_ID=8086:2212\n"
                    + "PCI_SLOT_NAME=0000:00:02.0\nMODALIAS=pci:v00008086d0000591Dsv00008086sd00002212bc03sc00i00\n")
            #expect(try readText(h.device(uuidA) + "/uevent") == "DRIVER=intel_vgpu_mdev\n")
            #expect(try readText(h.device(uuidA) + "/vfio-dev/vfio0/uevent") == "MAJOR=511\nMINOR=0\nDEVNAME=vfio/devices/vfio0\n")
            for path in [h.parent, h.device(uuidA), h.device(uuidA) + "/vfio-dev/vfio0", h.root + "/sys/devices/pci0000:00"] {
                try writeText(path + "/uevent", "change")
                #expect(errnoOf { try writeText(path + "/uevent", "explode") } == EINVAL, "\(path)")
            }
            // vfio cdev minors count from 0 and are reused, as the kernel's ida.
            try writeText(h.typeDir("i915-GVTg_V5_4") + "/create", uuidB)
            #expect(exists(h.device(uuidB) + "/vfio-dev/vfio1"))
            try writeText(h.device(uuidA) + "/remove", "1")
            try writeText(h.typeDir("i915-GVTg_V5_4") + "/create", uuidC)
            #expect(exists(h.device(uuidC) + "/vfio-dev/vfio0"))
            #expect(realPath(h.root + "/sys/class/vfio-dev/vfio0") == h.parent + "/" + uuidC + "/vfio-dev/vfio0")
        }
    }

    /// Walks a capability list from the bytes alone (no model code): [(offset, id)].
    static func capabilities(_ c: [UInt8]) -> (standard: [(Int, UInt8)], extended: [(Int, UInt16)]) {
        var standard: [(Int, UInt8)] = []
        var at = Int(c[0x34]) & ~3
        while at != 0 && standard.count < 48 { standard.append((at, c[at])); at = Int(c[at + 1]) & ~3 }
        var extended: [(Int, UInt16)] = []
        var e = 0x100
        while e != 0 && e + 4 <= c.count && extended.count < 64 {
            let header = UInt32(c[e]) | UInt32(c[e + 1]) << 8 | UInt32(c[e + 2]) << 16 | UInt32(c[e + 3]) << 24
            if header == 0 { break }
            extended.append((e, UInt16(header & 0xffff)))
            e = Int(header >> 20) & ~3
        }
        return (standard, extended)
    }

    @Test("the host's capability list, GMCH against the GGTT, BAR sizes by the all-ones write")
    func configSpace() throws {
        try withMountedHost { h in
            let c = try readBytes(h.parent + "/config")
            #expect(c.count == 4096)
            let caps = Self.capabilities(c)
            #expect(caps.standard.map(\.0) == [0x40, 0x70, 0xac, 0xd0] && caps.standard.map(\.1) == [0x09, 0x10, 0x05, 0x01])
            #expect(caps.extended.map(\.0) == [0x100, 0x200, 0x300] && caps.extended.map(\.1) == [0x1b, 0x0f, 0x13])
            #expect(c[0x72] & 0xf0 == 0x90, "PCIe device/port type 9: root complex integrated endpoint")
            // GMCH control (0x50): GGMS (bits 7:6) gives the GGTT as 1 << GGMS MiB of PTEs; 8 bytes map 4 KiB.
            let gmch = UInt16(c[0x50]) | UInt16(c[0x51]) << 8
            let ggtt = 1 << Int((gmch >> 6) & 3)
            let p = ParentConfig(address: "0000:00:02.0")
            #expect(ggtt << 20 / 8 * 4096 == (p.apertureMB + p.hiddenMB) << 20, "GGTT of \(ggtt) MiB for \(p.apertureMB + p.hiddenMB) MB of GM")
            #expect(gmch & 1 == 1, "GMCH is locked by firmware")
            // BAR sizing as firmware does it: write all ones, read the mask back.
            for (offset, expected) in [(0x10, UInt64(16 << 20)), (0x18, UInt64(p.apertureMB) << 20)] {
                let fd = try openFile(h.parent + "/config", O_RDWR)
                defer { close(fd) }
                var saved = [UInt8](repeating: 0, count: 8)
                _ = pread(fd, &saved, 8, off_t(offset))
                let ones = [UInt8](repeating: 0xff, count: 8)
                _ = pwrite(fd, ones, 8, off_t(offset))
                var mask = [UInt8](repeating: 0, count: 8)
                _ = pread(fd, &mask, 8, off_t(offset))
                _ = pwrite(fd, saved, 8, off_t(offset))
                let value = mask.enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) } & ~0xf
                #expect(~value &+ 1 == expected, "BAR at 0x\(String(offset, radix: 16)) sizes to \(~value &+ 1)")
            }
            #expect(try readText(h.parent + "/resource").split(separator: "\n").count == 7)
        }
    }

    /// Attributes a real PCI device here has that the simulated parent does not, and why.
    static let exceptions: [String: String] = [
        "firmware_node": "the ACPI companion link: the simulated host has no ACPI tree",
        "link": "PCIe link state (ASPM) files: a root complex integrated endpoint has no link",
        "label": "an ACPI or SMBIOS slot label: none on an integrated GPU",
        "index": "an SMBIOS device index: none on an integrated GPU",
        "acpi_index": "an ACPI _DSM index: the simulated host has no ACPI",
        "sriov_numvfs": "SR-IOV: Kaby Lake GT2 has none (GVT-g mediates instead)",
        "sriov_totalvfs": "SR-IOV: none", "sriov_offset": "SR-IOV: none", "sriov_stride": "SR-IOV: none",
        "sriov_vf_device": "SR-IOV: none", "sriov_drivers_autoprobe": "SR-IOV: none", "sriov_vf_total_msix": "SR-IOV: none",
        "current_link_speed": "no PCIe link", "current_link_width": "no PCIe link", "max_link_speed": "no PCIe link",
        "max_link_width": "no PCIe link", "secondary_bus_number": "bridges only", "subordinate_bus_number": "bridges only",
        "rom": "no option ROM (an integrated GPU's VBIOS is in the system firmware)",
        "iommu": "the IOMMU device link: the simulated host has no IOMMU device node",
    ]
    /// Attributes whose size differs, and why.
    static let sizeExceptions: [String: String] = [
        "config": "4096 bytes: the GPU is a PCI Express function with extended config space; this machine's devices are conventional PCI (256)",
    ]

    @Test("every attribute a real PCI device here has exists on the parent with its mode and kind, but for the table of exceptions",
          .requires(FileManager.default.fileExists(atPath: "/sys/bus/pci/devices"), "needs a real /sys/bus/pci"))
    func comparedWithRealDevices() throws {
        let real = (try? FileManager.default.contentsOfDirectory(atPath: "/sys/bus/pci/devices")) ?? []
        try #require(!real.isEmpty, "no PCI device on this machine to compare with")
        try withMountedHost { h in
            var compared = 0
            for device in real {
                let dir = "/sys/bus/pci/devices/\(device)"
                for name in try FileManager.default.contentsOfDirectory(atPath: dir) {
                    // Child devices (virtio0, drm...) and driver-specific attributes are not the PCI core's.
                    var st = stat(), ours = stat()
                    guard lstat(dir + "/" + name, &st) == 0 else { continue }
                    if Self.exceptions[name] != nil || name.hasPrefix("virtio") || name.hasPrefix("resource") { continue }
                    guard lstat(h.parent + "/" + name, &ours) == 0 else {
                        Issue.record("\(device) has '\(name)', the simulated parent does not (and it is not in the exceptions table)")
                        continue
                    }
                    compared += 1
                    #expect(st.st_mode & S_IFMT == ours.st_mode & S_IFMT, "\(name): another kind of file")
                    if st.st_mode & S_IFMT == S_IFREG {
                        #expect(st.st_mode & 0o7777 == ours.st_mode & 0o7777,
                                "\(name): mode \(String(ours.st_mode & 0o7777, radix: 8)), real \(String(st.st_mode & 0o7777, radix: 8))")
                        if st.st_size != 4096 && Self.sizeExceptions[name] == nil {
                            #expect(st.st_size == ours.st_size, "\(name): st_size \(ours.st_size), real \(st.st_size)")
                        }
                    }
                }
            }
            #expect(compared > 20)
        }
    }

    @Test("numa_node is -1 as an iGPU has, or the config's node")
    func numaNode() throws {
        try withMountedHost { h in
            let text = try readText(h.parent + "/numa_node")
            #expect(text == "-1\n")
        }
        var parent = ParentConfig(address: "0000:00:02.0")
        parent.numaNode = 0
        try withMountedHost(HostConfig(parents: [parent])) { h in
            let text = try readText(h.parent + "/numa_node")
            #expect(text == "0\n")
        }
    }
}

