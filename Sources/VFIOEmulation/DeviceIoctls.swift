import CLinux
import CVFIO
import Foundation
import Migration

extension Supervisor {
    func deviceIoctl(_ d: DeviceHandle, _ request: UInt32, _ arg: UInt64, _ tgid: Int32, _ n: mdevsim_notif, _ mem: CallerMemory) throws(MigrationError) -> Reply {
        let dev = d.device
        switch Int(request) {
        case Int(MDEVSIM_VFIO_DEVICE_GET_INFO):
            var info = Bytes(try mem.read(arg, 16))
            let argsz = info.u32(0)
            guard argsz >= 16 else { throw MigrationError(EINVAL, "VFIO_DEVICE_GET_INFO: argsz \(argsz) is below 16") }
            info.put32(4, dev.flags)
            info.put32(8, UInt32(dev.numRegions))
            info.put32(12, UInt32(dev.numIRQs))
            if argsz >= 20 { info.put32(16, 0) }      // no capabilities
            try mem.write(arg, info.raw)
            return .value(0)
        case Int(MDEVSIM_VFIO_DEVICE_GET_REGION_INFO):
            var info = Bytes(try mem.read(arg, 32))
            let argsz = Int(info.u32(0)), index = Int(info.u32(8))
            guard argsz >= 32 else { throw MigrationError(EINVAL, "VFIO_DEVICE_GET_REGION_INFO: argsz \(argsz) is below 32") }
            guard index < dev.numRegions, let r = dev.region(index) else {
                throw MigrationError(EINVAL, "VFIO_DEVICE_GET_REGION_INFO: the device has no region \(index)")
            }
            var caps = CapabilityChain()
            if !r.sparse.isEmpty {
                var s = Bytes(count: 8)
                s.put32(0, UInt32(r.sparse.count))
                for (i, a) in r.sparse.enumerated() {
                    s.put64(8 + 16 * i, UInt64(a.offset))
                    s.put64(16 + 16 * i, UInt64(a.size))
                }
                caps.add(id: UInt16(VFIO_REGION_INFO_CAP_SPARSE_MMAP), version: 1, s)
            }
            if let t = r.type {
                var b = Bytes(count: 8)
                b.put32(0, t.type)
                b.put32(4, t.subtype)
                caps.add(id: UInt16(VFIO_REGION_INFO_CAP_TYPE), version: 1, b)
            }
            let body = caps.bytes(base: 32)
            info.put32(4, r.flags | (caps.isEmpty ? 0 : UInt32(VFIO_REGION_INFO_FLAG_CAPS)))
            info.put64(16, UInt64(r.size))
            info.put64(24, UInt64(index) << VFIORegionOffset.shift)
            if caps.isEmpty || argsz < 32 + body.count {
                info.put32(0, UInt32(caps.isEmpty ? argsz : 32 + body.count))
                info.put32(12, 0)
            } else {
                info.put32(12, 32)
                info.raw += body
            }
            try mem.write(arg, info.raw)
            return .value(0)
        case Int(MDEVSIM_VFIO_DEVICE_GET_IRQ_INFO):
            var info = Bytes(try mem.read(arg, 16))
            let index = Int(info.u32(8))
            guard info.u32(0) >= 16 else { throw MigrationError(EINVAL, "VFIO_DEVICE_GET_IRQ_INFO: argsz \(info.u32(0)) is below 16") }
            guard index < dev.numIRQs, let q = dev.irq(index) else { throw MigrationError(EINVAL, "VFIO_DEVICE_GET_IRQ_INFO: IRQ index \(index) is not offered") }
            info.put32(4, q.flags)
            info.put32(12, UInt32(q.count))
            try mem.write(arg, info.raw)
            return .value(0)
        case Int(MDEVSIM_VFIO_DEVICE_SET_IRQS):
            return try setIRQs(d, arg, tgid, mem)
        case Int(MDEVSIM_VFIO_DEVICE_RESET):
            try dev.reset()
            return .value(0)
        case Int(MDEVSIM_VFIO_DEVICE_FEATURE):
            return try feature(d, arg, tgid, n, mem)
        default:
            // GET_PCI_HOT_RESET_INFO, IOEVENTFD, ...: kvmgt answers ENOTTY too.
            throw MigrationError(ENOTTY, "device ioctl 0x\(String(request, radix: 16))")
        }
    }

