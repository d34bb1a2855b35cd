import Foundation
import StateStream
import SafeYAML
import Yams

/// One vGPU type as GVT-g's `intel_vgpu_configs[]` table defines it.
public struct VGPUTypeConfig: Codable, Sendable, Equatable {
    /// Suffix of the type name: "8" gives `GVTg_V5_8` and the sysfs dir `i915-GVTg_V5_8`.
    public var name: String
    public var lowGMMB: Int
    public var highGMMB: Int
    public var fences: Int
    public var weight: Int
    public var resolution: String
    /// Whether a device of this type can be aggregated (`mdev/aggregated_instances`).
    public var aggregation: Bool
    /// Upper bound of `mdev/aggregated_instances` for such a device.
    public var maxAggregation: Int
    /// `VFIO_DEVICE_FEATURE_MIGRATION` flags: stop_copy is mandatory; p2p and pre_copy optional.
    public var migrationFeatures: [String] = ["stop_copy", "p2p", "pre_copy"]
    /// What a failed resume leaves: "keep" (the device as it was) or "error" (ERROR until reset).
    public var resumeFailure = "keep"
    /// "v2" (migration/ files, the default) or "v1" (the 5.8 region at regions/migration).
    public var migrationProtocol = "v2"

    public init(name: String, lowGMMB: Int, highGMMB: Int, fences: Int, weight: Int, resolution: String,
                aggregation: Bool = false, maxAggregation: Int = 1) {
        self.name = name
        self.lowGMMB = lowGMMB
        self.highGMMB = highGMMB
        self.fences = fences
        self.weight = weight
        self.resolution = resolution
        self.aggregation = aggregation
        self.maxAggregation = maxAggregation
    }

    enum CodingKeys: String, CodingKey {
        case name, fences, weight, resolution, aggregation
        case lowGMMB = "low_gm_mb", highGMMB = "high_gm_mb", maxAggregation = "max_aggregation"
        case migrationFeatures = "migration_features", resumeFailure = "resume_failure", migrationProtocol = "migration_protocol"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        lowGMMB = try c.decode(Int.self, forKey: .lowGMMB)
        highGMMB = try c.decode(Int.self, forKey: .highGMMB)
        fences = try c.decodeIfPresent(Int.self, forKey: .fences) ?? 4
        weight = try c.decodeIfPresent(Int.self, forKey: .weight) ?? 4
        resolution = try c.decodeIfPresent(String.self, forKey: .resolution) ?? "1920x1200"
        aggregation = try c.decodeIfPresent(Bool.self, forKey: .aggregation) ?? false
        maxAggregation = try c.decodeIfPresent(Int.self, forKey: .maxAggregation) ?? (aggregation ? 4 : 1)
        migrationFeatures = try c.decodeIfPresent([String].self, forKey: .migrationFeatures) ?? ["stop_copy", "p2p", "pre_copy"]
        resumeFailure = try c.decodeIfPresent(String.self, forKey: .resumeFailure) ?? "keep"
        migrationProtocol = try c.decodeIfPresent(String.self, forKey: .migrationProtocol) ?? "v2"
    }

    /// GVT-g's four Gen9 types, in the driver's table order.
    public static let gvtDefaults: [VGPUTypeConfig] = [
        VGPUTypeConfig(name: "8", lowGMMB: 64, highGMMB: 384, fences: 4, weight: 2, resolution: "1024x768"),
        VGPUTypeConfig(name: "4", lowGMMB: 128, highGMMB: 512, fences: 4, weight: 4, resolution: "1920x1200"),
        VGPUTypeConfig(name: "2", lowGMMB: 256, highGMMB: 1024, fences: 4, weight: 8, resolution: "1920x1200"),
        VGPUTypeConfig(name: "1", lowGMMB: 512, highGMMB: 2048, fences: 4, weight: 16, resolution: "1920x1200"),
    ]
}

