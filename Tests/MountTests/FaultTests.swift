import Faults
import VirtualFS
import Foundation
import MdevCore
import Testing

/// File-operation faults through `.mdevsim/faults` on a real mount.
@Suite("fault injection on file operations", .requires(canMount, "needs /dev/fuse and fusermount3"), .timeLimit(.minutes(1)))
struct FaultTests {
    func add(_ h: MountedHost, _ rule: String) throws { try writeText(h.root + "/.mdevsim/faults", rule) }

    @Test("an errno rule fires when and only when it says: once, every Nth, after N")
    func when() throws {
        try withMountedHost { h in
            let attr = h.typeDir("i915-GVTg_V5_4") + "/available_instances"
            try add(h, "name=once path=sys/devices/**/i915-GVTg_V5_4/available_instances op=read errno=EIO once=true")
            #expect(errnoOf { _ = try readText(attr) } == EIO)
            #expect(try readText(attr) == "5\n")
            try writeText(h.root + "/.mdevsim/faults", "clear")
            try add(h, "name=every3 path=sys/**/available_instances op=open errno=EAGAIN every=3")
            let results = (1...6).map { _ in errnoOf { _ = try readText(attr) } }
            #expect(results == [0, 0, EAGAIN, 0, 0, EAGAIN])
            try writeText(h.root + "/.mdevsim/faults", "clear")
            try add(h, "name=after2 path=sys/**/device_api op=open errno=EBUSY after=2")
            let api = h.typeDir("i915-GVTg_V5_4") + "/device_api"
            #expect((1...4).map { _ in errnoOf { _ = try readText(api) } } == [0, 0, EBUSY, EBUSY])
            let listing = try readText(h.root + "/.mdevsim/faults")
            #expect(listing.contains("name=after2") && listing.contains("matches=4 hits=2"), "\(listing)")
            // Other files are unaffected.
            #expect(try readText(h.typeDir("i915-GVTg_V5_8") + "/name") == "GVTg_V5_8\n")
        }
    }

    @Test("a seeded probability fires the same way every run")
    func probability() throws {
        func pattern() throws -> [Int32] {
            try withMountedHost { h in
                try add(h, "path=sys/**/name op=open errno=EIO probability=0.5 seed=42")
                return (1...16).map { _ in errnoOf { _ = try readText(h.typeDir("i915-GVTg_V5_4") + "/name") } }
            }
        }
        let a = try pattern(), b = try pattern()
        #expect(a == b)
        #expect(a.contains(EIO) && a.contains(0))
    }

    @Test("a time window: the rule fires only between from_ms and until_ms after it was added")
    func window() throws {
        try withMountedHost { h in
            try add(h, "path=sys/**/i915-GVTg_V5_2/name op=open errno=EIO from_ms=150 until_ms=400")
            let name = h.typeDir("i915-GVTg_V5_2") + "/name"
            #expect(errnoOf { _ = try readText(name) } == 0)
            usleep(250_000)
            #expect(errnoOf { _ = try readText(name) } == EIO)
            usleep(250_000)
            #expect(errnoOf { _ = try readText(name) } == 0)
        }
    }

    @Test("delays and short reads")
    func delayAndShortRead() throws {
        try withMountedHost { h in
            try add(h, "path=sys/**/i915-GVTg_V5_4/description op=read short_read=5")
            let fd = open(h.typeDir("i915-GVTg_V5_4") + "/description", O_RDONLY)
            defer { close(fd) }
            var buf = [UInt8](repeating: 0, count: 100)
            #expect(read(fd, &buf, 100) == 5)
            #expect(String(decoding: buf[0..<5], as: UTF8.self) == "low_g")
            try add(h, "path=sys/**/i915-GVTg_V5_8/name op=read delay_ms=150")
            let start = Date()
            #expect(try readText(h.typeDir("i915-GVTg_V5_8") + "/name") == "GVTg_V5_8\n")
            #expect(Date().timeIntervalSince(start) >= 0.14)
        }
    }

