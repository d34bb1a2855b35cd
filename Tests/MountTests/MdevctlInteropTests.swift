import Foundation
import MdevCore
import Testing

/// The Debian mdevctl (1.2.0 hard-codes /sys), run unmodified through `mdevsim exec`.
@Suite("real mdevctl through mdevsim exec", .requires(canMount && isRoot && haveMdevctl && haveMdevsimBinary, "needs /dev/fuse, fusermount3, root, mdevctl (apt-get install mdevctl), the mdevsim binary"),
       .timeLimit(.minutes(2)))
struct MdevctlInteropTests {
    /// mdevctl against the mount, with its own scratch /etc/mdevctl.d.
    struct Mdevctl {
        let host: MountedHost
        let etc: String
        func callAsFunction(_ args: String..., input: String? = nil) throws -> Ran {
            try run(mdevsimBinary, ["exec", host.root, "--mdevctl-dir", etc, "--", "mdevctl"] + args, input: input)
        }
    }

    func withMdevctl(_ config: HostConfig = .builtIn, _ body: (Mdevctl, MountedHost) throws -> Void) throws {
        try withMountedHost(config) { h in
            let etc = makeTempDirectory("etc")
            defer { try? FileManager.default.removeItem(atPath: etc) }
            try body(Mdevctl(host: h, etc: etc), h)
        }
    }