/// A PCI integer that a config file may write as a number or a "0x..." string.
public struct PCIId: Codable, Sendable, Equatable, ExpressibleByIntegerLiteral {
    public var value: Int
    public init(integerLiteral value: Int) { self.value = value }
    public init(_ value: Int) { self.value = value }
    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let v = try? c.decode(Int.self) { value = v; return }
        let text = try c.decode(String.self).lowercased()
        let digits = text.hasPrefix("0x") ? String(text.dropFirst(2)) : text
        guard let v = Int(digits, radix: 16) else {
            throw DecodingError.dataCorruptedError(in: c, debugDescription: "'\(text)' is not a hex PCI id such as 0x591d")
        }
        value = v
    }
    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(value)
    }
}

/// The guest workload every new vGPU of a parent starts with.
public struct WorkloadDefaults: Codable, Sendable, Equatable {
    /// "real" (wall time) or "stepped" (advances only on `workload/step`).
    public var clock: String = "real"
    /// MB per second of workload clock; 0 leaves new devices idle.
    public var dirtyRateMBps: Double = 0.5
    public var workingSetMiB: Int = 4
    /// Fixed seed for every device; absent: derived from each device's UUID.
    public var seed: UInt64?

    public init() {}

    enum CodingKeys: String, CodingKey {
        case clock, seed
        case dirtyRateMBps = "dirty_rate_mbps", workingSetMiB = "working_set_mib"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        clock = try c.decodeIfPresent(String.self, forKey: .clock) ?? "real"
        dirtyRateMBps = try c.decodeIfPresent(Double.self, forKey: .dirtyRateMBps) ?? 0.5
        workingSetMiB = try c.decodeIfPresent(Int.self, forKey: .workingSetMiB) ?? 4
        seed = try c.decodeIfPresent(UInt64.self, forKey: .seed)
    }
}

/// One physical GPU offering vGPU types, with GVT-g's resource pool.
public struct ParentConfig: Codable, Sendable, Equatable {
    /// PCI address `dddd:bb:dd.f`.
    public var address: String
    public var vendor: PCIId = 0x8086
    public var device: PCIId = 0x591d
    public var subsystemVendor: PCIId = 0x8086
    public var subsystemDevice: PCIId = 0x2212
    public var pciClass: PCIId = 0x030000
    public var revision: PCIId = 0x04
    /// The bound PCI driver; the type dir prefix (`i915-`).
    public var driver = "i915"
    /// Type name stem: `GVTg_V5` for Gen9 (SKL+), `GVTg_V4` for Gen8.
    public var typePrefix = "GVTg_V5"
    /// Aperture (low graphics memory) in MB, a power of two; the host keeps
    /// `hostLowGMMB` of it. A real Kaby Lake GT2 with a 1 GiB aperture.
    public var apertureMB = 1024
    /// Hidden (high graphics memory) in MB: the rest of gen9's 4 GiB GGTT
    /// space (4096 − aperture); the host keeps `hostHighGMMB` of it.
    public var hiddenMB = 3072
    public var fences = 32
    public var hostLowGMMB = 128
    public var hostHighGMMB = 384
    public var hostFences = 4
    /// vGPU ids are 1..<maxVGPUs (GVT_MAX_VGPU is 8: ids 1-7).
    public var maxVGPUs = 8
    public var iommuGroup: Int?
    /// The function's NUMA node (`numa_node`): -1, none, as an iGPU without ACPI _PXM has;
    /// 0 or more for a host whose firmware gives one (libvirt then shows `<numa node=.../>`).
    public var numaNode = -1
    /// The parent driver's version, `x.y.z`, for migration compatibility.
    public var driverVersion = "1.0.0"
    public var types: [VGPUTypeConfig] = VGPUTypeConfig.gvtDefaults
    public var workload = WorkloadDefaults()

    public init(address: String) { self.address = address }

