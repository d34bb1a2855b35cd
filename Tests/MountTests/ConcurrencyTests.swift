import Foundation
import MdevCore
import Testing

@Suite("concurrent clients on one mount", .requires(canMount, "needs /dev/fuse and fusermount3"), .timeLimit(.minutes(1)))
struct ConcurrencyTests {
    @Test("many threads create the same UUID: exactly one wins, the rest get EEXIST")
    func sameUUID() throws {
        try withMountedHost { h in
            let results = Results()
            DispatchQueue.concurrentPerform(iterations: 16) { i in
                let type = ["i915-GVTg_V5_8", "i915-GVTg_V5_4"][i % 2]
                results.add(errnoOf { try writeText(h.typeDir(type) + "/create", uuidA) })
            }
            #expect(results.all.filter { $0 == 0 }.count == 1)
            #expect(results.all.filter { $0 == EEXIST }.count == 15)
            let listed = try listDir(h.root + "/sys/bus/mdev/devices")
            #expect(listed == [uuidA])
        }
    }

    @Test("creating and removing on two parents at once while readers list the tree leaves a consistent pool")
    func createRemoveWhileListing() throws {
        try withMountedHost(twoParentConfig) { h in
            let failures = Results()
            DispatchQueue.concurrentPerform(iterations: 6) { worker in
                for round in 0..<15 {
                    if worker < 4 {
                        let parent = worker % 2 == 0 ? "0000:00:02.0" : "0000:00:03.0"
                        let uuid = String(format: "%08x-0000-4000-8000-%012x", worker, round)
                        let code = errnoOf { try writeText(h.typeDir("i915-GVTg_V5_8", parent: parent) + "/create", uuid) }
                        if code == 0 {
                            failures.add(errnoOf { try writeText(h.device(uuid) + "/remove", "1") })
                        } else if code != ENOSPC {
                            failures.add(code)
                        }
                    } else {
                        // Readers: every listed device resolves or vanished since (ENOENT), never anything else.
                        for name in (try? listDir(h.root + "/sys/bus/mdev/devices")) ?? [] {
                            let code = errnoOf { _ = try readText(h.device(name) + "/intel_vgpu/vgpu_id") }
                            if code != 0 && code != ENOENT && code != ENODEV { failures.add(code) }
                        }
                    }
                }
            }
            #expect(failures.all.allSatisfy { $0 == 0 }, "\(failures.all)")
            let listed = try listDir(h.root + "/sys/bus/mdev/devices")
            let first = try h.available("i915-GVTg_V5_8"), second = try h.available("i915-GVTg_V5_8", parent: "0000:00:03.0")
            #expect(listed.isEmpty)
            #expect(first == 7 && second == 7)
        }
    }

    @Test("two clients write state on one device: every write is one whole transition")
    func twoStateWriters() throws {
        try withMountedHost { h in
            try writeText(h.typeDir("i915-GVTg_V5_8") + "/create", uuidA)
            let state = h.vfio(uuidA) + "/migration/state"
            let unexpected = Results()
            DispatchQueue.concurrentPerform(iterations: 2) { i in
                for _ in 0..<40 {
                    let code = errnoOf { try writeText(state, i == 0 ? "STOP" : "RUNNING") }
                    if code != 0 { unexpected.add(code) }
                }
            }
            #expect(unexpected.all.isEmpty)
            let final = try readText(state)
            #expect(["STOP\n", "RUNNING\n"].contains(final))
        }
    }
}

final class Results: @unchecked Sendable {
    private let lock = NSLock()
    private var values: [Int32] = []
    func add(_ v: Int32) { lock.lock(); values.append(v); lock.unlock() }
    var all: [Int32] { lock.lock(); defer { lock.unlock() }; return values }
}