    func setIRQs(_ d: DeviceHandle, _ arg: UInt64, _ tgid: Int32, _ mem: CallerMemory) throws(MigrationError) -> Reply {
        let s = Bytes(try mem.read(arg, 20))
        let (argsz, flags, index, start, count) = (Int(s.u32(0)), s.u32(4), Int(s.u32(8)), Int(s.u32(12)), Int(s.u32(16)))
        guard argsz >= 20 else { throw MigrationError(EINVAL, "VFIO_DEVICE_SET_IRQS: argsz \(argsz) is below 20") }
        guard index < d.device.numIRQs, let q = d.device.irq(index) else { throw MigrationError(EINVAL, "VFIO_DEVICE_SET_IRQS: IRQ index \(index) is not offered") }
        let dataType = flags & 0x7, action = flags & 0x38
        guard dataType.nonzeroBitCount == 1, action.nonzeroBitCount == 1, flags & ~0x3f == 0 else {
            throw MigrationError(EINVAL, "VFIO_DEVICE_SET_IRQS: flags 0x\(String(flags, radix: 16)) need exactly one DATA_ and one ACTION_ flag")
        }
        guard count == 0 && dataType == UInt32(VFIO_IRQ_SET_DATA_NONE) || start + count <= q.count else {
            throw MigrationError(EINVAL, "VFIO_DEVICE_SET_IRQS: vectors \(start)..<\(start + count) exceed the \(q.count) of index \(index)")
        }
        let dataSize = dataType == UInt32(VFIO_IRQ_SET_DATA_EVENTFD) ? 4 * count : dataType == UInt32(VFIO_IRQ_SET_DATA_BOOL) ? count : 0
        guard argsz >= 20 + dataSize else { throw MigrationError(EINVAL, "VFIO_DEVICE_SET_IRQS: argsz \(argsz) leaves no room for \(dataSize) bytes of data") }
        let data = Bytes(try mem.read(arg + 20, dataSize))
        switch (action, dataType) {
        case (UInt32(VFIO_IRQ_SET_ACTION_TRIGGER), UInt32(VFIO_IRQ_SET_DATA_EVENTFD)):
            var fds: [Int32] = []
            for i in 0..<count {
                let theirs = data.i32(4 * i)
                if theirs < 0 { fds.append(-1); continue }
                let ours = mdevsim_pidfd_getfd(try pidfd(tgid), theirs)
                guard ours >= 0 else {
                    for fd in fds where fd >= 0 { close(fd) }
                    throw MigrationError(EBADF, "VFIO_DEVICE_SET_IRQS: cannot take eventfd \(theirs) of pid \(tgid): \(String(cString: strerror(-ours)))")
                }
                fds.append(ours)
            }
            d.setTriggers(index: index, start: start, fds)
        case (UInt32(VFIO_IRQ_SET_ACTION_TRIGGER), UInt32(VFIO_IRQ_SET_DATA_NONE)):
            if count == 0 { d.clearTriggers(index: index) } else { for v in start..<start + count { d.raise(index: index, vector: v) } }
        case (UInt32(VFIO_IRQ_SET_ACTION_TRIGGER), UInt32(VFIO_IRQ_SET_DATA_BOOL)):
            for i in 0..<count where data.raw[i] != 0 { d.raise(index: index, vector: start + i) }
        case (UInt32(VFIO_IRQ_SET_ACTION_MASK), _), (UInt32(VFIO_IRQ_SET_ACTION_UNMASK), _):
            // INTx's unmask may come as an eventfd (KVM's resampler); the device does not automask, so there is nothing to resample.
            guard index == Int(VFIO_PCI_INTX_IRQ_INDEX) else { throw MigrationError(EINVAL, "VFIO_DEVICE_SET_IRQS: only INTx can be masked") }
            if dataType != UInt32(VFIO_IRQ_SET_DATA_EVENTFD) {
                d.setMasked(index: index, start: start, count: max(count, 1), action == UInt32(VFIO_IRQ_SET_ACTION_MASK))
            }
        default:
            throw MigrationError(EINVAL, "VFIO_DEVICE_SET_IRQS: flags 0x\(String(flags, radix: 16)) are not supported")
        }
        return .value(0)
    }

