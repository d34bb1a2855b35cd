import Dispatch
import Foundation
import MdevCore
import Migration
import Simulator
import Synchronization
import Testing
import VirtualFS

/// Many threads on one simulated host through the same VirtualFS calls the
/// FUSE bridge makes, without FUSE. (Under the thread sanitizer these report
/// races between critical sections of one Synchronization.Mutex, whose futex
/// TSan cannot see, so TSan is not part of CI; see the notes of issue 9.)
@Suite("one host, many threads (the FUSE bridge's calls, no FUSE)")
struct ConcurrentHostTests {
    /// The errno of an open+write+close of `text` (0 for success).
    func write(_ tree: Tree, _ path: String, _ text: String) -> Int32 {
        do throws(FSError) { try tree.writeFile(path, Array(text.utf8)); return 0 } catch { return error.errno }
    }

    func read(_ tree: Tree, _ path: String) -> String? {
        (try? tree.readFile(path)).map { String(decoding: $0, as: UTF8.self) }
    }

    @Test("creates, removes, listings and attribute reads from 8 threads keep the bus, the tree and the pool consistent")
    func createRemoveList() throws {
        let host = try SimulatedHost(config: .builtIn)
        let tree = host.tree
        // Tree.resolve follows no links, so the real paths (sys/class entries are links).
        let parent = "sys/devices/pci0000:00/0000:00:02.0/"
        let types = parent + "mdev_supported_types/"
        let errors = Mutex<[String]>([])
        let created = Mutex(0)
        DispatchQueue.concurrentPerform(iterations: 8) { worker in
            for i in 0..<150 {
                if worker < 5 {
                    let uuid = String(format: "%08x-0000-4000-8000-%012x", worker, i % 6)
                    let type = ["i915-GVTg_V5_8", "i915-GVTg_V5_4"][i % 2]
                    let rc = write(tree, types + type + "/create", uuid)
                    if rc == 0 { created.withLock { $0 += 1 } }
                    if rc != 0 && rc != EEXIST && rc != EDQUOT && rc != ENOSPC {
                        errors.withLock { $0.append("create \(uuid): errno \(rc)") }
                    }
                    if i % 3 == 0 { _ = write(tree, parent + "\(uuid)/remove", "1") }
                } else {
                    if let dir = try? tree.resolve("sys/bus/mdev/devices") { _ = try? tree.entries(of: dir.ino) }
                    if let text = read(tree, types + "i915-GVTg_V5_4/available_instances"), Int(text.trimmingCharacters(in: .whitespacesAndNewlines)).map({ $0 < 0 }) ?? true {
                        errors.withLock { $0.append("available_instances reads '\(text)'") }
                    }
                }
            }
        }
        #expect(created.withLock { $0 } >= 5, "the workers hardly created anything: the test exercises nothing")
        let found = errors.withLock { $0 }
        #expect(found.count == 0, "\(found.prefix(5))")
        let listed = try tree.entries(of: tree.resolve("sys/bus/mdev/devices").ino).filter { $0.name != "." && $0.name != ".." }
        #expect(listed.count == host.bus.devices.count)
        for device in host.bus.devices {
            #expect(host.vfio.device(device.uuid) != nil, "\(device.uuid) has no vfio device")
        }
    }

    @Test("two threads drive one device's state while two read its data and one resets it: every state stays a valid one")
    func stateAndDataRaces() throws {
        let host = try SimulatedHost(config: .builtIn)
        let uuid = "83b8f4f2-509f-382f-3c1e-e6bfe0fa1001"
        #expect(write(host.tree, "sys/devices/pci0000:00/0000:00:02.0/mdev_supported_types/i915-GVTg_V5_8/create", uuid) == 0)
        let mig = try #require(host.vfio.migration(uuid))
        let states: [MigrationState] = [.running, .preCopy, .stopCopy, .stop, .resuming, .runningP2P, .preCopyP2P]
        DispatchQueue.concurrentPerform(iterations: 5) { worker in
            for i in 0..<300 {
                switch worker {
                case 0, 1: _ = try? mig.setState(states[(i * 7 + worker * 3) % states.count])
                case 2, 3: _ = try? mig.read(session: mig.currentSession, offset: 0, size: 4096)
                default: if i % 50 == 0 { mig.reset() } else { _ = try? mig.precopyInfo(); _ = mig.stopCopySize }
                }
            }
        }
        #expect(MigrationState.allCases.contains(mig.state))
        mig.reset()
        #expect(mig.state == .running)
        #expect(read(host.tree, "vfio/\(uuid)/migration/state") == "RUNNING\n")
    }
}
