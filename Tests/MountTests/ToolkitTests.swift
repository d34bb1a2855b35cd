import Foundation
import FuseBridge
import MdevCore
import Simulator
import StateStream
import Testing

/// The stream toolkit as users run it: the real `mdevsim` binary against a real mount.
@Suite("stream toolkit commands against a real mount", .requires(canMount && haveMdevsimBinary, "needs /dev/fuse, fusermount3 and the mdevsim binary"), .timeLimit(.minutes(2)))
struct ToolkitTests {
    let stepped = HostConfig.builtIn.withClock("stepped")
    let testdata = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../testdata").standardized.path

    func mdevsim(_ args: String..., input: String? = nil) throws -> Ran { try run(mdevsimBinary, args, input: input) }

    /// A V5_8 on the stepped clock with seed 1, stepped `steps` ticks at 1 MB/s.
    func prepare(_ h: MountedHost, _ uuid: String, steps: Int, type: String = "i915-GVTg_V5_8") throws {
        try writeText(h.typeDir(type) + "/create", uuid)
        try writeText(h.vfio(uuid) + "/workload/seed", "1")
        try writeText(h.vfio(uuid) + "/workload/dirty_rate_mbps", "1")
        try writeText(h.vfio(uuid) + "/workload/step", String(steps))
    }

    func tempFile(_ name: String) -> String { makeTempDirectory("blob") + "/" + name }

    @Test("record, verify, replay: the replayed device has the recorded state")
    func recordVerifyReplay() throws {
        try withMountedHost(stepped) { h in
            try prepare(h, uuidA, steps: 40)
            try writeText(h.typeDir("i915-GVTg_V5_8") + "/create", uuidB)
            let blob = tempFile("a.blob")
            var r = try mdevsim("record", h.vfio(uuidA), "-o", blob)
            #expect(r.status == 0, "\(r)")
            #expect(r.out.hasPrefix("recorded "))
            #expect(try readText(h.vfio(uuidA) + "/migration/state") == "STOP\n")
            r = try mdevsim("verify", blob)
            #expect(r.status == 0 && r.out.contains("sound"), "\(r)")
            r = try mdevsim("replay", blob, h.device(uuidB), "--chunk", "777")
            #expect(r.status == 0, "\(r)")
            #expect(r.out == (try readText(h.vfio(uuidA) + "/state_digest")))
            #expect(try readText(h.vfio(uuidB) + "/migration/state") == "STOP\n")
            // --resume-source leaves the source running; recording again gives the same bytes.
            r = try mdevsim("record", h.vfio(uuidA), "-o", blob + "2", "--resume-source")
            #expect(r.status == 0, "\(r)")
            #expect(try readText(h.vfio(uuidA) + "/migration/state") == "RUNNING\n")
            #expect(try readBytes(blob) == (try readBytes(blob + "2")))
        }
    }

    @Test("inspect and diff match their golden outputs; inspect reads stdin and gives JSON")
    func goldenOutputs() throws {
        try withMountedHost(stepped) { h in
            try prepare(h, uuidA, steps: 30)
            let a = tempFile("a.blob"), b = tempFile("b.blob")
            #expect(try mdevsim("record", h.vfio(uuidA), "-o", a, "--resume-source").status == 0)
            try writeText(h.vfio(uuidA) + "/workload/step", "30")
            #expect(try mdevsim("record", h.vfio(uuidA), "-o", b).status == 0)
            let inspect = try run("/bin/sh", ["-c", "\"$0\" inspect - < \"$1\"", mdevsimBinary, a])
            #expect(inspect.status == 0)
            let diffOut = try mdevsim("diff", a, b).out.split(separator: "\n", omittingEmptySubsequences: false).dropFirst(2).joined(separator: "\n")
            // MDEVSIM_UPDATE_GOLDEN=1 rewrites the files after a deliberate change of the device or the output (review the diff).
            if ProcessInfo.processInfo.environment["MDEVSIM_UPDATE_GOLDEN"] == "1" {
                try inspect.out.write(toFile: testdata + "/golden/inspect-v5_8-30-ticks.txt", atomically: true, encoding: .utf8)
                try diffOut.write(toFile: testdata + "/golden/diff-30-60-ticks.txt", atomically: true, encoding: .utf8)
            }
            #expect(inspect.out == (try String(contentsOfFile: testdata + "/golden/inspect-v5_8-30-ticks.txt", encoding: .utf8)), "\(inspect.out)")
            let diff = try mdevsim("diff", a, b)
            #expect(diff.status == 1)
            let body = diff.out.split(separator: "\n", omittingEmptySubsequences: false).dropFirst(2).joined(separator: "\n")
            #expect(body == (try String(contentsOfFile: testdata + "/golden/diff-30-60-ticks.txt", encoding: .utf8)), "\(body)")
            #expect(try mdevsim("diff", a, a).status == 0)
            let json = try mdevsim("inspect", a, "--json")
            let parsed = try JSONSerialization.jsonObject(with: Data(json.out.utf8)) as! [String: Any]
            #expect(parsed["complete"] as? Bool == true)
            #expect((parsed["parameters"] as? [String: String])?["type"] == "i915-GVTg_V5_8")
            #expect((parsed["registers"] as? [String: Any])?["RING_CTL"] as? Int == 0x7001)
        }
    }