    func feature(_ d: DeviceHandle, _ arg: UInt64, _ tgid: Int32, _ n: mdevsim_notif, _ mem: CallerMemory) throws(MigrationError) -> Reply {
        let head = Bytes(try mem.read(arg, 8))
        let (argsz, flags) = (Int(head.u32(0)), head.u32(4))
        let which = flags & UInt32(VFIO_DEVICE_FEATURE_MASK)
        let get = flags & UInt32(VFIO_DEVICE_FEATURE_GET) != 0, set = flags & UInt32(VFIO_DEVICE_FEATURE_SET) != 0
        let probe = flags & UInt32(VFIO_DEVICE_FEATURE_PROBE) != 0
        guard argsz >= 8 else { throw MigrationError(EINVAL, "VFIO_DEVICE_FEATURE: argsz \(argsz) is below 8") }
        guard let mig = d.device.migration, [UInt32(VFIO_DEVICE_FEATURE_MIGRATION), UInt32(VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE),
                                             UInt32(VFIO_DEVICE_FEATURE_MIG_DATA_SIZE)].contains(which) else {
            throw MigrationError(ENOTTY, "VFIO_DEVICE_FEATURE \(which) is not supported by \(d.device.name)")
        }
        let canGet = true, canSet = which == UInt32(VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE)
        if get && !canGet || set && !canSet { throw MigrationError(EINVAL, "VFIO_DEVICE_FEATURE \(which): \(set ? "SET" : "GET") is not supported") }
        if probe { return .value(0) }
        guard get != set else { throw MigrationError(EINVAL, "VFIO_DEVICE_FEATURE: exactly one of GET and SET") }
        switch which {
        case UInt32(VFIO_DEVICE_FEATURE_MIGRATION):
            guard argsz >= 16 else { throw MigrationError(EINVAL, "VFIO_DEVICE_FEATURE MIGRATION: argsz \(argsz) is below 16") }
            var b = Bytes(count: 8)
            b.put64(0, mig.features.rawValue)
            try mem.write(arg + 8, b.raw)
        case UInt32(VFIO_DEVICE_FEATURE_MIG_DATA_SIZE):
            guard argsz >= 16 else { throw MigrationError(EINVAL, "VFIO_DEVICE_FEATURE MIG_DATA_SIZE: argsz \(argsz) is below 16") }
            var b = Bytes(count: 8)
            b.put64(0, UInt64(try mig.stopCopyBytes()))
            try mem.write(arg + 8, b.raw)
        default:
            guard argsz >= 16 else { throw MigrationError(EINVAL, "VFIO_DEVICE_FEATURE MIG_DEVICE_STATE: argsz \(argsz) is below 16") }
            var s = Bytes(try mem.read(arg + 8, 8))
            if get {
                s.put32(0, mig.state.rawValue)
                try mem.write(arg + 8, s.raw)
                return .value(0)
            }
            guard let target = MigrationState(rawValue: s.u32(0)) else {
                throw MigrationError(EINVAL, "VFIO_DEVICE_FEATURE MIG_DEVICE_STATE: \(s.u32(0)) is not a state")
            }
            let before = mig.currentSession
            try mig.setState(target)
            var dataFD: Int32 = -1
            if let session = mig.currentSession, session != before {
                let file = EmulatedFile(.data(DataHandle(device: d, endpoint: mig, session: session)), memfd: try memfd("mdevsim-vfio-data", 0))
                dataFD = try inject(file, n, tgid: tgid, send: false)
            }
            s.put32(4, UInt32(bitPattern: dataFD))
            try mem.write(arg + 8, s.raw)
        }
        return .value(0)
    }

    // MARK: Region access, data_fd streams, mmap

    func regionAccess(_ file: EmulatedFile, write: Bool, buffer: UInt64, count: Int, offset: UInt64, _ mem: CallerMemory) throws(MigrationError) -> Reply {
        guard case .device(let d) = file.kind else { throw MigrationError(ESPIPE, "pread/pwrite on the emulated \(file.name)") }
        let (index, at) = VFIORegionOffset.split(offset)
        guard let r = d.device.region(index) else { throw MigrationError(EINVAL, "no region \(index) at offset 0x\(String(offset, radix: 16))") }
        let needed = write ? UInt32(VFIO_REGION_INFO_FLAG_WRITE) : UInt32(VFIO_REGION_INFO_FLAG_READ)
        guard r.flags & needed != 0 else { throw MigrationError(EINVAL, "region \(index) is not \(write ? "writable" : "readable")") }
        guard at <= r.extent else { throw MigrationError(EINVAL, "offset 0x\(String(at, radix: 16)) is beyond region \(index) (\(r.size) bytes)") }
        let n = min(count, r.extent - at)
        if n == 0 { return .value(0) }
        guard r.trapped else { return .proceed }     // plain memory: the kernel reads the memfd itself
        stats[write ? "region write" : "region read", default: 0] += 1
        let v1 = r.type.map { $0.type == UInt32(VFIO_REGION_TYPE_MIGRATION_DEPRECATED) && $0.subtype == UInt32(VFIO_REGION_SUBTYPE_MIGRATION_DEPRECATED) } == true
            && !r.sparse.isEmpty
        let v1Sync = v1 && at == 0x18 && n == 8
        if write {
            let bytes = try mem.read(buffer, n)
            // A VMM that did not map the data section writes it here: then the section's bytes
            // are already the device's, and the memfd's must not overwrite them.
            if v1 && at >= r.sparse[0].offset { d.sectionWritten = true }
            if v1Sync, d.sectionWritten {
                d.sectionWritten = false
            } else if v1Sync {
                // Resuming: the VMM filled the mapped data section; hand it to the device before data_size.
                try syncDataSection(d, index, r.sparse[0], size: Int(Bytes(bytes).u64(0)), toMapping: false)
            }
            let written = try d.device.writeBytes(region: index, offset: at, bytes)
            return .value(Int64(written))
        }
        let out = try d.device.readBytes(region: index, offset: at, count: n)
        if v1Sync {
            // Saving: data_size says a chunk is in the data section; copy it where the VMM has it mapped.
            try syncDataSection(d, index, r.sparse[0], size: Int(Bytes(out).u64(0)), toMapping: true)
        }
        try mem.write(buffer, out)
        return .value(Int64(out.count))
    }

