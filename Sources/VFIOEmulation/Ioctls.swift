import CLinux
import CVFIO
import Foundation
import Migration

extension Supervisor {
    func ioctl(_ file: EmulatedFile, request: UInt32, arg: UInt64, _ tgid: Int32, _ n: mdevsim_notif, _ mem: CallerMemory) throws(MigrationError) -> Reply {
        switch file.kind {
        case .container(let c): return try containerIoctl(c, request, arg, tgid, mem)
        case .group(let g): return try groupIoctl(g, request, arg, tgid, n, mem)
        case .device(let d): return try deviceIoctl(d, request, arg, tgid, n, mem)
        case .data(let d):
            guard request == UInt32(MDEVSIM_VFIO_MIG_GET_PRECOPY_INFO) else { throw MigrationError(ENOTTY, "ioctl 0x\(String(request, radix: 16)) on a data_fd") }
            var info = Bytes(try mem.read(arg, 8))
            guard info.u32(0) >= 24 else { throw MigrationError(EINVAL, "VFIO_MIG_GET_PRECOPY_INFO: argsz \(info.u32(0)) is below 24") }
            guard d.session == d.endpoint.currentSession, d.endpoint.state.sessionKind == .saving else {
                throw MigrationError(EINVAL, "VFIO_MIG_GET_PRECOPY_INFO: this data_fd's session has ended")
            }
            let p = try d.endpoint.precopyInfo()
            info.put64(8, UInt64(p.initialBytes))
            info.put64(16, UInt64(p.dirtyBytes))
            try mem.write(arg, info.raw)
            return .value(0)
        }
    }

    // MARK: Container (type1)

