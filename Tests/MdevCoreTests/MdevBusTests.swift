import Foundation
import MdevCore
import Testing

@Suite("mdev bus and GVT-g pool, without a mount")
struct MdevBusTests {
    func type(_ bus: MdevBus, _ suffix: String, parent: Int = 0) -> MdevType {
        bus.parents[parent].types.first { $0.config.name == suffix }!
    }

    @Test("the built-in host shows a real Kaby Lake host's counts")
    func builtInCounts() {
        let bus = MdevBus(config: .builtIn)
        #expect(bus.parents.map(\.name) == ["0000:00:02.0"])
        #expect(bus.parents[0].types.map(\.id) == ["i915-GVTg_V5_8", "i915-GVTg_V5_4", "i915-GVTg_V5_2", "i915-GVTg_V5_1"])
        #expect(["8", "4", "2", "1"].map { bus.availableInstances(of: type(bus, $0)) } == [7, 5, 2, 1])
    }

    @Test("the default host can exist: a 1 GiB aperture, the rest of the 4 GiB GGTT hidden, counts by GVT-g's formula")
    func defaultHostIsReal() throws {
        let p = ParentConfig(address: "0000:00:02.0")
        #expect(p.apertureMB == 1024 && p.apertureMB + p.hiddenMB == 4096)
        try HostConfig.builtIn.validate()
        // intel_gvt_init_vgpu_types: low_avail = aperture - HOST_LOW_GM_SIZE, high_avail = hidden - HOST_HIGH_GM_SIZE,
        // instances = min(low_avail / low_mm, high_avail / high_mm), written out here independently of MdevBus.
        let (lowAvail, highAvail, fenceAvail) = (1024 - 128, 3072 - 384, 32 - 4)
        let expected = [(64, 384), (128, 512), (256, 1024), (512, 2048)].map { min(lowAvail / $0.0, highAvail / $0.1, fenceAvail / 4) }
        #expect(expected == [7, 5, 2, 1])
        let bus = MdevBus(config: .builtIn)
        #expect(["8", "4", "2", "1"].map { bus.availableInstances(of: type(bus, $0)) } == expected)
    }

    @Test("GM placed as GVT-g's allocator places it: low GM lowest first above the host's, high GM highest first")
    func placement() throws {
        let bus = MdevBus(config: .builtIn)
        let v54 = type(bus, "4"), v58 = type(bus, "8")
        func uuid(_ n: Int) -> [UInt8] { Array(String(format: "8f2b7a1e-0000-4000-8000-%012d", n).utf8) }
        let a = try bus.create(type: v54, uuidBytes: uuid(1))
        let b = try bus.create(type: v58, uuidBytes: uuid(2))
        // Host reserve: 128 MB at the bottom of the aperture, 384 MB at the bottom of the hidden range.
        #expect(a.placement == GMPlacement(lowBase: 128 << 20, highBase: (4096 - 512) << 20))
        #expect(b.placement == GMPlacement(lowBase: 256 << 20, highBase: (4096 - 512 - 384) << 20))
        // A freed hole is reused by the next vGPU that fits it.
        try bus.remove(uuid: a.uuid)
        let c = try bus.create(type: v58, uuidBytes: uuid(3))
        #expect(c.placement.lowBase == 128 << 20 && c.placement.highBase == (4096 - 384) << 20)
    }

    @Test("fragmented GM: the totals fit, no hole does, and the create says so (ENOSPC)")
    func fragmentation() throws {
        var parent = ParentConfig(address: "0000:00:02.0")
        parent.apertureMB = 512; parent.hiddenMB = 3584     // 384 MB of low GM for vGPUs
        let bus = MdevBus(config: HostConfig(parents: [parent]))
        let v58 = type(bus, "8"), v54 = type(bus, "4")
        func uuid(_ n: Int) -> [UInt8] { Array(String(format: "8f2b7a1e-0000-4000-8000-%012d", n).utf8) }
        let made = try (1...6).map { try bus.create(type: v58, uuidBytes: uuid($0)) }     // 6 × 64 MB fills the low range
        try bus.remove(uuid: made[1].uuid); try bus.remove(uuid: made[3].uuid)            // two 64 MB holes, not adjacent
        #expect(bus.availableInstances(of: v54) == 1, "GVT-g counts totals: 128 MB free")
        do {
            try bus.create(type: v54, uuidBytes: uuid(9))
            Issue.record("a 128 MB low GM vGPU was placed in two 64 MB holes")
        } catch {
            #expect(error.errno == ENOSPC)
            #expect(error.message.contains("fragmented"), "\(error.message)")
        }
        try bus.remove(uuid: made[2].uuid)       // now the holes join
        #expect(try bus.create(type: v54, uuidBytes: uuid(10)).placement.lowBase == (128 + 64) << 20)
    }