    /// Copies `size` bytes between the device's v1 data section and the VMM's mapping of it
    /// (the device fd's memfd at the sparse area): to the mapping after a save's data_size,
    /// from it before a resume's. A size of 0 or beyond the area moves nothing (the device
    /// refuses such a data_size itself).
    func syncDataSection(_ d: DeviceHandle, _ index: Int, _ area: VFIORegion.SparseArea, size: Int, toMapping: Bool) throws(MigrationError) {
        guard size > 0, size <= area.size else { return }
        let at = off_t((UInt64(index) << VFIORegionOffset.shift) + UInt64(area.offset))
        let moved = d.device.withSection(region: index, offset: area.offset, count: size) {
            toMapping ? pwrite(d.memfd, $0.baseAddress, size, at) : pread(d.memfd, $0.baseAddress, size, at)
        }
        guard let moved else {
            throw MigrationError(EIO, "\(d.device.name) offers region \(index)'s data section for mapping but no direct access to it")
        }
        guard moved == size else {
            throw MigrationError(EIO, toMapping ? "cannot fill the mapped migration data section" : "cannot read the mapped migration data section")
        }
    }

    func stream(_ file: EmulatedFile, write: Bool, buffer: UInt64, count: Int, _ mem: CallerMemory) throws(MigrationError) -> Reply {
        guard case .data(let h) = file.kind else { throw MigrationError(EINVAL, "read/write on the emulated \(file.name): use pread/pwrite at a region's offset") }
        if write {
            let bytes = try mem.read(buffer, count)
            let n = bytes.withUnsafeBytes { b in Result { () throws(MigrationError) in try h.endpoint.write(session: h.session, bytes: b) } }
            return .value(Int64(try n.get()))
        }
        var got = 0
        var failure: MigrationError?
        try h.endpoint.read(session: h.session, offset: h.offset, size: min(count, 1 << 20)) { bytes in
            do throws(MigrationError) { try mem.write(buffer, bytes) } catch { failure = error }
            got = bytes.count
        }
        if let failure { throw failure }
        h.offset += got
        return .value(Int64(got))
    }

    func mmap(_ file: EmulatedFile, length: UInt64, flags: UInt64, offset: UInt64) throws(MigrationError) -> Reply {
        guard case .device(let d) = file.kind else { throw MigrationError(ENODEV, "mmap of the emulated \(file.name)") }
        let (index, at) = VFIORegionOffset.split(offset)
        guard let r = d.device.region(index), r.flags & UInt32(VFIO_REGION_INFO_FLAG_MMAP) != 0 else {
            throw MigrationError(EINVAL, "mmap at offset 0x\(String(offset, radix: 16)): region \(index) cannot be mapped (it has no MMAP flag)")
        }
        guard flags & UInt64(MAP_SHARED) != 0 else { throw MigrationError(EINVAL, "mmap of region \(index) must be MAP_SHARED") }
        let end = at + Int(length)
        let inside = r.sparse.isEmpty ? end <= r.size : r.sparse.contains { at >= $0.offset && end <= $0.offset + $0.size }
        guard inside else { throw MigrationError(EINVAL, "mmap of region \(index) at 0x\(String(at, radix: 16))+0x\(String(length, radix: 16)) is outside its mappable areas") }
        return .proceed
    }
}