    @Test("create fails with ENOSPC on demand: nothing is half-created, mdevctl shows the errno")
    func createFault() throws {
        try withMountedHost { h in
            try add(h, "name=no-room path=sys/devices/**/create op=write errno=ENOSPC once=true")
            #expect(errnoOf { try writeText(h.typeDir("i915-GVTg_V5_4") + "/create", uuidA) } == ENOSPC)
            #expect(!exists(h.device(uuidA)) && !exists(h.vfio(uuidA)))
            #expect(try h.available("i915-GVTg_V5_4") == 5)
            if isRoot && haveMdevctl && haveMdevsimBinary {
                try add(h, "name=busy path=sys/devices/**/create op=write errno=EBUSY once=true")
                let etc = makeTempDirectory("etc")
                defer { try? FileManager.default.removeItem(atPath: etc) }
                let r = try run(mdevsimBinary, ["exec", h.root, "--mdevctl-dir", etc, "--", "mdevctl", "start", "-u", uuidB, "-p", "0000:00:02.0", "-t", "i915-GVTg_V5_4"])
                #expect(r.err == "Error: Failed to create mdev \(uuidB), type i915-GVTg_V5_4 on 0000:00:02.0\n\nCaused by:\n    Device or resource busy (os error 16)\n", "\(r)")
                #expect(!exists(h.device(uuidB)))
            }
            // The same create works once the rules have fired.
            try writeText(h.typeDir("i915-GVTg_V5_4") + "/create", uuidA)
            #expect(exists(h.device(uuidA)))
            let log = try readText(h.root + "/.mdevsim/log")
            #expect(log.contains("rule=no-room op=write path=sys/devices/pci0000:00/0000:00:02.0/mdev_supported_types/i915-GVTg_V5_4/create -> ENOSPC"), "\(log)")
        }
    }

    @Test("remove fails on demand and the device stays whole")
    func removeFault() throws {
        try withMountedHost { h in
            try writeText(h.typeDir("i915-GVTg_V5_8") + "/create", uuidA)
            try add(h, "path=sys/devices/**/remove op=write errno=EBUSY once=true")
            #expect(errnoOf { try writeText(h.device(uuidA) + "/remove", "1") } == EBUSY)
            #expect(exists(h.device(uuidA)) && exists(h.vfio(uuidA) + "/regions/bar0"))
            try writeText(h.device(uuidA) + "/remove", "1")
            #expect(!exists(h.device(uuidA)))
        }
    }

    @Test("bad rules are refused with the reason")
    func badRules() throws {
        try withMountedHost { h in
            for rule in ["path=x errno=EWHAT", "op=write errno=EIO", "path=x op=fly errno=EIO", "path=x errno=EIO every=0",
                         "path=x errno=EIO delay_ms=5", "path=x errno=EIO once=true every=2", "path=x bogus=1 errno=EIO"] {
                let code = errnoOf { try add(h, rule) }
                #expect(code == EINVAL, "\(rule)")
            }
            let listing = try readText(h.root + "/.mdevsim/faults")
            #expect(listing == "")
        }
    }
}

