import GPUModel
import StateStream
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The saving side: the data stream read in PRE_COPY and STOP_COPY, and its sizes.
extension MigrationDevice {
    // MARK: The data stream

    func checkSession(_ c: inout Core, _ id: UInt64?, saving: Bool) throws(MigrationError) {
        let current = saving ? c.saving?.id : c.resuming?.id
        guard let id, id == current else {
            throw fail(&c, EBADF, id == nil || id! < c.lastSession || current == nil
                ? "this data handle belongs to a session that has ended (as a closed data_fd would); open data again after entering \(saving ? "a saving state" : "RESUMING")"
                : "data is \(saving ? "readable only in PRE_COPY, PRE_COPY_P2P or STOP_COPY" : "writable only in RESUMING")")
        }
    }

    /// Reads the saving stream at `offset` (which must be where the last read
    /// ended), handing the bytes to `reply` without copying them. Zero bytes is
    /// the end of the stream (STOP_COPY); ENOMSG means PRE_COPY has nothing more for now.
    public func read(session: UInt64?, offset: Int, size: Int, reply: (UnsafeRawBufferPointer) -> Void) throws(MigrationError) {
        try core.withLock { (c: inout Core) throws(MigrationError) in
            try checkSession(&c, session, saving: true)
            guard offset == c.saving!.delivered else {
                throw fail(&c, ESPIPE, "the data stream is read in order: offset \(offset) asked, \(c.saving!.delivered) delivered")
            }
            // Move the session out so its buffers are mutated in place, not copied.
            var s = c.saving!
            c.saving = nil
            defer { c.saving = s }
            produce(&s, wanted: size)
            let n = min(size, s.available)
            if n == 0 && !s.stopped {
                throw fail(&c, ENOMSG, "no pre-copy data for now; read again later or move to STOP_COPY")
            }
            var n2 = n
            switch faultHook?.fault(device: gpu.uuid, .saveRead(offset: s.delivered, count: n)) {
            case .flipBit(let at) where at >= s.delivered && at < s.delivered + n:
                s.buffer[s.bufferStart + at - s.delivered] ^= 0x10
            case .truncate(let at) where at < s.delivered + n:
                n2 = max(0, at - s.delivered)
                if n2 == 0 { s.finished = true; s.buffer.removeAll(); s.bufferStart = 0; reply(UnsafeRawBufferPointer(start: nil, count: 0)); return }
            default:
                break
            }
            s.buffer.withUnsafeBytes { reply(UnsafeRawBufferPointer(rebasing: $0[s.bufferStart..<s.bufferStart + n2])) }
            s.bufferStart += n2
            s.delivered += n2
            if s.bufferStart == s.buffer.count {
                s.buffer.removeAll(keepingCapacity: true)
                s.bufferStart = 0
            }
        }
    }

    /// `read(session:offset:size:reply:)` into an array, for tools and tests.
    public func read(session: UInt64?, offset: Int, size: Int) throws(MigrationError) -> [UInt8] {
        var out: [UInt8] = []
        try read(session: session, offset: offset, size: size) { out = Array($0) }
        return out
    }