    enum CodingKeys: String, CodingKey {
        case address, vendor, device, revision, driver, fences, types, workload
        case subsystemVendor = "subsystem_vendor", subsystemDevice = "subsystem_device", pciClass = "class"
        case typePrefix = "type_prefix", apertureMB = "aperture_mb", hiddenMB = "hidden_mb"
        case hostLowGMMB = "host_low_gm_mb", hostHighGMMB = "host_high_gm_mb", hostFences = "host_fences"
        case maxVGPUs = "max_vgpus", iommuGroup = "iommu_group", driverVersion = "driver_version", numaNode = "numa_node"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        var p = ParentConfig(address: try c.decode(String.self, forKey: .address))
        func opt<T: Decodable>(_ key: CodingKeys, _ into: inout T) throws {
            if let v = try c.decodeIfPresent(T.self, forKey: key) { into = v }
        }
        try opt(.vendor, &p.vendor); try opt(.device, &p.device)
        try opt(.subsystemVendor, &p.subsystemVendor); try opt(.subsystemDevice, &p.subsystemDevice)
        try opt(.pciClass, &p.pciClass); try opt(.revision, &p.revision)
        try opt(.driver, &p.driver); try opt(.typePrefix, &p.typePrefix)
        try opt(.apertureMB, &p.apertureMB); try opt(.hiddenMB, &p.hiddenMB); try opt(.fences, &p.fences)
        try opt(.hostLowGMMB, &p.hostLowGMMB); try opt(.hostHighGMMB, &p.hostHighGMMB)
        try opt(.hostFences, &p.hostFences); try opt(.maxVGPUs, &p.maxVGPUs); try opt(.numaNode, &p.numaNode)
        try opt(.driverVersion, &p.driverVersion); try opt(.types, &p.types); try opt(.workload, &p.workload)
        p.iommuGroup = try c.decodeIfPresent(Int.self, forKey: .iommuGroup)
        self = p
    }
}

/// The simulated host: any number of parent GPUs.
public struct HostConfig: Codable, Sendable, Equatable {
    public var parents: [ParentConfig]
    /// The kernel generation the host imitates, "major.minor": it decides what
    /// the kernel itself names (the mdev driver GVT-g devices bind to).
    public var kernel = HostConfig.defaultKernel
    public static let defaultKernel = "6.1"

    public init(parents: [ParentConfig], kernel: String = HostConfig.defaultKernel) {
        self.parents = parents
        self.kernel = kernel
    }

