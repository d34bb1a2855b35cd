import GPUModel
import StateStream
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The resuming side: the data stream written in RESUMING, checked as it arrives.
extension MigrationDevice {
    /// Writes resuming data. The header is checked as soon as it is complete, so
    /// an incompatible stream fails at its first write; nothing touches the device
    /// until RESUMING → STOP.
    public func write(session: UInt64?, bytes: UnsafeRawBufferPointer) throws(MigrationError) -> Int {
        try core.withLock { (c: inout Core) throws(MigrationError) -> Int in
            try checkSession(&c, session, saving: false)
            var s = c.resuming!
            c.resuming = nil
            defer { c.resuming = s }
            if let failure = s.failure { throw fail(&c, EINVAL, "resume already refused: \(failure)") }
            if let blob = replayBlob {
                // A replay device proves a transport preserved the blob: every byte must match.
                for (i, byte) in bytes.enumerated() {
                    let at = s.received + i
                    guard at < blob.count else {
                        s.failure = "more bytes arrived than the recorded blob's \(blob.count)"
                        throw fail(&c, EINVAL, "resume refused: " + s.failure!)
                    }
                    guard blob[at] == byte else {
                        s.failure = "byte \(at) is 0x\(String(byte, radix: 16)), the recorded blob has 0x\(String(blob[at], radix: 16)) there"
                        throw fail(&c, EINVAL, "resume refused: " + s.failure!)
                    }
                }
                s.received += bytes.count
                return bytes.count
            }
            let events: [StreamEvent]
            do throws(StreamError) { events = try s.parser.feed(bytes) } catch {
                s.failure = "\(error)"
                throw fail(&c, EINVAL, "resume refused \(error)")
            }
            for event in events {
                switch event {
                case .header(let header, _):
                    let problems = Compatibility.problems(source: header, destination: identity)
                    if !problems.isEmpty {
                        s.failure = "incompatible stream: " + problems.joined(separator: "; ")
                        throw fail(&c, EINVAL, "resume refused: " + s.failure!)
                    }
                case .record(let type, _, let payload, let offset):
                    do throws(LoadError) { try s.loader.apply(type, payload) } catch {
                        s.failure = "at byte \(offset): \(error.message)"
                        throw fail(&c, EINVAL, "resume refused " + s.failure!)
                    }
                case .end:
                    // The image is whole: refuse it now if it will be refused at STOP.
                    if !(s.loader.sawConfig && s.loader.sawWorkload) {
                        s.failure = "stream has no config or workload record; it is not a complete device image"
                        throw fail(&c, EINVAL, "resume refused, the device keeps its state: " + s.failure!)
                    }
                    s.injected = faultHook?.fault(device: gpu.uuid, .resumeCommit)
                    s.endChecked = true
                    if s.injected == .rejectResume {
                        s.failure = "injected fault: resume refused a sound stream"
                        throw fail(&c, EINVAL, "injected fault: resume refused a sound stream; the device keeps its state")
                    }
                case .skipped:
                    break
                }
            }
            s.received += bytes.count
            return bytes.count
        }
    }
}
