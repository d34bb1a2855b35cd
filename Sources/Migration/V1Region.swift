import CVFIO
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The v1 (Linux 5.8) migration region over the same device: `struct
/// vfio_device_migration_info` at offset 0 and a data section at
/// `data_offset`, driven by `device_state` bits instead of v2 states.
///
///     0x00 device_state  u32 RW   bits RUNNING|SAVING|RESUMING, bits 3-31 reserved (kept as written)
///     0x04 reserved      u32      reads 0, writes ignored
///     0x08 pending_bytes u64 RO   reading it starts an iteration and acknowledges the last chunk
///     0x10 data_offset   u64 RO   reading it makes the next chunk available (saving)
///     0x18 data_size     u64 RW   read: bytes available; write: bytes placed (resuming)
public final class V1Region: Sendable {
    public static let dataOffset = 4096
    public static let windowSize = 1 << 20
    public static let size = dataOffset + windowSize

    static let running = UInt32(VFIO_DEVICE_STATE_V1_RUNNING)
    static let saving = UInt32(VFIO_DEVICE_STATE_V1_SAVING)
    static let resuming = UInt32(VFIO_DEVICE_STATE_V1_RESUMING)
    /// VFIO_DEVICE_STATE_MASK (a macro Swift cannot import).
    static let mask = running | saving | resuming

    let device: MigrationDevice

    struct Window {
        var reserved: UInt32 = 0
        var window = [UInt8](repeating: 0, count: V1Region.windowSize)
        var available = 0          // saving: bytes of the current chunk
        var staged = false         // saving: a chunk is waiting in the window
        var handedOut = false      // saving: data_offset was read for the staged chunk
        var delivered = 0          // saving: stream bytes handed out so far
        var dirty = false          // the window holds bytes of a session

        /// Ends a session in place: the 1 MiB window is cleared only if a
        /// session used it, never reallocated (a device_state write that
        /// changes nothing costs what a register write costs).
        mutating func endSession() {
            if dirty { window.withUnsafeMutableBytes { _ = memset($0.baseAddress!, 0, $0.count) } }
            (available, staged, delivered, dirty, handedOut) = (0, false, 0, false, false)
        }
    }
    private let w = Mutex(Window())

    public init(device: MigrationDevice) { self.device = device }

    /// The v1 bits of a v2 state (ERROR is 110b).
    public static func bits(_ s: MigrationState) -> UInt32 {
        switch s {
        case .running, .runningP2P: running
        case .preCopy, .preCopyP2P: running | saving
        case .stopCopy: saving
        case .stop: 0
        case .resuming: resuming
        case .error: saving | resuming
        }
    }

    static func state(_ bits: UInt32) throws(MigrationError) -> MigrationState {
        switch bits & mask {
        case 0: .stop
        case running: .running
        case saving: .stopCopy
        case running | saving: .preCopy
        case resuming: .resuming
        case saving | resuming: throw MigrationError(EINVAL, "110b is the error state; it cannot be requested (reset the device to leave it)")
        default: throw MigrationError(EINVAL, "device_state \(String(bits & mask, radix: 2))b is not a valid state (101b and 111b are invalid)")
        }
    }

    private func check(_ offset: Int, _ size: Int) throws(MigrationError) {
        if offset >= V1Region.dataOffset {
            guard offset + size <= V1Region.size else { throw MigrationError(EINVAL, "access beyond the migration region") }
            return
        }
        let width: Int
        switch offset {
        case 0, 4: width = 4
        case 8, 16, 24: width = 8
        default: throw MigrationError(EINVAL, "0x\(String(offset, radix: 16)) is not a field of vfio_device_migration_info")
        }
        guard size == width else {
            throw MigrationError(EINVAL, "fields are accessed at their native width: 0x\(String(offset, radix: 16)) is \(width) bytes, not \(size)")
        }
    }

    /// The data section itself, its first `count` bytes, for a VMM that maps it: the VFIO
    /// emulation copies between it and the mapping at data_size, with no copy in between.
    public func withDataSection(count: Int, _ body: (UnsafeMutableRawBufferPointer) -> Int) -> Int {
        w.withLock { (w: inout Window) -> Int in
            w.dirty = true
            return w.window.withUnsafeMutableBytes { body(UnsafeMutableRawBufferPointer(rebasing: $0.prefix(min(count, V1Region.windowSize)))) }
        }
    }