    @Test("verify reports the first fault with its byte offset, and exits 1")
    func verifyFaults() throws {
        try withMountedHost(stepped) { h in
            try prepare(h, uuidA, steps: 10)
            let blob = tempFile("a.blob")
            #expect(try mdevsim("record", h.vfio(uuidA), "-o", blob).status == 0)
            var bytes = try readBytes(blob)
            bytes[bytes.count / 2] ^= 1
            try Data(bytes).write(to: URL(fileURLWithPath: blob + ".bad"))
            var r = try mdevsim("verify", blob + ".bad")
            #expect(r.status == 1)
            #expect(r.err.contains("checksum mismatch") && r.err.contains("at byte "), "\(r)")
            try Data(bytes.prefix(bytes.count - 5)).write(to: URL(fileURLWithPath: blob + ".short"))
            r = try mdevsim("verify", blob + ".short", "--json")
            #expect(r.status == 1)
            #expect(r.out.contains("\"sound\" : false"), "\(r)")
            r = try mdevsim("verify", "/nonexistent.blob")
            #expect(r.status == 2 && r.err.contains("cannot open /nonexistent.blob"), "\(r)")
        }
    }

    @Test("sound checksums over impossible contents: verify and inspect say why and exit 1, replay refuses, the daemon lives on")
    func impossibleContents() throws {
        try withMountedHost(stepped) { h in
            try prepare(h, uuidA, steps: 10)
            try writeText(h.typeDir("i915-GVTg_V5_8") + "/create", uuidB)
            try writeText(h.vfio(uuidB) + "/workload/clock", "stepped")
            let blob = tempFile("a.blob")
            #expect(try mdevsim("record", h.vfio(uuidA), "-o", blob).status == 0)
            var records = try StreamRecords(parsing: try readBytes(blob))
            let w = try #require(records.first(.workload))
            records.records[w].payload[24] = 2                      // front_buffer = 2
            try Data(records.sealed()).write(to: URL(fileURLWithPath: blob + ".front"))
            var r = try mdevsim("verify", blob + ".front")
            #expect(r.status == 1 && r.err.contains("front_buffer is 2"), "\(r)")
            r = try mdevsim("inspect", blob + ".front")
            #expect(r.status == 1 && r.out.contains("fault at byte") && r.out.contains("front_buffer is 2"), "\(r)")
            r = try mdevsim("replay", blob + ".front", h.device(uuidB))
            #expect(r.status == 1 && r.err.contains("front_buffer is 2"), "\(r)")
            // The destination was not loaded, and stepping it is fine.
            try writeText(h.vfio(uuidB) + "/reset", "1")
            try writeText(h.vfio(uuidB) + "/workload/step", "3")
            #expect(try readText(h.vfio(uuidB) + "/workload/ticks") == "3\n")

            // 95 bytes: a header and a 2-byte config record (verify and inspect died on it).
            var short = StreamRecords(header: records.header, records: [.init(rawType: RecordType.config.rawValue, payload: [0x86, 0x80])])
            short.records.append(.init(rawType: RecordType.end.rawValue, payload: []))
            try Data(short.sealed()).write(to: URL(fileURLWithPath: blob + ".short"))
            r = try mdevsim("verify", blob + ".short")
            #expect(r.status == 1 && r.err.contains("config space is 2 bytes"), "\(r)")
            r = try mdevsim("inspect", blob + ".short")
            #expect(r.status == 1 && r.out.contains("2 bytes (too short for PCI ids)"), "\(r)")
            r = try mdevsim("inspect", "/etc/hostname")
            #expect(r.status == 1 && r.out.contains("bad magic"), "\(r)")
        }
    }

