import GPUModel
import Migration
import Synchronization
import VirtualFS

/// Counts the open region files of a device: a device with any open is "in use"
/// (its aggregation can no longer change).
final class OpenCount: Sendable {
    private let count = Atomic<Int>(0)
    func increment() { count.add(1, ordering: .relaxed) }
    func decrement() { count.subtract(1, ordering: .relaxed) }
    var value: Int { count.load(ordering: .relaxed) }
}

/// A VFIO region as a file: `pread`/`pwrite` at region offsets reach the
/// device model with the access's own size, as the region's read/write would.
struct RegionFile: FileContent {
    enum Kind { case config, bar0, migration(V1Region) }
    let kind: Kind
    let device: VGPU
    let size: Int
    let opens: OpenCount

    func open(_ node: Node, access: OpenAccess) throws(FSError) -> any OpenFile {
        opens.increment()
        return OpenRegion(node: node, region: self)
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
        do throws(AccessError) {
            switch region.kind {
            case .config:
                // End of region reads as end of file (so `cat` works); a start past it is EINVAL.
                if offset == region.size { return reply(UnsafeRawBufferPointer(start: nil, count: 0)) }
                guard offset < region.size else {
                    throw .invalid("offset \(offset) is beyond the \(region.size)-byte config region")
                }
                try region.device.readConfig(offset: offset, count: min(size, region.size - offset)).withUnsafeBytes(reply)
            case .bar0:
                guard size <= 8 else {
                    throw .invalid("BAR0 is accessed one register at a time (4 or 8 bytes), not \(size)")
                }
                var value = try region.device.readBAR0(offset: offset, size: size).littleEndian
                withUnsafeBytes(of: &value) { reply(UnsafeRawBufferPointer(rebasing: $0.prefix(size))) }
            case .migration(let v1):
                do throws(MigrationError) { try v1.read(offset: offset, size: size).withUnsafeBytes(reply) } catch {
                    throw .init(errno: error.errno, message: error.message)
                }
            }
        } catch {
            throw FSError(error.errno, error.message)
        }
    }

    func write(offset: Int, data: UnsafeRawBufferPointer) throws(FSError) -> Int {
        try node.checkAlive()
        do throws(AccessError) {
            switch region.kind {
            case .config:
                try region.device.writeConfig(offset: offset, bytes: Array(data))
            case .bar0:
                guard data.count <= 8 else {
                    throw .invalid("BAR0 is accessed one register at a time (4 or 8 bytes), not \(data.count)")
                }
                var value: UInt64 = 0
                withUnsafeMutableBytes(of: &value) { $0.copyMemory(from: data) }
                try region.device.writeBAR0(offset: offset, size: data.count, value: UInt64(littleEndian: value))
            case .migration(let v1):
                do throws(MigrationError) { try v1.write(offset: offset, bytes: Array(data)) } catch {
                    throw .init(errno: error.errno, message: error.message)
                }
            }
            return data.count
        } catch {
            throw FSError(error.errno, error.message)
        }
    }

    func release() { region.opens.decrement() }
}