    public func read(offset: Int, size: Int) throws(MigrationError) -> [UInt8] {
        do throws(MigrationError) { return try readField(offset: offset, size: size) } catch {
            device.recordError(error.message)
            throw error
        }
    }

    public func write(offset: Int, bytes: [UInt8]) throws(MigrationError) {
        do throws(MigrationError) { try writeField(offset: offset, bytes: bytes) } catch {
            device.recordError(error.message)
            throw error
        }
    }

    private func readField(offset: Int, size: Int) throws(MigrationError) -> [UInt8] {
        try check(offset, size)
        return try w.withLock { (w: inout Window) throws(MigrationError) -> [UInt8] in
            func le(_ v: UInt64, _ n: Int) -> [UInt8] { (0..<n).map { UInt8((v >> (8 * UInt64($0))) & 0xff) } }
            switch offset {
            case 0: return le(UInt64(V1Region.bits(device.state) | w.reserved), 4)
            case 4: return le(0, 4)
            case 8: return le(UInt64(try pendingBytes(&w)), 8)
            case 16:
                if device.state.isSaving, !w.staged { try stage(&w) }
                if w.staged { w.handedOut = true }
                return le(UInt64(V1Region.dataOffset), 8)
            case 24: return le(UInt64(device.state.isSaving ? w.available : 0), 8)
            default:
                let start = offset - V1Region.dataOffset
                return Array(w.window[start..<start + size])
            }
        }
    }

    /// Start of an iteration: acknowledges the last chunk, if the user took it (read
    /// data_offset), and says what remains. "Repeated read on pending_bytes at this stage
    /// should have no side effects" (the uAPI): QEMU asks for it to decide convergence
    /// without reading data, and a chunk dropped then is a hole in the stream.
    private func pendingBytes(_ w: inout Window) throws(MigrationError) -> Int {
        guard device.state.isSaving else { return 0 }
        if w.staged && w.handedOut {
            w.staged = false
            w.handedOut = false
            w.available = 0
        }
        try stage(&w)
        guard w.available > 0 else { return 0 }
        return w.available + max(0, device.stopCopySize - 4096)
    }

    /// Pulls the next chunk of the saving stream into the window.
    private func stage(_ w: inout Window) throws(MigrationError) {
        guard !w.staged else { return }
        var got = 0
        do throws(MigrationError) {
            try device.read(session: device.currentSession, offset: w.delivered, size: V1Region.windowSize) { bytes in
                w.window.withUnsafeMutableBytes { $0.copyMemory(from: bytes) }
                w.dirty = true
                got = bytes.count
            }
        } catch where error.errno == ENOMSG {
            got = 0
        }
        w.delivered += got
        w.available = got
        w.staged = got > 0
    }

    private func writeField(offset: Int, bytes: [UInt8]) throws(MigrationError) {
        try check(offset, bytes.count)
        var value: UInt64 = 0
        for (i, b) in bytes.prefix(8).enumerated() { value |= UInt64(b) << (8 * UInt64(i)) }
        try w.withLock { (w: inout Window) throws(MigrationError) in
            switch offset {
            case 0:
                let target = try V1Region.state(UInt32(value))
                let wasSaving = device.state.isSaving
                try device.setState(target)
                w.reserved = UInt32(value) & ~V1Region.mask
                if !device.state.isSaving || !wasSaving { w.endSession() }
            case 4: break
            case 8, 16: throw MigrationError(EINVAL, offset == 8 ? "pending_bytes is read-only" : "data_offset is read-only")
            case 24:
                guard device.state == .resuming else {
                    throw MigrationError(EINVAL, "data_size is written only while resuming (device_state 100b)")
                }
                guard value <= UInt64(V1Region.windowSize) else { throw MigrationError(EINVAL, "data_size \(value) exceeds the data section (\(V1Region.windowSize) bytes)") }
                let n = Int(value)
                var failure: MigrationError?
                w.window.withUnsafeBytes { raw in
                    do throws(MigrationError) {
                        _ = try device.write(session: device.currentSession, bytes: UnsafeRawBufferPointer(rebasing: raw[0..<n]))
                    } catch { failure = error }
                }
                if let failure { throw failure }
            default:
                let start = offset - V1Region.dataOffset
                w.window.replaceSubrange(start..<start + bytes.count, with: bytes)
                w.dirty = true
            }
        }
    }
}