    @Test("types stop at the first whose low GM does not fit the aperture, as GVT-g generates them")
    func typesTruncatedByAperture() {
        var parent = ParentConfig(address: "0000:00:02.0")
        parent.apertureMB = 256      // 128 MB left for vGPUs
        let bus = MdevBus(config: HostConfig(parents: [parent]))
        #expect(bus.parents[0].types.map(\.id) == ["i915-GVTg_V5_8", "i915-GVTg_V5_4"])
    }

    @Test("only GVT_MAX_VGPU-1 vGPUs per parent: the eighth create is ENOSPC even with pool left")
    func vgpuIDLimit() throws {
        var parent = ParentConfig(address: "0000:00:02.0")
        parent.fences = 64
        parent.apertureMB = 2048
        parent.hiddenMB = 8192
        let bus = MdevBus(config: HostConfig(parents: [parent]))
        let t = type(bus, "8")
        for i in 1...7 {
            let device = try bus.create(type: t, uuidBytes: Array(String(format: "00000000-0000-0000-0000-%012d", i).utf8))
            #expect(device.vgpuID == i)
        }
        #expect(bus.availableInstances(of: t) > 0)
        #expect(throws: MdevError(ENOSPC, "all 7 vGPU ids of 0000:00:02.0 are in use; remove a vGPU first")) {
            try bus.create(type: t, uuidBytes: Array("00000000-0000-0000-0000-000000000008".utf8))
        }
        // The lowest free id is reused.
        try bus.remove(uuid: "00000000-0000-0000-0000-000000000003")
        #expect(try bus.create(type: t, uuidBytes: Array("00000000-0000-0000-0000-000000000009".utf8)).vgpuID == 3)
    }

    @Test("ENOSPC says which resource is short")
    func noSpaceMessage() throws {
        let bus = MdevBus(config: .builtIn)
        try bus.create(type: type(bus, "1"), uuidBytes: Array("00000000-0000-0000-0000-000000000001".utf8))
        do {
            try bus.create(type: type(bus, "1"), uuidBytes: Array("00000000-0000-0000-0000-000000000002".utf8))
            Issue.record("second V5_1 should not fit")
        } catch {
            #expect(error.errno == ENOSPC)
            #expect(error.message.contains("low graphics memory"))
            #expect(error.message.contains("0000:00:02.0"))
        }
        #expect(bus.deviceCount == 1)
    }

    @Test("removing an unknown device is ENODEV")
    func removeUnknown() {
        let bus = MdevBus(config: .builtIn)
        #expect(throws: MdevError.self) { try bus.remove(uuid: "00000000-0000-0000-0000-000000000001") }
    }
}

