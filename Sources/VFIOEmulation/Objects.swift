import CLinux
import CVFIO
import Foundation
import Migration
import Synchronization

/// What an emulated fd is. The process holds a memfd in its place (so fstat,
/// poll and the kernel's own bookkeeping work) and this object here; the
/// supervisor keeps its own copy of the memfd to inject again on dup.
final class EmulatedFile: @unchecked Sendable {
    enum Kind {
        case container(Container)
        case group(Group)
        case device(DeviceHandle)
        case data(DataHandle)
    }
    let kind: Kind
    /// The supervisor's own copy (a device's belongs to its DeviceHandle).
    private let owned: Int32

    init(_ kind: Kind, memfd: Int32) {
        self.kind = kind
        if case .device = kind { owned = -1 } else { owned = memfd }
    }
    deinit { if owned >= 0 { close(owned) } }

    /// The supervisor's copy of the fd the process holds.
    var memfd: Int32 {
        if case .device(let d) = kind { return d.memfd }
        return owned
    }

    var name: String {
        switch kind {
        case .container: "container"
        case .group(let g): "group \(g.id)"
        case .device(let d): "device \(d.device.name)"
        case .data(let d): "data_fd of \(d.device.device.name)"
        }
    }
}

/// A type1 container: its IOMMU, its groups and its DMA mappings.
final class Container: @unchecked Sendable {
    var iommu: UInt32?
    var groups: [Group] = []
    struct Mapping { let iova: UInt64; let size: UInt64; let vaddr: UInt64; let flags: UInt32 }
    /// Sorted by iova, never overlapping (type1's vfio_dma tree).
    var mappings: [Mapping] = []
    var dirtyTracking = false
}

/// An IOMMU group of the backend (one per mdev).
final class Group: @unchecked Sendable {
    let id: Int
    let devices: [any EmulatedVFIODevice]
    weak var container: Container?
    init(id: Int, devices: [any EmulatedVFIODevice]) {
        self.id = id
        self.devices = devices
    }
}

/// An open device: the memfd that stands for its regions (index << 40), the
/// eventfds its interrupts signal.
final class DeviceHandle: InterruptSink, @unchecked Sendable {
    let device: any EmulatedVFIODevice
    /// The same memfd the process maps: untrapped regions and sparse areas live here.
    let memfd: Int32
    /// The v1 data section was written with pwrite since the last data_size (not through the mapping).
    var sectionWritten = false

    struct Trigger { var eventfd: Int32 = -1; var masked = false }
    /// (index, vector) → the eventfd taken from the VMM with pidfd_getfd.
    private let triggers = Mutex<[Int: [Trigger]]>([:])
    private let raised = Atomic<Int>(0)

    init(device: any EmulatedVFIODevice, memfd: Int32) {
        self.device = device
        self.memfd = memfd
    }

    /// Interrupts signalled so far (for the tests and `stats`).
    var interruptsSignalled: Int { raised.load(ordering: .relaxed) }

    func raise(index: Int, vector: Int) {
        let fd = triggers.withLock { t -> Int32 in
            guard let list = t[index], vector < list.count, !list[vector].masked else { return -1 }
                return list[vector].eventfd
        }
        if fd >= 0, mdevsim_eventfd_signal(fd) == 0 { raised.add(1, ordering: .relaxed) }
    }

    /// VFIO_IRQ_SET_ACTION_TRIGGER with eventfds (-1 clears one).
    func setTriggers(index: Int, start: Int, _ fds: [Int32]) {
        let old = triggers.withLock { t -> [Int32] in
            var list = t[index] ?? []
            var replaced: [Int32] = []
            if list.count < start + fds.count { list += Array(repeating: Trigger(), count: start + fds.count - list.count) }
            for (i, fd) in fds.enumerated() {
                if list[start + i].eventfd >= 0 { replaced.append(list[start + i].eventfd) }
                list[start + i].eventfd = fd
            }
            t[index] = list
            return replaced
        }
        for fd in old { close(fd) }
    }

    /// Disables an index (DATA_NONE, count 0): its eventfds are released.
    func clearTriggers(index: Int) {
        let old = triggers.withLock { $0.removeValue(forKey: index) ?? [] }
        for t in old where t.eventfd >= 0 { close(t.eventfd) }
    }

    func setMasked(index: Int, start: Int, count: Int, _ masked: Bool) {
        triggers.withLock { t in
            guard var list = t[index] else { return }
            for i in start..<min(list.count, start + count) { list[i].masked = masked }
            t[index] = list
        }
    }

    func hasTrigger(index: Int) -> Bool { triggers.withLock { ($0[index] ?? []).contains { $0.eventfd >= 0 } } }

    deinit {
        device.clearInterruptSink(self)
        for (_, list) in triggers.withLock({ $0 }) { for t in list where t.eventfd >= 0 { close(t.eventfd) } }
        close(memfd)
    }
}

/// A v2 data_fd: the saving or resuming session it was made for, and how far it has read.
final class DataHandle: @unchecked Sendable {
    let device: DeviceHandle
    let endpoint: any MigrationEndpoint
    let session: UInt64?
    var offset: Int
    init(device: DeviceHandle, endpoint: any MigrationEndpoint, session: UInt64?) {
        self.device = device
        self.endpoint = endpoint
        self.session = session
        offset = endpoint.streamPosition(session: session)
    }
}