    /// Encodes records until `wanted` bytes are buffered or, in PRE_COPY, the
    /// current dirty data has been taken once.
    func produce(_ s: inout SaveSession, wanted: Int) {
        if s.bufferStart > 0 && s.bufferStart * 2 >= s.buffer.count {
            s.buffer.removeFirst(s.bufferStart)
            s.bufferStart = 0
        }
        // Records are encoded straight into the session's buffer.
        var w = StreamWriter()
        swap(&w.bytes, &s.buffer)
        defer { swap(&w.bytes, &s.buffer) }
        if let blob = replayBlob {
            // The recorded blob, byte for byte, in STOP_COPY; nothing during pre-copy.
            if s.stopped && !s.finished {
                w.bytes += blob
                s.finished = true
            }
            return
        }
        var tookDirty = false
        while w.bytes.count - s.bufferStart < wanted && !s.finished {
            if !s.headerSent {
                w.header(identity)
                s.headerSent = true
            } else if s.ggttNext < s.ggttPages.count {
                let chunk = s.ggttPages[s.ggttNext..<min(s.ggttNext + 128, s.ggttPages.count)]
                gpu.withHardware { hw in DeviceImage.ggttRecord(hw, pages: chunk, includeEmpty: false, into: &w) }
                s.ggttNext += chunk.count
            } else if s.framesNext < s.frames.count {
                let chunk = s.frames[s.framesNext..<min(s.framesNext + StreamFormat.pagesPerRecord, s.frames.count)]
                gpu.withHardware { hw in DeviceImage.memoryRecord(hw, frames: chunk, type: .memory, into: &w) }
                s.framesNext += chunk.count
            } else if !s.stopped {
                if tookDirty { break }
                tookDirty = true
                appendDirty(into: &w)
            } else {
                appendDirty(into: &w)
                let config = gpu.workloadConfig
                gpu.withState { hw, workload in
                    DeviceImage.configRecord(hw, into: &w)
                    DeviceImage.registerRecords(hw, into: &w)
                    DeviceImage.workloadRecord(workload, config, into: &w)
                }
                w.end()
                s.finished = true
            }
        }
    }

    func appendDirty(into w: inout StreamWriter) {
        gpu.withHardware { hw in
            let dirty = hw.takeDirty()
            let ggtt = dirty.ggttPages.sorted()
            for start in stride(from: 0, to: ggtt.count, by: 128) {
                DeviceImage.ggttRecord(hw, pages: ggtt[start..<min(start + 128, ggtt.count)], includeEmpty: true, into: &w)
            }
            let frames = dirty.pages.sorted()
            for start in stride(from: 0, to: frames.count, by: StreamFormat.pagesPerRecord) {
                DeviceImage.memoryRecord(hw, frames: frames[start..<min(start + StreamFormat.pagesPerRecord, frames.count)], type: .dirtyPages, into: &w)
            }
        }
    }

    // MARK: Sizes

    /// `VFIO_MIG_GET_PRECOPY_INFO`: only in PRE_COPY states (EINVAL otherwise).
    public func precopyInfo() throws(MigrationError) -> (initialBytes: Int, dirtyBytes: Int) {
        try core.withLock { (c: inout Core) throws(MigrationError) -> (initialBytes: Int, dirtyBytes: Int) in
            guard c.state == .preCopy || c.state == .preCopyP2P, let s = c.saving else {
                throw fail(&c, EINVAL, "precopy_info is valid only in PRE_COPY or PRE_COPY_P2P (now \(c.state))")
            }
            return (remainingInitial(s), dirtyEstimate())
        }
    }

    func remainingInitial(_ s: SaveSession) -> Int {
        if replayBlob != nil { return 0 }
        return (s.headerSent ? 0 : StreamWriter.encodeHeader(identity).count)
            + DeviceImage.ggttBytes(s.ggttPages.count - s.ggttNext)
            + DeviceImage.memoryBytes(s.frames.count - s.framesNext) + s.available
    }

    func dirtyEstimate() -> Int {
        let d = gpu.pendingDirty
        return DeviceImage.memoryBytes(d.pages.count) + DeviceImage.ggttBytes(d.ggttPages.count)
    }

    /// `VFIO_DEVICE_FEATURE_MIG_DATA_SIZE`: bytes still to come to complete a
    /// stop-copy from here (the whole image when no session is open).
    public var stopCopySize: Int {
        if let blob = replayBlob { return blob.count }
        return core.withLock { c in
            let fixed = 4096
            if let s = c.saving { return remainingInitial(s) + dirtyEstimate() + fixed }
            let (pages, ggttPages) = gpu.withHardware { hw in (hw.memory.count, Set(hw.ggtt.keys.map { $0 >> 9 }).count) }
            return StreamWriter.encodeHeader(identity).count + DeviceImage.memoryBytes(pages) + DeviceImage.ggttBytes(ggttPages) + fixed
        }
    }
}