@Suite("host configuration files")
struct HostConfigTests {
    func write(_ text: String, ext: String = "yaml") throws -> String {
        let path = NSTemporaryDirectory() + "mdevsim-config-\(UUID().uuidString).\(ext)"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test("YAML with hex ids, several parents and custom types")
    func yaml() throws {
        let path = try write("""
        parents:
          - address: "0000:00:02.0"
            device: 0x3e92
            driver_version: 1.2.3
          - address: "0000:00:03.0"
            device: "0x591d"
            aperture_mb: 1024
            types:
              - { name: "4", low_gm_mb: 128, high_gm_mb: 512, aggregation: true, max_aggregation: 3 }
        """)
        let config = try HostConfig.load(path: path)
        #expect(config.parents.count == 2)
        #expect(config.parents[0].device.value == 0x3e92)
        #expect(config.parents[0].driverVersion == "1.2.3")
        #expect(config.parents[0].types == VGPUTypeConfig.gvtDefaults)
        #expect(config.parents[1].device.value == 0x591d)
        #expect(config.parents[1].types.count == 1)
        #expect(config.parents[1].types[0].maxAggregation == 3)
        #expect(config.parents[1].types[0].fences == 4)
    }

    @Test("JSON works too")
    func json() throws {
        let path = try write(#"{"parents": [{"address": "0000:01:00.0", "fences": 64}]}"#, ext: "json")
        let config = try HostConfig.load(path: path)
        #expect(config.parents[0].fences == 64)
        #expect(config.parents[0].address == "0000:01:00.0")
    }

    @Test("testdata configs load")
    func testdata() throws {
        let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../testdata").standardized.path
        for name in try FileManager.default.contentsOfDirectory(atPath: dir) where name.hasSuffix(".yaml") || name.hasSuffix(".json") {
            if name.hasPrefix("bad-") { continue }
            _ = try HostConfig.load(path: dir + "/" + name)
        }
    }

    @Test("bad configs fail with the field and the rule", arguments: [
        ("parents: []", "'parents' is empty"),
        ("parents: [{address: '00:02.0'}]", "address must look like 0000:00:02.0"),
        ("parents: [{address: '0000:00:02.0'}, {address: '0000:00:02.0'}]", "used by an earlier parent"),
        ("parents: [{address: '0000:00:02.0', aperture_mb: 64}]", "must exceed what the host keeps"),
        ("parents: [{address: '0000:00:02.0', aperture_mb: 768}]", "aperture_mb 768 is not a power of two"),
        ("parents: [{address: '0000:00:02.0', aperture_mb: 1024, hidden_mb: 4096}]", "more than gen9's 4096 MB of GGTT space (hidden_mb at most 3072)"),
        ("parents: [{address: '0000:00:02.0', driver_version: '1.0'}]", "driver_version must be x.y.z"),
        ("parents: [{address: '0000:00:02.0', numa_node: -2}]", "numa_node is -2; it must be -1 (none) or a node 0...1023"),
        ("parents: [{address: '0000:00:02.0', device: 'zz'}]", "parents[0].device: expected a number or hex such as 0x591d, got 'zz'"),
        ("parents: [{address: '0000:00:02.0', aperture: 1024}]", "parents[0]: unknown key 'aperture'; did you mean 'aperture_mb'?"),
        ("parents: [{address: '0000:00:02.0', apperture_mb: 1024}]", "did you mean 'aperture_mb'?"),
        ("parent: []", "the top level: unknown key 'parent'; did you mean 'parents'?"),
        ("parents: [{address: '0000:00:02.0', fences: 8, fences: 16}]", "parents[0]: 'fences' is given twice"),
        ("parents: [{address: '0000:00:02.0', hidden_mb: lots}]", "parents[0].hidden_mb: expected a whole number, got 'lots'"),
        ("parents: [{address: '0000:00:02.0', types: [{name: '4', low_gm_mb: 128, high_gm_mb: 512, aggregation: yes}]}]", "parents[0].types[0].aggregation: expected true or false, got 'yes'"),
        ("parents: {address: '0000:00:02.0'}", "parents: expected a list, got a mapping"),
        ("", "the file is empty"),
        ("# only a comment\n", "the file is empty"),
        ("parents: [{address: '0000:00:02.0', vendor: 0x18086}]", "vendor 0x18086 does not fit its PCI register (at most 0xffff)"),
        ("parents: [{address: '0000:00:02.0', fences: 20000000000000000}]", "fences is 20000000000000000; it must be 0...4096"),
        ("parents: [{address: '0000:00:02.0', types: [{name: '4', low_gm_mb: 128, high_gm_mb: 512, resolution: big}]}]", "resolution must be WIDTHxHEIGHT"),
        ("parents: [{}]", "missing field 'address'"),
        ("parents: [{address: '0000:00:02.0', types: [{name: '4', low_gm_mb: 128, high_gm_mb: 512, max_aggregation: 4}]}]", "above 1 only with aggregation"),
        ("parents: [{address: '0000:00:02.0', types: [{name: 'a/b', low_gm_mb: 128, high_gm_mb: 512}]}]", "may hold only letters"),
    ])
    func badConfigs(text: String, message: String) throws {
        let path = try write(text)
        do {
            _ = try HostConfig.load(path: path)
            Issue.record("accepted: \(text)")
        } catch {
            #expect("\(error)".contains(message), "\(error)")
            #expect("\(error)".hasPrefix(path))
        }
    }

    @Test("a config asking for more parents than supported is refused")
    func tooManyParents() throws {
        let parents = (0..<(HostConfig.maxParents + 1)).map { i in
            ParentConfig(address: String(format: "0000:%02x:%02x.0", i / 32, i % 32))
        }
        #expect(throws: ConfigError.self) { try HostConfig(parents: parents).validate() }
    }
}