@Suite("mdevsim fault and mount --faults", .requires(canMount && haveMdevsimBinary, "needs /dev/fuse, fusermount3 and the mdevsim binary"), .timeLimit(.minutes(1)))
struct FaultCommandTests {
    @Test("fault add, list and clear through the CLI; --faults loads a plan at mount")
    func cli() throws {
        try withMountedHost { h in
            var r = try run(mdevsimBinary, ["fault", "add", h.root, "name=x path=sys/**/create op=write errno=ENOSPC every=2"])
            #expect(r.status == 0, "\(r)")
            r = try run(mdevsimBinary, ["fault", "list", h.root])
            #expect(r.out == "name=x path=sys/**/create op=write errno=ENOSPC every=2 matches=0 hits=0\n", "\(r)")
            r = try run(mdevsimBinary, ["fault", "add", h.root, "path=x errno=ENOPE"])
            #expect(r.status == 64 && r.err.contains("errno 'ENOPE' is not an errno name"), "\(r)")
            r = try run(mdevsimBinary, ["fault", "add", h.root, "--help"])
            for piece in ["errno=NAME", "delay_ms=N", "short_read=N", "once=true", "every=N", "after=N", "probability=P", "seed=S",
                          "from_ms=A", "until_ms=B", "device=", "arc=FROM>TO", "to_error=true", "stream=flip_bit", "resume=reject", "spike_mbps=N"] {
                #expect(r.out.contains(piece), "fault add --help lacks \(piece)")
            }
            #expect(try run(mdevsimBinary, ["fault", "clear", h.root]).status == 0)
            #expect(try run(mdevsimBinary, ["fault", "list", h.root]).out == "")
        }
        let dir = makeTempDirectory("daemon")
        let plan = dir + ".yaml"
        try "rules:\n  - {name: no-v5-1, path: 'sys/**/i915-GVTg_V5_1/create', op: write, errno: ENOSPC}\n".write(toFile: plan, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: plan); try? FileManager.default.removeItem(atPath: dir) }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: mdevsimBinary)
        p.arguments = ["mount", dir, "--faults", plan]
        p.standardError = FileHandle.nullDevice
        try p.run()
        defer { kill(p.processIdentifier, SIGTERM); p.waitUntilExit() }
        for _ in 0..<500 where !FileManager.default.fileExists(atPath: dir + "/.mdevsim/faults") { usleep(10_000) }
        #expect(try readText(dir + "/.mdevsim/faults").hasPrefix("name=no-v5-1"))
        #expect(errnoOf { try writeText(dir + "/sys/class/mdev_bus/0000:00:02.0/mdev_supported_types/i915-GVTg_V5_1/create", uuidA) } == ENOSPC)
    }
}

/// Migration faults: arcs, the saving stream, resume.
@Suite("device migration faults", .requires(canMount && haveMdevsimBinary, "needs /dev/fuse, fusermount3 and the mdevsim binary"), .timeLimit(.minutes(2)))
struct DeviceFaultTests {
    let stepped = HostConfig.builtIn.withClock("stepped")
    func add(_ h: MountedHost, _ rule: String) throws { try writeText(h.root + "/.mdevsim/faults", rule) }
    func two(_ h: MountedHost) throws {
        for uuid in [uuidA, uuidB] { try writeText(h.typeDir("i915-GVTg_V5_8") + "/create", uuid) }
        try writeText(h.vfio(uuidA) + "/workload/dirty_rate_mbps", "1")
        try writeText(h.vfio(uuidA) + "/workload/step", "20")
    }

    @Test("an arc fails and leaves the previous state; migrate then leaves the source RUNNING with its state")
    func arcFails() throws {
        try withMountedHost(stepped) { h in
            try two(h)
            let digest = try readText(h.vfio(uuidA) + "/state_digest")
            // With every feature PRE_COPY reaches STOP_COPY through PRE_COPY_P2P.
            try add(h, "device=\(uuidA) arc=PRE_COPY_P2P>STOP_COPY errno=EIO once=true")
            let r = try run(mdevsimBinary, ["migrate", h.vfio(uuidA), h.vfio(uuidB), "--max-iterations", "1"])
            #expect(r.status == 1 && r.err.contains("failed at step 'source to STOP_COPY'"), "\(r)")
            #expect(try readText(h.vfio(uuidA) + "/migration/state") == "RUNNING\n")
            #expect(try readText(h.vfio(uuidA) + "/state_digest") == digest)
            #expect(try readText(h.vfio(uuidB) + "/migration/state") == "RUNNING\n")
            #expect(try readText(h.root + "/.mdevsim/log").contains("arc PRE_COPY_P2P->STOP_COPY -> failArc"))
            // The rule fired once: the same migration now succeeds.
            #expect(try run(mdevsimBinary, ["migrate", h.vfio(uuidA), h.vfio(uuidB)]).status == 0)
        }
    }