    @Test("types: text and --dumpjson show every type with live counts")
    func types() throws {
        try withMdevctl { mdevctl, h in
            try writeText(h.typeDir("i915-GVTg_V5_4") + "/create", uuidA)
            let text = try mdevctl("types")
            #expect(text.status == 0, "\(text)")
            #expect(text.out == """
            0000:00:02.0
              i915-GVTg_V5_1
                Available instances: 1
                Device API: vfio-pci
                Name: GVTg_V5_1
                Description: low_gm_size: 512MB, high_gm_size: 2048MB, fence: 4, resolution: 1920x1200, weight: 16
              i915-GVTg_V5_2
                Available instances: 2
                Device API: vfio-pci
                Name: GVTg_V5_2
                Description: low_gm_size: 256MB, high_gm_size: 1024MB, fence: 4, resolution: 1920x1200, weight: 8
              i915-GVTg_V5_4
                Available instances: 4
                Device API: vfio-pci
                Name: GVTg_V5_4
                Description: low_gm_size: 128MB, high_gm_size: 512MB, fence: 4, resolution: 1920x1200, weight: 4
              i915-GVTg_V5_8
                Available instances: 5
                Device API: vfio-pci
                Name: GVTg_V5_8
                Description: low_gm_size: 64MB, high_gm_size: 384MB, fence: 4, resolution: 1024x768, weight: 2


            """)

            let json = try mdevctl("types", "--dumpjson")
            #expect(json.status == 0, "\(json)")
            let parsed = try JSONSerialization.jsonObject(with: Data(json.out.utf8)) as! [[String: [[String: [String: Any]]]]]
            let types = parsed[0]["0000:00:02.0"]!.reduce(into: [String: [String: Any]]()) { $0.merge($1) { a, _ in a } }
            #expect(Set(types.keys) == ["i915-GVTg_V5_1", "i915-GVTg_V5_2", "i915-GVTg_V5_4", "i915-GVTg_V5_8"])
            for (id, attrs) in types {
                #expect(attrs["available_instances"] as? Int == (try h.available(id)))
                #expect(attrs["device_api"] as? String == "vfio-pci")
                #expect(attrs["name"] as? String == String(id.dropFirst(5)))
            }
        }
    }

    @Test("define, list -d, start, list, list --dumpjson, stop, undefine")
    func lifecycle() throws {
        try withMdevctl { mdevctl, h in
            var r = try mdevctl("define", "-u", uuidB, "-p", "0000:00:02.0", "-t", "i915-GVTg_V5_4")
            #expect(r.status == 0, "\(r)")
            r = try mdevctl("list", "-d")
            #expect(r.out.hasPrefix("\(uuidB) 0000:00:02.0 i915-GVTg_V5_4 manual\n"), "\(r)")
            #expect(!exists(h.device(uuidB)))

            r = try mdevctl("start", "-u", uuidB)
            #expect(r.status == 0, "\(r)")
            #expect(realPath(h.device(uuidB)) == h.parent + "/" + uuidB)
            #expect(try h.available("i915-GVTg_V5_4") == 4)
            r = try mdevctl("list")
            #expect(r.out.hasPrefix("\(uuidB) 0000:00:02.0 i915-GVTg_V5_4 manual (defined)\n"), "\(r)")
            r = try mdevctl("list", "-d")
            #expect(r.out.hasPrefix("\(uuidB) 0000:00:02.0 i915-GVTg_V5_4 manual (active)\n"), "\(r)")
            r = try mdevctl("list", "--dumpjson")
            let parsed = try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as! [[String: [[String: [String: Any]]]]]
            let device = parsed[0]["0000:00:02.0"]![0][uuidB]!
            #expect(device["mdev_type"] as? String == "i915-GVTg_V5_4")
            #expect(device["start"] as? String == "manual")

            r = try mdevctl("start", "-u", uuidB)
            #expect(r.status != 0)
            #expect(r.err == "Error: Device already exists\n", "\(r)")

            r = try mdevctl("stop", "-u", uuidB)
            #expect(r.status == 0, "\(r)")
            #expect(!exists(h.device(uuidB)))
            #expect(try h.available("i915-GVTg_V5_4") == 5)
            r = try mdevctl("list")
            #expect(r.out.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty, "\(r)")

            r = try mdevctl("undefine", "-u", uuidB)
            #expect(r.status == 0, "\(r)")
            r = try mdevctl("list", "-d")
            #expect(r.out.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty, "\(r)")
        }
    }

    @Test("start with attrs writes mdev/aggregated_instances; a missing attribute rolls the device back")
    func startWithAttributes() throws {
        try withMdevctl(twoParentConfig) { mdevctl, h in
            let json = #"{"mdev_type": "i915-GVTg_V5_4", "start": "manual", "attrs": [{"mdev/aggregated_instances": "3"}]}"#
            var r = try mdevctl("start", "-u", uuidA, "-p", "0000:00:02.0", "--jsonfile", "/dev/stdin", input: json)
            #expect(r.status == 0, "\(r)")
            #expect(try readText(h.device(uuidA) + "/mdev/aggregated_instances") == "3\n")
            #expect(try h.available("i915-GVTg_V5_4") == 2)

            let bad = #"{"mdev_type": "i915-GVTg_V5_4", "start": "manual", "attrs": [{"bogus": "1"}]}"#
            r = try mdevctl("start", "-u", uuidB, "-p", "0000:00:02.0", "--jsonfile", "/dev/stdin", input: bad)
            #expect(r.status != 0)
            #expect(r.err == "Error: Invalid attribute 'bogus'\n", "\(r)")
            #expect(!exists(h.device(uuidB)))
            #expect(try h.available("i915-GVTg_V5_4") == 2)

            let tooMany = #"{"mdev_type": "i915-GVTg_V5_4", "start": "manual", "attrs": [{"mdev/aggregated_instances": "9"}]}"#
            r = try mdevctl("start", "-u", uuidB, "-p", "0000:00:02.0", "--jsonfile", "/dev/stdin", input: tooMany)
            #expect(r.status != 0)
            #expect(r.err.contains("Invalid argument (os error 22)"), "\(r)")
            #expect(!exists(h.device(uuidB)))
        }
    }

    @Test("start -p P -t T until the pool is exhausted: mdevctl's exact message")
    func exhaustPool() throws {
        try withMdevctl { mdevctl, h in
            var created: [String] = []
            for _ in 0..<2 {
                let r = try mdevctl("start", "-p", "0000:00:02.0", "-t", "i915-GVTg_V5_2")
                #expect(r.status == 0, "\(r)")
                created.append(r.out.trimmingCharacters(in: .whitespacesAndNewlines))
            }
            #expect(try listDir(h.root + "/sys/bus/mdev/devices") == created.sorted())
            let r = try mdevctl("start", "-p", "0000:00:02.0", "-t", "i915-GVTg_V5_2")
            #expect(r.status != 0)
            #expect(r.err == "Error: No available instances of i915-GVTg_V5_2 on 0000:00:02.0\n", "\(r)")
            #expect(try h.available("i915-GVTg_V5_1") == 0)
        }
    }

    @Test("a kernel ENOSPC from create (vGPU ids exhausted) surfaces through mdevctl")
    func createErrnoSurfaces() throws {
        var parent = ParentConfig(address: "0000:00:02.0")
        parent.maxVGPUs = 2
        try withMdevctl(HostConfig(parents: [parent])) { mdevctl, h in
            var r = try mdevctl("start", "-u", uuidA, "-p", "0000:00:02.0", "-t", "i915-GVTg_V5_8")
            #expect(r.status == 0, "\(r)")
            #expect(try h.available("i915-GVTg_V5_8") == 6)
            r = try mdevctl("start", "-u", uuidB, "-p", "0000:00:02.0", "-t", "i915-GVTg_V5_8")
            #expect(r.status != 0)
            #expect(r.err == """
            Error: Failed to create mdev \(uuidB), type i915-GVTg_V5_8 on 0000:00:02.0

            Caused by:
                No space left on device (os error 28)

            """, "\(r)")
            #expect(!exists(h.device(uuidB)))
        }
    }

    @Test("errors mdevctl reports before touching the kernel: unknown parent, type, device")
    func mdevctlOwnErrors() throws {
        try withMdevctl { mdevctl, _ in
            var r = try mdevctl("start", "-u", uuidA, "-p", "0000:00:09.0", "-t", "i915-GVTg_V5_8")
            #expect(r.err == "Error: Unable to find parent device '0000:00:09.0'\n", "\(r)")
            r = try mdevctl("start", "-u", uuidA, "-p", "0000:00:02.0", "-t", "i915-GVTg_V5_9")
            #expect(r.err == "Error: Parent 0000:00:02.0 does not support mdev type i915-GVTg_V5_9\n", "\(r)")
            r = try mdevctl("stop", "-u", uuidA)
            #expect(r.err.hasPrefix("Error: Error removing device \(uuidA)"), "\(r)")
        }
    }

    /// Where exec keeps a mount's private /etc/mdevctl.d by default.
    static func defaultState(for root: String) -> String {
        let hash = root.utf8.reduce(0xcbf2_9ce4_8422_2325 as UInt64) { ($0 ^ UInt64($1)) &* 0x0000_0100_0000_01b3 }
        let name = (root.split(separator: "/").last.map(String.init) ?? "root").filter { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "." }
        return "/run/mdevsim/exec/\(name)-\(String(hash, radix: 16))"
    }

    @Test("exec's private state: made root-only, and a directory another user made or could write is refused")
    func hostileState() throws {
        try withMountedHost { h in
            let state = Self.defaultState(for: h.root)
            defer { try? FileManager.default.removeItem(atPath: state) }
            var r = try run(mdevsimBinary, ["exec", h.root, "--", "mdevctl", "types"])
            #expect(r.status == 0, "\(r)")
            for path in ["/run/mdevsim", "/run/mdevsim/exec", state, state + "/mdevctl.d", state + "/mdevctl.d/scripts.d/callouts"] {
                var st = stat()
                #expect(lstat(path, &st) == 0 && st.st_uid == 0 && st.st_mode & 0o077 == 0, "\(path) mode \(String(st.st_mode & 0o777, radix: 8)) uid \(st.st_uid)")
            }
            // Another user planted the directory (and a callout in it).
            try FileManager.default.removeItem(atPath: state)
            try FileManager.default.createDirectory(atPath: state + "/mdevctl.d/scripts.d/callouts", withIntermediateDirectories: true)
            #expect(chown(state, 65534, 65534) == 0)
            r = try run(mdevsimBinary, ["exec", h.root, "--", "true"])
            #expect(r.status == 1 && r.err.contains("refusing \(state): it belongs to uid 65534"), "\(r)")
            // Ours, but anyone may write in it.
            #expect(chown(state, 0, 0) == 0 && chmod(state + "/mdevctl.d", 0o777) == 0)
            r = try run(mdevsimBinary, ["exec", h.root, "--", "true"])
            #expect(r.status == 1 && r.err.contains("lets others write in it"), "\(r)")
            // A link where the directory should be.
            try FileManager.default.removeItem(atPath: state)
            try FileManager.default.createSymbolicLink(atPath: state, withDestinationPath: "/tmp")
            r = try run(mdevsimBinary, ["exec", h.root, "--", "true"])
            #expect(r.status == 1 && r.err.contains("it is not a directory"), "\(r)")
            // --mdevctl-dir is held to the same rule.
            let shared = makeTempDirectory("shared")
            defer { try? FileManager.default.removeItem(atPath: shared) }
            #expect(chmod(shared, 0o777) == 0)
            r = try run(mdevsimBinary, ["exec", h.root, "--mdevctl-dir", shared, "--", "true"])
            #expect(r.status == 1 && r.err.contains("lets others write in it"), "\(r)")
        }
    }
}