    func containerIoctl(_ c: Container, _ request: UInt32, _ arg: UInt64, _ tgid: Int32, _ mem: CallerMemory) throws(MigrationError) -> Reply {
        switch Int(request) {
        case Int(MDEVSIM_VFIO_GET_API_VERSION): return .value(Int64(VFIO_API_VERSION))
        case Int(MDEVSIM_VFIO_CHECK_EXTENSION):
            return .value([UInt64(VFIO_TYPE1_IOMMU), UInt64(VFIO_TYPE1v2_IOMMU)].contains(arg) ? 1 : 0)
        case Int(MDEVSIM_VFIO_SET_IOMMU):
            guard !c.groups.isEmpty else { throw MigrationError(EINVAL, "VFIO_SET_IOMMU: the container has no group yet (VFIO_GROUP_SET_CONTAINER first)") }
            guard c.iommu == nil else { throw MigrationError(EBUSY, "VFIO_SET_IOMMU: the container's IOMMU is already set") }
            guard arg == UInt64(VFIO_TYPE1_IOMMU) || arg == UInt64(VFIO_TYPE1v2_IOMMU) else {
                throw MigrationError(ENODEV, "VFIO_SET_IOMMU: type \(arg) is not offered (type1 and type1v2 are)")
            }
            c.iommu = UInt32(arg)
            return .value(0)
        case Int(MDEVSIM_VFIO_IOMMU_GET_INFO):
            guard c.iommu != nil else { throw MigrationError(EINVAL, "VFIO_IOMMU_GET_INFO before VFIO_SET_IOMMU") }
            let argsz = Int(Bytes(try mem.read(arg, 4)).u32(0))
            guard argsz >= 16 else { throw MigrationError(EINVAL, "VFIO_IOMMU_GET_INFO: argsz \(argsz) is below 16") }
            var caps = CapabilityChain()
            var ranges = Bytes(count: 8)                      // IOVA_RANGE: all but the x86 MSI window
            ranges.put32(0, 2)
            for (i, r) in [(0, 0xfedf_ffff), (0xfef0_0000, (1 << 48) - 1)].enumerated() {
                ranges.put64(8 + 16 * i, UInt64(r.0))
                ranges.put64(16 + 16 * i, UInt64(r.1))
            }
            caps.add(id: UInt16(VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE), version: 1, ranges)
            var migration = Bytes(count: 24)                  // dirty page tracking at 4 KiB
            migration.put64(8, 4096)
            migration.put64(16, 256 << 20)
            caps.add(id: UInt16(VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION), version: 1, migration)
            var avail = Bytes(count: 8)
            avail.put32(0, UInt32(65535 - c.mappings.count))
            caps.add(id: 3 /* VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL */, version: 1, avail)
            let body = caps.bytes(base: 24)
            var info = Bytes(count: min(argsz, 24))
            info.put32(4, UInt32(VFIO_IOMMU_INFO_PGSIZES) | UInt32(VFIO_IOMMU_INFO_CAPS))
            info.put64(8, 0x4020_1000)                        // 4 KiB, 2 MiB, 1 GiB as an Intel IOMMU
            if argsz < 24 + body.count {
                info.put32(0, UInt32(24 + body.count))
                if argsz >= 24 { info.put32(16, 0) }
            } else {
                info.put32(0, UInt32(argsz))
                info.put32(16, 24)
                info.raw += body
            }
            try mem.write(arg, Array(info.raw.prefix(max(argsz, 16))))
            return .value(0)
        case Int(MDEVSIM_VFIO_IOMMU_MAP_DMA):
            let m = Bytes(try mem.read(arg, 32))
            guard c.iommu != nil else { throw MigrationError(EINVAL, "VFIO_IOMMU_MAP_DMA before VFIO_SET_IOMMU") }
            guard m.u32(0) >= 32 else { throw MigrationError(EINVAL, "VFIO_IOMMU_MAP_DMA: argsz \(m.u32(0)) is below 32") }
            let (flags, vaddr, iova, size) = (m.u32(4), m.u64(8), m.u64(16), m.u64(24))
            let known = UInt32(VFIO_DMA_MAP_FLAG_READ) | UInt32(VFIO_DMA_MAP_FLAG_WRITE) | UInt32(VFIO_DMA_MAP_FLAG_VADDR)
            guard flags & ~known == 0 else { throw MigrationError(EINVAL, "VFIO_IOMMU_MAP_DMA: unknown flags 0x\(String(flags, radix: 16))") }
            guard size > 0, iova % 4096 == 0, size % 4096 == 0, vaddr % 4096 == 0 else {
                throw MigrationError(EINVAL, "VFIO_IOMMU_MAP_DMA: iova 0x\(String(iova, radix: 16)), size 0x\(String(size, radix: 16)) and vaddr must be non-zero multiples of 4 KiB")
            }
            guard iova &+ size > iova, vaddr &+ size > vaddr else { throw MigrationError(EINVAL, "VFIO_IOMMU_MAP_DMA: the range wraps around") }
            if let o = c.mappings.first(where: { $0.iova < iova + size && iova < $0.iova + $0.size }) {
                throw MigrationError(EEXIST, "VFIO_IOMMU_MAP_DMA: iova 0x\(String(iova, radix: 16))+0x\(String(size, radix: 16)) overlaps the mapping at 0x\(String(o.iova, radix: 16))+0x\(String(o.size, radix: 16))")
            }
            guard c.mappings.count < 65535 else { throw MigrationError(ENOSPC, "VFIO_IOMMU_MAP_DMA: 65535 mappings is the limit") }
            let at = c.mappings.firstIndex { $0.iova > iova } ?? c.mappings.count
            c.mappings.insert(.init(iova: iova, size: size, vaddr: vaddr, flags: flags), at: at)
            return .value(0)
        case Int(MDEVSIM_VFIO_IOMMU_UNMAP_DMA):
            var u = Bytes(try mem.read(arg, 24))
            guard c.iommu != nil else { throw MigrationError(EINVAL, "VFIO_IOMMU_UNMAP_DMA before VFIO_SET_IOMMU") }
            guard u.u32(0) >= 24 else { throw MigrationError(EINVAL, "VFIO_IOMMU_UNMAP_DMA: argsz \(u.u32(0)) is below 24") }
            let (flags, iova, size) = (u.u32(4), u.u64(8), u.u64(16))
            let all = flags & UInt32(VFIO_DMA_UNMAP_FLAG_ALL) != 0
            let dirty = flags & UInt32(VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP) != 0
            let known = UInt32(VFIO_DMA_UNMAP_FLAG_ALL) | UInt32(VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP)
            guard flags & ~known == 0, !(all && dirty) else { throw MigrationError(EINVAL, "VFIO_IOMMU_UNMAP_DMA: flags 0x\(String(flags, radix: 16)) are not a valid combination") }
            if all {
                guard iova == 0, size == 0 else { throw MigrationError(EINVAL, "VFIO_IOMMU_UNMAP_DMA: with FLAG_ALL, iova and size must be 0") }
            } else {
                guard iova % 4096 == 0, size % 4096 == 0, size > 0, iova &+ size > iova else {
                    throw MigrationError(EINVAL, "VFIO_IOMMU_UNMAP_DMA: iova 0x\(String(iova, radix: 16)) and size 0x\(String(size, radix: 16)) must be multiples of 4 KiB")
                }
                // type1v2: an unmap may not split a mapping.
                if let m = c.mappings.first(where: { ($0.iova < iova && $0.iova + $0.size > iova) || ($0.iova < iova + size && $0.iova + $0.size > iova + size) }) {
                    throw MigrationError(EINVAL, "VFIO_IOMMU_UNMAP_DMA: 0x\(String(iova, radix: 16))+0x\(String(size, radix: 16)) would split the mapping at 0x\(String(m.iova, radix: 16))+0x\(String(m.size, radix: 16))")
                }
            }
            let gone = c.mappings.filter { all || ($0.iova >= iova && $0.iova + $0.size <= iova + size) }
            if dirty {
                guard c.dirtyTracking else { throw MigrationError(EINVAL, "VFIO_IOMMU_UNMAP_DMA: a dirty bitmap was asked for, but dirty tracking is not started") }
                let b = Bytes(try mem.read(arg + 24, 24))
                try zeroBitmap(pgsize: b.u64(0), bytes: b.u64(8), data: b.u64(16), covering: size, mem)
            }
            c.mappings.removeAll { m in gone.contains { $0.iova == m.iova } }
            u.put64(16, gone.reduce(0) { $0 + $1.size })
            try mem.write(arg, u.raw)
            return .value(0)
        case Int(MDEVSIM_VFIO_IOMMU_DIRTY_PAGES):
            let d = Bytes(try mem.read(arg, 8))
            guard c.iommu != nil else { throw MigrationError(EINVAL, "VFIO_IOMMU_DIRTY_PAGES before VFIO_SET_IOMMU") }
            let flags = d.u32(4)
            switch flags {
            case UInt32(VFIO_IOMMU_DIRTY_PAGES_FLAG_START): c.dirtyTracking = true
            case UInt32(VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP): c.dirtyTracking = false
            case UInt32(VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP):
                guard c.dirtyTracking else { throw MigrationError(EINVAL, "VFIO_IOMMU_DIRTY_PAGES GET_BITMAP: dirty tracking is not started") }
                let r = Bytes(try mem.read(arg + 8, 40))
                let (iova, size) = (r.u64(0), r.u64(8))
                guard c.mappings.contains(where: { $0.iova <= iova && iova + size <= $0.iova + $0.size }) || size == 0 else {
                    throw MigrationError(EINVAL, "VFIO_IOMMU_DIRTY_PAGES GET_BITMAP: 0x\(String(iova, radix: 16))+0x\(String(size, radix: 16)) is not within one mapping")
                }
                // The simulated device makes no DMA: nothing it mapped is dirty.
                try zeroBitmap(pgsize: r.u64(16), bytes: r.u64(24), data: r.u64(32), covering: size, mem)
            default: throw MigrationError(EINVAL, "VFIO_IOMMU_DIRTY_PAGES: flags 0x\(String(flags, radix: 16)) must be exactly one of START, STOP, GET_BITMAP")
            }
            return .value(0)
        default:
            throw MigrationError(ENOTTY, "container ioctl 0x\(String(request, radix: 16))")
        }
    }