    @Test("an arc drops the device into ERROR; only reset recovers it; other devices are unaffected")
    func arcToError() throws {
        try withMountedHost(stepped) { h in
            try two(h)
            try add(h, "device=\(uuidA) arc=*>STOP_COPY to_error=true")
            #expect(errnoOf { try writeText(h.vfio(uuidA) + "/migration/state", "STOP_COPY") } == EIO)
            #expect(try readText(h.vfio(uuidA) + "/migration/state") == "ERROR\n")
            #expect(errnoOf { try writeText(h.vfio(uuidA) + "/migration/state", "RUNNING") } == EINVAL)
            try writeText(h.vfio(uuidB) + "/migration/state", "STOP_COPY")       // B is not named by the rule
            #expect(try readText(h.vfio(uuidB) + "/migration/state") == "STOP_COPY\n")
            try writeText(h.vfio(uuidA) + "/reset", "1")
            #expect(try readText(h.vfio(uuidA) + "/migration/state") == "RUNNING\n")
        }
    }

    @Test("a flipped bit in the saving stream is caught by verify and refused by the destination")
    func flippedBit() throws {
        try withMountedHost(stepped) { h in
            try two(h)
            try add(h, "device=\(uuidA) stream=flip_bit at=5000")
            let blob = makeTempDirectory("blob") + "/a.blob"
            #expect(try run(mdevsimBinary, ["record", h.vfio(uuidA), "-o", blob, "--resume-source"]).status == 0)
            let v = try run(mdevsimBinary, ["verify", blob])
            #expect(v.status == 1 && v.err.contains("checksum mismatch"), "\(v)")
            let r = try run(mdevsimBinary, ["replay", blob, h.vfio(uuidB)])
            #expect(r.status == 1 && r.err.contains("checksum mismatch"), "\(r)")
        }
    }

    @Test("a truncated stream fails the resume; the destination keeps its state")
    func truncated() throws {
        try withMountedHost(stepped) { h in
            try two(h)
            try add(h, "device=\(uuidA) stream=truncate at=3000")
            let r = try run(mdevsimBinary, ["migrate", h.vfio(uuidA), h.vfio(uuidB), "--max-iterations", "1"])
            #expect(r.status == 1, "\(r)")
            #expect(try readText(h.vfio(uuidA) + "/migration/state") == "RUNNING\n")
        }
    }

    @Test("resume rejects a sound stream, or accepts it and holds a wrong register, which migrate's digest check catches")
    func resumeFaults() throws {
        try withMountedHost(stepped) { h in
            try two(h)
            try add(h, "device=\(uuidB) resume=reject once=true")
            var r = try run(mdevsimBinary, ["migrate", h.vfio(uuidA), h.vfio(uuidB)])
            #expect(r.status == 1 && r.err.contains("resume refused a sound stream"), "\(r)")
            #expect(try readText(h.vfio(uuidA) + "/migration/state") == "RUNNING\n")
            try add(h, "device=\(uuidB) resume=corrupt once=true")
            r = try run(mdevsimBinary, ["migrate", h.vfio(uuidA), h.vfio(uuidB)])
            #expect(r.status == 1 && r.err.contains("state_digest differs"), "\(r)")
            #expect(try readText(h.vfio(uuidA) + "/migration/state") == "RUNNING\n")
        }
    }
}

