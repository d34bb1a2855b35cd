import Dispatch
import GPUModel
import Migration
import Synchronization
import VirtualFS

/// Counts a device's opens (its region and migration files, and device fds of the
/// VFIO emulation): a device with any open is "in use" (its aggregation can no
/// longer change, its removal waits for the last close).
final class OpenCount: Sendable {
    private let state = Mutex<(count: Int, waiters: [@Sendable () -> Void])>((0, []))
    func increment() { state.withLock { $0.count += 1 } }
    func decrement() {
        let run = state.withLock { s -> [@Sendable () -> Void] in
            s.count -= 1
            guard s.count == 0 else { return [] }
            defer { s.waiters = [] }
            return s.waiters
        }
        // Off the closing thread: a release handler or the emulation loop must not run a removal itself.
        for body in run { DispatchQueue.global().async(execute: body) }
    }
    var value: Int { state.withLock { $0.count } }
    /// false when nothing is open; otherwise true, and `body` runs after the last close.
    func whenReleased(_ body: @escaping @Sendable () -> Void) -> Bool {
        state.withLock { s in
            guard s.count > 0 else { return false }
            s.waiters.append(body)
            return true
        }
    }
}

/// A VFIO region as a file: `pread`/`pwrite` at region offsets reach the
/// device model with the access's own size, as the region's read/write would.
struct RegionFile: FileContent {
    enum Kind { case config, bar0, migration(V1Region), opregion([UInt8]), edid(EDIDRegion) }
    let kind: Kind
    let device: VGPU
    let size: Int
    let opens: OpenCount

    func open(_ node: Node, access: OpenAccess) throws(FSError) -> any OpenFile {
        opens.increment()
        return OpenRegion(node: node, region: self)
    }
}

extension RegionFile {
    /// kvmgt's split of one access: the largest aligned piece of 8, 4, 2 or 1 bytes, repeatedly.
    static func pieces(offset: Int, count: Int, _ body: (Int, Int) throws(AccessError) -> Void) throws(AccessError) {
        var o = offset
        let end = offset + count
        while o < end {
            let left = end - o
            let n = left >= 8 && o % 8 == 0 ? 8 : left >= 4 && o % 4 == 0 ? 4 : left >= 2 && o % 2 == 0 ? 2 : 1
            try body(o, n)
            o += n
        }
    }
}

final class OpenRegion: OpenFile {
    let node: Node
    let region: RegionFile

    init(node: Node, region: RegionFile) {
        self.node = node
        self.region = region
    }

    func read(offset: Int, size: Int, reply: (UnsafeRawBufferPointer) -> Void) throws(FSError) {
        try node.checkAlive()
        do throws(AccessError) { try region.read(offset: offset, size: size, reply: reply) } catch { throw FSError(error.errno, error.message) }
    }

    func write(offset: Int, data: UnsafeRawBufferPointer) throws(FSError) -> Int {
        try node.checkAlive()
        do throws(AccessError) { return try region.write(offset: offset, data: data) } catch { throw FSError(error.errno, error.message) }
    }

    func release() { region.opens.decrement() }
}

extension RegionFile {
    /// The region's read, as the file and the VFIO emulation both serve it.
    func read(offset: Int, size: Int, reply: (UnsafeRawBufferPointer) -> Void) throws(AccessError) {
        let region = self
        switch region.kind {
        case .config:
            // End of region reads as end of file (so `cat` works); a start past it is EINVAL.
            if offset == region.size { return reply(UnsafeRawBufferPointer(start: nil, count: 0)) }
            guard offset < region.size else {
                throw .invalid("offset \(offset) is beyond the \(region.size)-byte config region")
            }
            try region.device.readConfig(offset: offset, count: min(size, region.size - offset)).withUnsafeBytes(reply)
        case .bar0:
            if size > 0, size <= 8, size & (size - 1) == 0, offset % size == 0 {
                var value = try region.device.readBAR0(offset: offset, size: size).littleEndian
                return withUnsafeBytes(of: &value) { reply(UnsafeRawBufferPointer(rebasing: $0.prefix(size))) }
            }
            // As kvmgt's intel_vgpu_rw: aligned 8-, 4-, 2- and 1-byte pieces, in order.
            guard offset >= 0, offset < region.size else { throw .invalid("offset \(offset) is beyond BAR0") }
            var out = [UInt8]()
            out.reserveCapacity(min(size, region.size - offset))
            try RegionFile.pieces(offset: offset, count: min(size, region.size - offset)) { (o: Int, n: Int) throws(AccessError) in
                let v = try region.device.readBAR0(offset: o, size: n)
                for k in 0..<n { out.append(UInt8(truncatingIfNeeded: v >> (UInt64(k) * 8))) }
            }
            out.withUnsafeBytes(reply)
        case .migration(let v1):
            do throws(MigrationError) { try v1.read(offset: offset, size: size).withUnsafeBytes(reply) } catch {
                throw .init(errno: error.errno, message: error.message)
            }
        case .opregion(let bytes):
            guard offset >= 0, offset <= bytes.count else { throw .invalid("offset \(offset) is beyond the \(bytes.count)-byte OpRegion") }
            bytes[offset..<min(bytes.count, offset + size)].withUnsafeBytes(reply)
        case .edid(let edid):
            guard offset >= 0, offset < EDIDRegion.extent else {
                if offset == EDIDRegion.extent { return reply(UnsafeRawBufferPointer(start: nil, count: 0)) }
                throw .invalid("offset \(offset) is beyond the EDID region")
            }
            try edid.read(offset: offset, size: size).withUnsafeBytes(reply)
        }
    }

    func write(offset: Int, data: UnsafeRawBufferPointer) throws(AccessError) -> Int {
        let region = self
        switch region.kind {
        case .config:
            try region.device.writeConfig(offset: offset, bytes: Array(data))
        case .bar0:
            guard offset >= 0, offset + data.count <= region.size else { throw .invalid("\(data.count) bytes at \(offset) are beyond BAR0") }
            try RegionFile.pieces(offset: offset, count: data.count) { (o: Int, n: Int) throws(AccessError) in
                var value: UInt64 = 0
                for k in 0..<n { value |= UInt64(data[o - offset + k]) << (UInt64(k) * 8) }
                try region.device.writeBAR0(offset: o, size: n, value: value)
            }
        case .migration(let v1):
            do throws(MigrationError) { try v1.write(offset: offset, bytes: Array(data)) } catch {
                throw .init(errno: error.errno, message: error.message)
            }
        case .opregion:
            // kvmgt's intel_vgpu_reg_rw_opregion refuses every write.
            throw .invalid("the OpRegion is read-only")
        case .edid(let edid):
            try edid.write(offset: offset, Array(data))
        }
        return data.count
    }
}

/// The IGD OpRegion GVT-g gives each vGPU (intel_vgpu_init_opregion): 8 KiB,
/// "IntelGraphicsMem", version 2.0, the VBT mailbox; the rest zero here.
enum OpRegion {
    static let size = 8 << 10

    static var bytes: [UInt8] {
        var b = [UInt8](repeating: 0, count: size)
        b.replaceSubrange(0..<16, with: Array("IntelGraphicsMem".utf8))
        func put32(_ o: Int, _ v: UInt32) { for i in 0..<4 { b[o + i] = UInt8((v >> (8 * UInt32(i))) & 0xff) } }
        put32(0x10, 8)                 // size in KiB
        put32(0x14, 0x0200_0000)       // OpRegion version 2.0
        put32(0x58, 1 << 3)            // mailboxes: VBT
        return b
    }
}