    @Test("record and migrate report progress by bytes while they move data")
    func byteProgress() throws {
        try withMountedHost(stepped) { h in
            try prepare(h, uuidA, steps: 1, type: "i915-GVTg_V5_4")
            try writeText(h.typeDir("i915-GVTg_V5_4") + "/create", uuidB)
            try writeText(h.vfio(uuidA) + "/workload/working_set_mib", "16")
            try writeText(h.vfio(uuidA) + "/workload/fill", "1")
            let blob = tempFile("a.blob")
            var r = try run("/usr/bin/env", ["MDEVSIM_PROGRESS_INTERVAL=0", mdevsimBinary, "record", h.vfio(uuidA), "-o", blob, "--live", "--verbose", "--resume-source"])
            #expect(r.status == 0, "\(r)")
            #expect(r.err.contains("pre-copy iteration 1: ") && r.err.contains("MB so far"), "\(r)")
            #expect(r.err.contains("stop-and-copy: ") && r.err.contains("MB/s"), "\(r)")
            r = try run("/usr/bin/env", ["MDEVSIM_PROGRESS_INTERVAL=0", mdevsimBinary, "migrate", h.vfio(uuidA), h.vfio(uuidB), "--verbose"])
            #expect(r.status == 0, "\(r)")
            #expect(r.err.contains("MB so far"), "\(r)")
        }
    }

    @Test("replay of an incompatible blob is refused with the reason and the device ends RUNNING")
    func replayRefused() throws {
        try withMountedHost(stepped) { h in
            try prepare(h, uuidA, steps: 10)
            try writeText(h.typeDir("i915-GVTg_V5_4") + "/create", uuidB)
            let blob = tempFile("a.blob")
            #expect(try mdevsim("record", h.vfio(uuidA), "-o", blob).status == 0)
            let r = try mdevsim("replay", blob, h.vfio(uuidB))
            #expect(r.status == 1)
            #expect(r.err.contains("type=i915-GVTg_V5_8 is not supported by the destination"), "\(r)")
            #expect(try readText(h.vfio(uuidB) + "/migration/state") == "RUNNING\n")
        }
    }

    @Test("compat explains rule by rule for devices, types and blobs, and ranks candidates")
    func compat() throws {
        try withMountedHost(stepped) { h in
            try prepare(h, uuidA, steps: 5)
            try writeText(h.typeDir("i915-GVTg_V5_8") + "/create", uuidB)
            try writeText(h.typeDir("i915-GVTg_V5_4") + "/create", uuidC)
            var r = try mdevsim("compat", h.vfio(uuidA), h.vfio(uuidB))
            #expect(r.status == 0 && r.out.contains(": compatible") && r.out.contains("[ok] migration_version write"), "\(r)")
            r = try mdevsim("compat", h.vfio(uuidA), h.typeDir("i915-GVTg_V5_4"))
            #expect(r.status == 1)
            #expect(r.out.contains("[FAIL] parameter type") && r.out.contains("type=i915-GVTg_V5_8 vs type=i915-GVTg_V5_4"), "\(r)")
            let blob = tempFile("a.blob")
            #expect(try mdevsim("record", h.vfio(uuidA), "-o", blob, "--resume-source").status == 0)
            r = try mdevsim("compat", blob, "--candidates", h.vfio(uuidC), h.vfio(uuidB), "--json")
            #expect(r.status == 0)
            let verdicts = try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as! [[String: Any]]
            #expect(verdicts.map { $0["destination"] as? String } == [h.vfio(uuidB), h.vfio(uuidC)])
            #expect(verdicts.map { $0["compatible"] as? Bool } == [true, false])
        }
    }

    @Test("compat explains an aggregated V5_4 with the resources of a V5_2")
    func aggregationExplained() throws {
        try withMountedHost(twoParentConfig) { h in
            try writeText(h.typeDir("i915-GVTg_V5_4") + "/create", uuidA)
            try writeText(h.device(uuidA) + "/mdev/aggregated_instances", "2")
            try writeText(h.typeDir("i915-GVTg_V5_2") + "/create", uuidB)
            let r = try mdevsim("compat", h.vfio(uuidA), h.vfio(uuidB))
            #expect(r.status == 1)
            #expect(r.out.contains("same graphics memory: i915-GVTg_V5_4 ×2 equals i915-GVTg_V5_2 ×1 (fences 8 vs 4)"), "\(r)")
        }
    }