@Suite("surprise removal", .requires(canMount, "needs /dev/fuse and fusermount3"), .timeLimit(.minutes(1)))
struct SurpriseRemovalTests {
    @Test("a vGPU in use disappears: its open files get ENODEV, other devices are unaffected")
    func device() throws {
        try withMountedHost { h in
            for uuid in [uuidA, uuidB] { try writeText(h.typeDir("i915-GVTg_V5_8") + "/create", uuid) }
            let bar0 = try openFile(h.vfio(uuidA) + "/regions/bar0")
            defer { close(bar0) }
            try writeText(h.vfio(uuidA) + "/migration/state", "STOP_COPY")
            let data = try openFile(h.vfio(uuidA) + "/migration/data", O_RDONLY)
            defer { close(data) }
            try writeText(h.root + "/.mdevsim/surprise_remove", "device \(uuidA)")
            var byte: UInt8 = 0
            #expect(read(data, &byte, 1) == -1 && errno == ENODEV)
            #expect(errnoOf { _ = try preadValue(bar0, 0x2030, 4) } == ENODEV)
            #expect(!exists(h.device(uuidA)) && !exists(h.vfio(uuidA)))
            #expect(try readText(h.vfio(uuidB) + "/migration/state") == "RUNNING\n")
            #expect(try h.available("i915-GVTg_V5_8") == 6)
            #expect(errnoOf { try writeText(h.root + "/.mdevsim/surprise_remove", "device \(uuidA)") } == ENODEV)
        }
    }

    @Test("a whole parent disappears: its devices and types go, create through an old handle is ENODEV")
    func parent() throws {
        try withMountedHost(twoParentConfig) { h in
            try writeText(h.typeDir("i915-GVTg_V5_8") + "/create", uuidA)
            try writeText(h.typeDir("i915-GVTg_V5_8", parent: "0000:00:03.0") + "/create", uuidB)
            let create = try openFile(h.typeDir("i915-GVTg_V5_4") + "/create", O_WRONLY)
            defer { close(create) }
            try writeText(h.root + "/.mdevsim/surprise_remove", "parent 0000:00:02.0")
            #expect(try listDir(h.root + "/sys/class/mdev_bus") == ["0000:00:03.0"])
            #expect(!exists(h.parent + "/mdev_supported_types"))
            #expect(exists(h.parent + "/vendor"))          // the PCI device itself stays
            #expect(!exists(h.device(uuidA)))
            #expect(exists(h.device(uuidB)))
            #expect(Array(uuidC.utf8).withUnsafeBytes { write(create, $0.baseAddress, 36) } == -1 && errno == ENODEV)
            #expect(try readText(h.root + "/.mdevsim/log").contains("surprise removal of parent 0000:00:02.0"))
        }
    }
}

@Suite("fault kinds that slow or stall a migration, and the soak", .requires(canMount && haveMdevsimBinary, "needs /dev/fuse, fusermount3 and the mdevsim binary"), .timeLimit(.minutes(3)))
struct MigrationStressTests {
    @Test("a stalled stream (ENOMSG longer than usual) only delays the migration")
    func stall() throws {
        try withMountedHost(HostConfig.builtIn.withClock("stepped")) { h in
            for uuid in [uuidA, uuidB] { try writeText(h.typeDir("i915-GVTg_V5_8") + "/create", uuid) }
            try writeText(h.vfio(uuidA) + "/workload/step", "10")
            // The first read of pre-copy finds nothing "for now"; the migration goes on.
            try writeText(h.root + "/.mdevsim/faults", "name=stall path=vfio/\(uuidA)/migration/data op=read errno=ENOMSG once=true")
            let r = try run(mdevsimBinary, ["migrate", h.vfio(uuidA), h.vfio(uuidB), "--max-iterations", "4"])
            #expect(r.status == 0, "\(r)")
            #expect(try readText(h.root + "/.mdevsim/faults").contains("name=stall") )
            #expect(try readText(h.root + "/.mdevsim/log").contains("rule=stall op=read"))
        }
    }