    func zeroBitmap(pgsize: UInt64, bytes: UInt64, data: UInt64, covering size: UInt64, _ mem: CallerMemory) throws(MigrationError) {
        guard pgsize == 4096 else { throw MigrationError(EINVAL, "dirty bitmap page size \(pgsize): only 4096 is supported") }
        let needed = (size / 4096 + 63) / 64 * 8
        guard bytes >= needed else { throw MigrationError(EINVAL, "dirty bitmap of \(bytes) bytes is too small for 0x\(String(size, radix: 16)) bytes (\(needed) needed)") }
        guard needed > 0 else { return }
        try mem.write(data, [UInt8](repeating: 0, count: Int(needed)))
    }

    // MARK: Group

    func groupIoctl(_ g: Group, _ request: UInt32, _ arg: UInt64, _ tgid: Int32, _ n: mdevsim_notif, _ mem: CallerMemory) throws(MigrationError) -> Reply {
        switch Int(request) {
        case Int(MDEVSIM_VFIO_GROUP_GET_STATUS):
            var s = Bytes(try mem.read(arg, 8))
            guard s.u32(0) >= 8 else { throw MigrationError(EINVAL, "VFIO_GROUP_GET_STATUS: argsz \(s.u32(0)) is below 8") }
            s.put32(4, UInt32(VFIO_GROUP_FLAGS_VIABLE) | (g.container == nil ? 0 : UInt32(VFIO_GROUP_FLAGS_CONTAINER_SET)))
            try mem.write(arg, s.raw)
            return .value(0)
        case Int(MDEVSIM_VFIO_GROUP_SET_CONTAINER):
            let fd = Bytes(try mem.read(arg, 4)).i32(0)
            guard let file = table(tgid)[fd], case .container(let c) = file.kind else {
                throw MigrationError(EBADF, "VFIO_GROUP_SET_CONTAINER: fd \(fd) is not an open /dev/vfio/vfio")
            }
            guard g.container == nil else { throw MigrationError(EINVAL, "VFIO_GROUP_SET_CONTAINER: group \(g.id) is already in a container") }
            g.container = c
            c.groups.append(g)
            return .value(0)
        case Int(MDEVSIM_VFIO_GROUP_UNSET_CONTAINER):
            guard let c = g.container else { throw MigrationError(EINVAL, "VFIO_GROUP_UNSET_CONTAINER: group \(g.id) is in no container") }
            c.groups.removeAll { $0 === g }
            if c.groups.isEmpty { c.iommu = nil; c.mappings = [] }
            g.container = nil
            return .value(0)
        case Int(MDEVSIM_VFIO_GROUP_GET_DEVICE_FD):
            guard let c = g.container, c.iommu != nil else {
                throw MigrationError(EINVAL, "VFIO_GROUP_GET_DEVICE_FD: group \(g.id) needs a container with its IOMMU set first")
            }
            let name = try mem.string(arg, max: 256)
            guard let device = g.devices.first(where: { $0.name == name }) else {
                throw MigrationError(ENODEV, "VFIO_GROUP_GET_DEVICE_FD: group \(g.id) has no device '\(name)' (it has \(g.devices.map(\.name).joined(separator: ", ")))")
            }
            let file = EmulatedFile(.device(try openDevice(device)), memfd: -1)
            let fd = try inject(file, n, tgid: tgid, send: true)
            log("pid \(tgid): device \(name) opened as fd \(fd)")
            return .answered
        default:
            throw MigrationError(ENOTTY, "group ioctl 0x\(String(request, radix: 16))")
        }
    }
}