    @Test("migrate converges at a low dirty rate, hits the iteration limit at a high one, and verifies both digests")
    func migrateRates() throws {
        try withMountedHost { h in
            for uuid in [uuidA, uuidB] { try writeText(h.typeDir("i915-GVTg_V5_8") + "/create", uuid) }
            try writeText(h.vfio(uuidA) + "/workload/working_set_mib", "2")
            try writeText(h.vfio(uuidA) + "/workload/dirty_rate_mbps", "0.1")
            var r = try mdevsim("migrate", h.vfio(uuidA), h.vfio(uuidB), "--max-downtime", "100", "--bandwidth", "100", "--json")
            #expect(r.status == 0, "\(r)")
            var report = try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as! [String: Any]
            #expect(report["converged"] as? Bool == true)
            #expect(report["digests_equal"] as? Bool == true)
            #expect(try readText(h.vfio(uuidA) + "/migration/state") == "STOP\n")
            #expect(try readText(h.vfio(uuidB) + "/migration/state") == "RUNNING\n")

            // Back the other way with a guest that dirties far more than the link can carry.
            try writeText(h.vfio(uuidA) + "/reset", "1")
            try writeText(h.vfio(uuidB) + "/workload/dirty_rate_mbps", "400")
            r = try mdevsim("migrate", h.vfio(uuidB), h.vfio(uuidA), "--max-downtime", "1", "--bandwidth", "1", "--max-iterations", "3", "--json")
            #expect(r.status == 0, "\(r)")
            report = try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as! [String: Any]
            #expect(report["converged"] as? Bool == false)
            #expect((report["precopy_bytes_per_iteration"] as? [Int])?.count == 3)
            #expect(report["digests_equal"] as? Bool == true)
        }
    }

    @Test("a failure injected at each step of migrate leaves the source RUNNING with its state intact", arguments: [
        "compatibility check", "destination to RESUMING", "source to PRE_COPY", "pre-copy iteration 1",
        "source to STOP_COPY", "stop-and-copy", "destination loads the state (RESUMING to STOP)", "destination to RUNNING",
    ])
    func migrateFailures(step: String) throws {
        try withMountedHost(stepped) { h in
            try prepare(h, uuidA, steps: 20)
            try writeText(h.typeDir("i915-GVTg_V5_8") + "/create", uuidB)
            let digest = try readText(h.vfio(uuidA) + "/state_digest")
            let r = try mdevsim("migrate", h.vfio(uuidA), h.vfio(uuidB), "--fail-at", step)
            #expect(r.status == 1)
            #expect(r.err.contains("migration failed at step '\(step)'") && r.err.contains("the source is RUNNING"), "\(r)")
            #expect(try readText(h.vfio(uuidA) + "/migration/state") == "RUNNING\n")
            #expect(try readText(h.vfio(uuidA) + "/state_digest") == digest)
            #expect(try readText(h.vfio(uuidB) + "/migration/state") == "RUNNING\n")
        }
    }

    @Test("an incompatible migrate fails early at the compatibility check, naming the reason")
    func migrateIncompatible() throws {
        try withMountedHost(stepped) { h in
            try prepare(h, uuidA, steps: 5)
            try writeText(h.typeDir("i915-GVTg_V5_4") + "/create", uuidB)
            let r = try mdevsim("migrate", h.vfio(uuidA), h.vfio(uuidB))
            #expect(r.status == 1)
            #expect(r.err.contains("failed at step 'compatibility check'") && r.err.contains("type=i915-GVTg_V5_8 is not supported"), "\(r)")
            #expect(try readText(h.vfio(uuidA) + "/migration/state") == "RUNNING\n")
        }
    }

    @Test("bad arguments: not a device, exit 2 with what was expected")
    func badArguments() throws {
        let r = try mdevsim("record", "/tmp", "-o", "/dev/null")
        #expect(r.status == 2)
        #expect(r.err.contains("is not an mdevsim device"), "\(r)")
    }