    enum CodingKeys: String, CodingKey { case parents, kernel }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        parents = try c.decode([ParentConfig].self, forKey: .parents)
        kernel = try c.decodeIfPresent(String.self, forKey: .kernel) ?? HostConfig.defaultKernel
    }

    /// (major, minor) of `kernel`, if it is one.
    public var kernelVersion: (major: Int, minor: Int)? {
        let parts = kernel.split(separator: ".").map { Int($0) }
        guard parts.count >= 2, let major = parts[0], let minor = parts[1] else { return nil }
        return (major, minor)
    }

    /// The driver an mdev of this host binds to: GVT-g's own since 5.16
    /// ("vfio/mdev: embedd struct mdev_parent in the parent data structure"
    /// series made vendor drivers mdev drivers), the vfio_mdev bridge before.
    public var mdevDriver: String {
        guard let v = kernelVersion, v.major < 5 || (v.major == 5 && v.minor < 16) else { return "intel_vgpu_mdev" }
        return "vfio_mdev"
    }

    /// The same host with every parent's new vGPUs on the given clock.
    public func withClock(_ clock: String) -> HostConfig {
        var copy = self
        for i in copy.parents.indices { copy.parents[i].workload.clock = clock }
        return copy
    }

    /// The built-in default: one Kaby Lake GT2 (8086:591d) at 0000:00:02.0 whose
    /// pool gives the counts a real host shows: V5_8=7, V5_4=5, V5_2=2, V5_1=1.
    public static let builtIn = HostConfig(parents: [ParentConfig(address: "0000:00:02.0")])

    /// Every key a config file may hold, and what each must be.
    public static let schema: Schema = {
        let type: Schema = .mapping([
            "name": .scalar(.text), "low_gm_mb": .scalar(.integer), "high_gm_mb": .scalar(.integer), "fences": .scalar(.integer),
            "weight": .scalar(.integer), "resolution": .scalar(.text), "aggregation": .scalar(.boolean),
            "max_aggregation": .scalar(.integer), "migration_features": .list(.scalar(.text)),
            "resume_failure": .scalar(.text), "migration_protocol": .scalar(.text),
        ])
        let workload: Schema = .mapping([
            "clock": .scalar(.text), "seed": .scalar(.integer), "dirty_rate_mbps": .scalar(.number), "working_set_mib": .scalar(.integer),
        ])
        let parent: Schema = .mapping([
            "address": .scalar(.text), "vendor": .scalar(.hex), "device": .scalar(.hex), "subsystem_vendor": .scalar(.hex),
            "subsystem_device": .scalar(.hex), "class": .scalar(.hex), "revision": .scalar(.hex), "driver": .scalar(.text),
            "type_prefix": .scalar(.text), "aperture_mb": .scalar(.integer), "hidden_mb": .scalar(.integer), "fences": .scalar(.integer),
            "host_low_gm_mb": .scalar(.integer), "host_high_gm_mb": .scalar(.integer), "host_fences": .scalar(.integer),
            "max_vgpus": .scalar(.integer), "iommu_group": .scalar(.integer), "driver_version": .scalar(.text), "numa_node": .scalar(.integer),
            "types": .list(type), "workload": workload,
        ])
        return .mapping(["parents": .list(parent), "kernel": .scalar(.text)])
    }()

    /// Graphics memory one GGTT maps on gen8+ (8 MiB of PTEs, i915's gen8_gmch_probe).
    public static let ggttSpaceMB = 4096

    /// Bounds that keep a hostile config from exhausting the daemon.
    public static let maxParents = 4096
    public static let maxTypesPerParent = 64
    public static let maxVGPUsPerParent = 1024

    /// Reads a YAML or JSON file (JSON is read as YAML, of which it is a subset).
    public static func load(path: String) throws -> HostConfig {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ConfigError("\(path): cannot read the config file: \(error.localizedDescription)")
        }
        return try parse(text, source: path)
    }

    /// Parses and validates a YAML or JSON config; `source` names it in messages.
    public static func parse(_ text: String, source: String = "config") throws -> HostConfig {
        guard text.utf8.count <= 16 << 20 else { throw ConfigError("\(source): config files are limited to 16 MiB") }
        let config: HostConfig
        do {
            config = try SafeYAML.decode(HostConfig.self, from: text, schema: HostConfig.schema)
        } catch let error as SafeYAML.Refusal {
            throw ConfigError("\(source): \(error)")
        } catch let error as DecodingError {
            throw ConfigError("\(source): \(ConfigError.describe(error))")
        } catch {
            throw ConfigError("\(source): not valid YAML or JSON: \(error)")
        }
        try config.validate(source: source)
        return config
    }

    /// Checks every rule a real host would hold; the message names the parent and field.
    public func validate(source: String = "config") throws {
        guard !parents.isEmpty else { throw ConfigError("\(source): 'parents' is empty; describe at least one GPU") }
        guard let v = kernelVersion, (4...7).contains(v.major) else {
            throw ConfigError("\(source): kernel '\(kernel)' is not a Linux version such as 5.15 or 6.1 (4.x to 7.x)")
        }
        guard parents.count <= HostConfig.maxParents else {
            throw ConfigError("\(source): \(parents.count) parents asked for; at most \(HostConfig.maxParents) are supported")
        }
        var seen = Set<String>()
        for (i, p) in parents.enumerated() {
            let at = "\(source): parents[\(i)] (\(p.address))"
            guard PCIAddress(p.address) != nil else {
                throw ConfigError("\(at): address must look like 0000:00:02.0 (domain:bus:device.function, lowercase hex)")
            }
            guard seen.insert(p.address).inserted else { throw ConfigError("\(at): address is used by an earlier parent") }
            for (name, id, limit) in [("vendor", p.vendor, 0xffff), ("device", p.device, 0xffff), ("subsystem_vendor", p.subsystemVendor, 0xffff),
                                      ("subsystem_device", p.subsystemDevice, 0xffff), ("class", p.pciClass, 0xff_ffff), ("revision", p.revision, 0xff)]
            where !(0...limit).contains(id.value) {
                throw ConfigError("\(at): \(name) 0x\(String(id.value, radix: 16)) does not fit its PCI register (at most 0x\(String(limit, radix: 16)))")
            }
            for (name, value, limit) in [("aperture_mb", p.apertureMB, 1 << 20), ("hidden_mb", p.hiddenMB, 1 << 20), ("fences", p.fences, 4096),
                                         ("host_low_gm_mb", p.hostLowGMMB, 1 << 20), ("host_high_gm_mb", p.hostHighGMMB, 1 << 20), ("host_fences", p.hostFences, 4096)]
            where !(0...limit).contains(value) {
                throw ConfigError("\(at): \(name) is \(value); it must be 0...\(limit)")
            }
            guard p.apertureMB > 0, p.apertureMB & (p.apertureMB - 1) == 0 else {
                throw ConfigError("\(at): aperture_mb \(p.apertureMB) is not a power of two; a GPU's aperture (BAR2) is 256, 512, 1024... MB")
            }
            guard p.apertureMB + p.hiddenMB <= HostConfig.ggttSpaceMB else {
                throw ConfigError("\(at): aperture_mb + hidden_mb is \(p.apertureMB + p.hiddenMB) MB, more than gen9's \(HostConfig.ggttSpaceMB) MB of GGTT space (hidden_mb at most \(HostConfig.ggttSpaceMB - p.apertureMB))")
            }
            guard p.apertureMB > p.hostLowGMMB, p.hiddenMB > p.hostHighGMMB, p.fences > p.hostFences else {
                throw ConfigError("\(at): aperture_mb, hidden_mb and fences must exceed what the host keeps (host_low_gm_mb, host_high_gm_mb, host_fences)")
            }
            guard (-1...1023).contains(p.numaNode) else {
                throw ConfigError("\(at): numa_node is \(p.numaNode); it must be -1 (none) or a node 0...1023")
            }
            guard (2...HostConfig.maxVGPUsPerParent + 1).contains(p.maxVGPUs) else {
                throw ConfigError("\(at): max_vgpus must be between 2 and \(HostConfig.maxVGPUsPerParent + 1)")
            }
            guard !p.types.isEmpty, p.types.count <= HostConfig.maxTypesPerParent else {
                throw ConfigError("\(at): between 1 and \(HostConfig.maxTypesPerParent) types are needed")
            }
            guard p.driver.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }), !p.driver.isEmpty,
                  p.typePrefix.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) else {
                throw ConfigError("\(at): driver and type_prefix may hold only letters, digits and '_'")
            }
            guard ["real", "stepped"].contains(p.workload.clock) else {
                throw ConfigError("\(at): workload.clock must be 'real' or 'stepped'")
            }
            guard p.workload.dirtyRateMBps >= 0, p.workload.dirtyRateMBps <= 10_000,   // GPUModel.WorkloadConfig.maxDirtyRateMBps
                  (0...65536).contains(p.workload.workingSetMiB) else {
                throw ConfigError("\(at): workload.dirty_rate_mbps must be 0...10000 and working_set_mib 0...65536")
            }
            guard SemanticVersion(p.driverVersion) != nil else {
                throw ConfigError("\(at): driver_version must be x.y.z, e.g. 1.0.0")
            }
            var names = Set<String>()
            for t in p.types {
                guard names.insert(t.name).inserted else { throw ConfigError("\(at): type '\(t.name)' is listed twice") }
                guard !t.name.isEmpty, t.name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) else {
                    throw ConfigError("\(at): type name '\(t.name)' may hold only letters, digits and '_'")
                }
                guard t.lowGMMB > 0, t.highGMMB > 0, t.fences > 0, t.weight > 0 else {
                    throw ConfigError("\(at): type '\(t.name)' needs positive low_gm_mb, high_gm_mb, fences and weight")
                }
                guard t.lowGMMB <= p.apertureMB, t.highGMMB <= p.hiddenMB, t.fences <= p.fences, t.weight <= 1 << 16 else {
                    throw ConfigError("\(at): type '\(t.name)' asks for more than the parent has (low_gm_mb ≤ aperture_mb, high_gm_mb ≤ hidden_mb, fences ≤ fences)")
                }
                let dims = t.resolution.split(separator: "x", omittingEmptySubsequences: false).map { Int($0) }
                guard dims.count == 2, let w = dims[0], let h = dims[1], (1...16384).contains(w), (1...16384).contains(h) else {
                    throw ConfigError("\(at): type '\(t.name)': resolution must be WIDTHxHEIGHT such as 1920x1200, got '\(t.resolution)'")
                }
                let features = Set(t.migrationFeatures)
                guard features.contains("stop_copy"), features.isSubset(of: ["stop_copy", "p2p", "pre_copy"]) else {
                    throw ConfigError("\(at): type '\(t.name)': migration_features must include stop_copy and may add p2p and pre_copy")
                }
                guard ["v1", "v2"].contains(t.migrationProtocol) else {
                    throw ConfigError("\(at): type '\(t.name)': migration_protocol must be 'v1' or 'v2'")
                }
                guard ["keep", "error"].contains(t.resumeFailure) else {
                    throw ConfigError("\(at): type '\(t.name)': resume_failure must be 'keep' or 'error'")
                }
                guard (1...64).contains(t.maxAggregation), t.aggregation || t.maxAggregation == 1 else {
                    throw ConfigError("\(at): type '\(t.name)': max_aggregation must be 1...64, and above 1 only with aggregation: true")
                }
            }
        }
    }
}