    @Test("a dirty-rate spike on entering pre-copy keeps it from converging")
    func spike() throws {
        try withMountedHost { h in
            for uuid in [uuidA, uuidB] { try writeText(h.typeDir("i915-GVTg_V5_8") + "/create", uuid) }
            try writeText(h.vfio(uuidA) + "/workload/working_set_mib", "1")
            try writeText(h.vfio(uuidA) + "/workload/dirty_rate_mbps", "0")
            try writeText(h.root + "/.mdevsim/faults", "device=\(uuidA) spike_mbps=300")
            let r = try run(mdevsimBinary, ["migrate", h.vfio(uuidA), h.vfio(uuidB), "--max-downtime", "1", "--bandwidth", "1", "--max-iterations", "3", "--json"])
            #expect(r.status == 0, "\(r)")
            let report = try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as! [String: Any]
            #expect(report["converged"] as? Bool == false)
            #expect(try readText(h.vfio(uuidB) + "/workload/dirty_rate_mbps") == "300.0\n")   // the guest's rate travelled with it
        }
    }

    @Test("soak: repeated migrations under a seeded random fault plan; every failure is an injected one and the contract holds")
    func soak() throws {
        try withMountedHost(HostConfig.builtIn.withClock("stepped")) { h in
            for uuid in [uuidA, uuidB, uuidC] { try writeText(h.typeDir("i915-GVTg_V5_8") + "/create", uuid) }
            for uuid in [uuidA, uuidC] {
                try writeText(h.vfio(uuid) + "/workload/dirty_rate_mbps", "1")
                try writeText(h.vfio(uuid) + "/workload/step", "15")
            }
            let bystander = try readText(h.vfio(uuidC) + "/state_digest")
            var rng: UInt64 = 20261127
            func next(_ n: Int) -> Int {
                rng = rng &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                return Int((rng >> 33) % UInt64(n))
            }
            var (src, dst) = (uuidA, uuidB)
            var attempted = 0, succeeded = 0, failedAsInjected = 0
            var violations: [String] = []
            for round in 0..<20 {
                let menu: [(String, Bool)] = [   // (rule, whether it may reset the source)
                    ("", false),
                    ("device=\(src) arc=*>PRE_COPY errno=EIO once=true", false),
                    ("device=\(src) arc=PRE_COPY_P2P>STOP_COPY errno=EBUSY once=true", false),
                    ("device=\(src) arc=*>STOP_COPY to_error=true once=true", true),
                    ("device=\(dst) arc=RESUMING>STOP errno=EIO once=true", false),
                    ("device=\(src) stream=flip_bit at=\(100 + next(20000)) once=true", false),
                    ("device=\(src) stream=truncate at=\(50 + next(20000)) once=true", false),
                    ("device=\(dst) resume=reject once=true", false),
                    ("device=\(dst) resume=corrupt once=true", false),
                    ("path=vfio/\(src)/migration/data op=read errno=EIO once=true", false),
                ]
                let (rule, resetsSource) = menu[next(menu.count)]
                try writeText(h.root + "/.mdevsim/faults", "clear")
                if !rule.isEmpty { try writeText(h.root + "/.mdevsim/faults", rule) }
                let before = try readText(h.vfio(src) + "/state_digest")
                let logBefore = try readText(h.root + "/.mdevsim/log")
                attempted += 1
                let r = try run(mdevsimBinary, ["migrate", h.vfio(src), h.vfio(dst), "--max-iterations", "2"])
                let fired = try readText(h.root + "/.mdevsim/log") != logBefore
                if r.status == 0 {
                    succeeded += 1
                    if try readText(h.vfio(dst) + "/migration/state") != "RUNNING\n" { violations.append("round \(round): destination not RUNNING after success") }
                    (src, dst) = (dst, src)
                } else {
                    if fired { failedAsInjected += 1 } else { violations.append("round \(round): failed with no injected fault: \(r.err)") }
                    if try readText(h.vfio(src) + "/migration/state") != "RUNNING\n" { violations.append("round \(round): source not RUNNING after failure") }
                    if !resetsSource, try readText(h.vfio(src) + "/state_digest") != before { violations.append("round \(round): source state changed by a failed migration (\(rule))") }
                    if try readText(h.vfio(dst) + "/migration/state") != "RUNNING\n" { violations.append("round \(round): destination not reset") }
                }
                if try readText(h.vfio(uuidC) + "/state_digest") != bystander { violations.append("round \(round): a bystander device changed") }
                if try h.available("i915-GVTg_V5_8") != 4 { violations.append("round \(round): the pool changed (half-created device?)") }
            }
            print("soak: \(attempted) migrations attempted, \(succeeded) succeeded, \(failedAsInjected) failed as injected, \(violations.count) contract violations")
            #expect(violations.isEmpty, "\(violations)")
            #expect(failedAsInjected > 0 && succeeded > 0)
        }
    }
}