    @Test("QEMU framing: record wraps the data in VFIO_MIG_FLAG tags; inspect, verify and replay take it")
    func qemuFraming() throws {
        try withMountedHost(stepped) { h in
            try prepare(h, uuidA, steps: 20)
            try writeText(h.typeDir("i915-GVTg_V5_8") + "/create", uuidB)
            let framed = tempFile("a.qemu"), raw = tempFile("a.blob")
            #expect(try mdevsim("record", h.vfio(uuidA), "-o", framed, "--qemu-framing", "--resume-source").status == 0)
            #expect(try mdevsim("record", h.vfio(uuidA), "-o", raw).status == 0)
            let bytes = try readBytes(framed)
            // DEV_SETUP_STATE, END_OF_STATE, then DEV_DATA_STATE with a big-endian size.
            #expect(Array(bytes[0..<8]) == [0xff, 0xff, 0xff, 0xff, 0xef, 0x10, 0x00, 0x03])
            #expect(Array(bytes[8..<16]) == [0xff, 0xff, 0xff, 0xff, 0xef, 0x10, 0x00, 0x01])
            #expect(Array(bytes[16..<24]) == [0xff, 0xff, 0xff, 0xff, 0xef, 0x10, 0x00, 0x04])
            #expect(Array(bytes.suffix(8)) == [0xff, 0xff, 0xff, 0xff, 0xef, 0x10, 0x00, 0x01])
            let inspect = try mdevsim("inspect", framed)
            #expect(inspect.status == 0 && inspect.out.hasPrefix("(QEMU VFIO framing"), "\(inspect)")
            #expect(try mdevsim("verify", framed).status == 0)
            #expect(try mdevsim("diff", framed, raw).status == 0)
            let r = try mdevsim("replay", framed, h.vfio(uuidB))
            let digest = try readText(h.vfio(uuidA) + "/state_digest")
            #expect(r.status == 0 && r.out == digest, "\(r)")
            var bad = bytes
            bad[16 + 7] = 0x09
            try Data(bad).write(to: URL(fileURLWithPath: framed + ".bad"))
            let refused = try mdevsim("verify", framed + ".bad")
            #expect(refused.status == 1 && refused.err.contains("Unknown tag 0xffffffffef100009"), "\(refused)")
        }
    }

    @Test("fsm draws the machine for a feature set and the kernel's path, as text, dot and svg")
    func fsm() throws {
        var r = try mdevsim("fsm", "--features", "stop_copy,p2p", "--from", "RUNNING", "--to", "STOP_COPY")
        #expect(r.status == 0)
        #expect(r.out.contains("path RUNNING -> STOP_COPY: RUNNING -> RUNNING_P2P -> STOP -> STOP_COPY"), "\(r)")
        #expect(!r.out.contains("PRE_COPY"))
        r = try mdevsim("fsm", "--from", "STOP_COPY", "--to", "PRE_COPY")
        #expect(r.out.contains("path STOP_COPY -> PRE_COPY: refused (EINVAL)"))
        r = try mdevsim("fsm", "--format", "dot", "--from", "PRE_COPY", "--to", "STOP_COPY")
        #expect(r.out.contains("PRE_COPY -> PRE_COPY_P2P [color=red, penwidth=2];") && r.out.contains("PRE_COPY_P2P -> STOP_COPY [color=red"))
        r = try mdevsim("fsm", "--format", "svg")
        #expect(r.out.hasPrefix("<svg") && r.out.contains(">PRE_COPY_P2P</text>"))
        #expect(try mdevsim("fsm", "--features", "p2p").status == 64)
    }

    @Test("migrate --plot draws bytes per iteration")
    func migratePlot() throws {
        try withMountedHost { h in
            for uuid in [uuidA, uuidB] { try writeText(h.typeDir("i915-GVTg_V5_8") + "/create", uuid) }
            let plot = tempFile("plot.svg")
            let r = try mdevsim("migrate", h.vfio(uuidA), h.vfio(uuidB), "--plot", plot)
            #expect(r.status == 0, "\(r)")
            let svg = try String(contentsOfFile: plot, encoding: .utf8)
            #expect(svg.hasPrefix("<svg") && svg.contains("bytes sent 1:"))
        }
    }

    @Test("a replay device saves the blob byte for byte and accepts only exactly that blob back")
    func replayDevice() throws {
        let blob: [UInt8] = try withMountedHost(stepped) { h in
            try prepare(h, uuidA, steps: 15)
            let path = tempFile("a.blob")
            #expect(try mdevsim("record", h.vfio(uuidA), "-o", path).status == 0)
            return try readBytes(path)
        }
        let host = try SimulatedHost(config: stepped)
        let device = try host.addReplayDevice(blob: blob, uuid: uuidC)
        #expect(device.type.id == "i915-GVTg_V5_8")
        try withMounted(host) { m in
            let vfio = m.root + "/vfio/" + uuidC
            let out = tempFile("again.blob")
            #expect(try mdevsim("record", vfio, "-o", out, "--resume-source").status == 0)
            #expect(try readBytes(out) == blob)
            #expect(try mdevsim("replay", out, vfio).status == 0)
            var changed = blob
            changed[changed.count - 30] ^= 0xff
            try Data(changed).write(to: URL(fileURLWithPath: out))
            let r = try mdevsim("replay", out, vfio)
            #expect(r.status == 1)
            #expect(r.err.contains("byte \(blob.count - 30) is 0x"), "\(r)")
        }
    }
}