public struct ConfigError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }

    static func describe(_ error: DecodingError) -> String {
        func path(_ ctx: DecodingError.Context) -> String {
            ctx.codingPath.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
        }
        switch error {
        case .keyNotFound(let key, let ctx): return "missing field '\(key.stringValue)' at \(path(ctx).isEmpty ? "top level" : path(ctx))"
        case .typeMismatch(_, let ctx), .valueNotFound(_, let ctx), .dataCorrupted(let ctx):
            return "\(path(ctx)): \(ctx.debugDescription)"
        @unknown default: return "\(error)"
        }
    }
}

/// A PCI address `dddd:bb:dd.f` in the kernel's lowercase form.
public struct PCIAddress: Sendable, Hashable {
    public let domain: Int, bus: Int, device: Int, function: Int
    public init?(_ text: String) {
        let bytes = Array(text.utf8)
        guard bytes.count == 12, bytes[4] == UInt8(ascii: ":"), bytes[7] == UInt8(ascii: ":"), bytes[10] == UInt8(ascii: "."),
              text == text.lowercased() else { return nil }
        let s = Array(text)
        guard let d = Int(String(s[0..<4]), radix: 16), let b = Int(String(s[5..<7]), radix: 16),
              let dev = Int(String(s[8..<10]), radix: 16), let f = Int(String(s[11]), radix: 16),
              dev < 32, f < 8 else { return nil }
        (domain, bus, device, function) = (d, b, dev, f)
    }
    /// The root bus directory under `/sys/devices` (`pci0000:00`).
    public var rootBus: String { "pci" + String(format: "%04x:%02x", domain, bus) }
}