@Suite("fault rules refuse what they cannot mean, naming the field")
struct FaultRuleGrammarTests {
    @Test("bad rules", arguments: [
        ("path=sys/* errno=EIO once=yes", "once is true or false, not 'yes'"),
        ("path=sys/* errno=EIO once=1", "once is true or false, not '1'"),
        ("device=* arc=*>STOP errno=EIO to_error=true", "give errno= (the arc fails) or to_error=true (the device drops into ERROR), not both"),
        ("path=sys/[ab errno=EIO", "opens a [ that it does not close"),
        ("path=/sys/* errno=EIO", "is absolute"),
        ("path=sys/a**b errno=EIO", "mixes ** with other characters"),
        ("path=sys/* errno=EIO errno=ENOSPC", "errno= is given twice"),
        ("path=sys/* errno=EIO at=3", "at= are for device rules"),
        ("device=* arc=*>STOP path=sys/*", "path= and op= are for file rules"),
        ("device=* stream=flip_bit", "stream faults need at=BYTE"),
        ("path=sys/* errno=EIO seed=3", "seed= goes with probability="),
        ("path=sys/* errno=EIO colour=red", "unknown key 'colour'"),
    ])
    func refused(rule: String, message: String) {
        do {
            _ = try FaultRule.parse(rule)
            Issue.record("accepted: \(rule)")
        } catch {
            #expect("\(error)".contains(message), "\(error)")
        }
    }

    @Test("a rule may go on over lines, as the --help examples do")
    func multiline() throws {
        let rule = try FaultRule.parse("name=slow path=vfio/*/migration/data\n      op=read delay_ms=200 every=3")
        #expect(rule.summary == "name=slow path=vfio/*/migration/data op=read delay_ms=200 every=3")
    }

    @Test("every errno name the system has is accepted, by its own value")
    func errnos() throws {
        for (name, value) in [("ETIMEDOUT", ETIMEDOUT), ("ECONNRESET", ECONNRESET), ("EHWPOISON", EHWPOISON), ("ENOTSUP", EOPNOTSUPP),
                              ("EROFS", EROFS), ("eagain", EAGAIN)] {
            let rule = try FaultRule.parse("path=sys/* errno=\(name)")
            #expect(try rule.validated() == .fail(value), "\(name)")
        }
        #expect(FSError.errnoNames.count >= 130)
    }

    @Test("two rules of one name are refused, in a plan and at a running injector")
    func duplicateNames() throws {
        #expect(throws: FaultError.self) {
            try FaultPlan.parse("rules:\n  - {name: a, path: 'sys/*', errno: EIO}\n  - {name: a, path: 'vfio/*', errno: EIO}\n")
        }
        do {
            _ = try FaultPlan.parse("rules:\n  - {path: 'sys/*', errno: EIO, once: yes}\n")
            Issue.record("once: yes accepted")
        } catch {
            #expect("\(error)".contains("rules[0].once: expected true or false, got 'yes'"), "\(error)")
        }
        let injector = FaultInjector()
        try injector.add(try FaultRule.parse("name=a path=sys/* errno=EIO"))
        #expect(throws: FaultError.self) { try injector.add(try FaultRule.parse("name=a path=vfio/* errno=EIO")) }
    }
}
