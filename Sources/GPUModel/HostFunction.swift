import Synchronization

/// The physical GPU's own PCI function, 00:02.0 of a Kaby Lake GT2 host, as
/// the kernel and i915 see it: the capability list of a real HD 630
/// ([40] vendor specific, [70] PCI Express RCiEP, [ac] MSI, [d0] power
/// management; PASID, ATS and PRI from 0x100), the graphics registers i915
/// reads from config space (GMCH control at 0x50, which sizes the GGTT; BDSM
/// at 0x5c; ASLS, the OpRegion address, at 0xfc), BAR0 (GTTMMADR, 16 MiB),
/// BAR2 (GMADR, the whole aperture), BAR4 (I/O). 4096 bytes, as for any PCI
/// Express function; bits are writable where hardware's are, so setpci works.
///
/// Offsets and fields: include/uapi/linux/pci_regs.h, i915's intel_gtt.h and
/// gen8_gmch_probe() (drivers/gpu/drm/i915/gt/intel_ggtt.c), i915_reg.h.
public enum HostFunction {
    public struct IDs: Sendable, Equatable {
        public var vendor: UInt16, device: UInt16, subsystemVendor: UInt16, subsystemDevice: UInt16
        public var revision: UInt8, classCode: UInt32
        public init(vendor: UInt16, device: UInt16, subsystemVendor: UInt16, subsystemDevice: UInt16, revision: UInt8, classCode: UInt32) {
            (self.vendor, self.device, self.subsystemVendor, self.subsystemDevice, self.revision, self.classCode)
                = (vendor, device, subsystemVendor, subsystemDevice, revision, classCode)
        }
    }

    public static let size = 4096
    public static let bar0Size = 16 << 20          // GTTMMADR: 2 MiB MMIO, 8 MiB GGTT, the rest reserved
    public static let bar4Size = 64                // I/O: MMIO_INDEX/MMIO_DATA
    /// Where the BARs sit, below 4 GiB (BAR2 aligned for apertures up to 2 GiB).
    public static let bar0Address: UInt64 = 0xf600_0000
    public static let bar2Address: UInt64 = 0x8000_0000
    public static let bar4Address: UInt32 = 0xf000
    /// The INTx line firmware routed (sysfs `irq` shows the same).
    public static let interruptLine = 16

    /// Capability offsets of the real device.
    public enum Capability {
        public static let vendorSpecific = 0x40, express = 0x70, msi = 0xac, powerManagement = 0xd0
        public static let pasid = 0x100, ats = 0x200, pri = 0x300
    }

    /// i915's config-space registers (i915_reg.h, intel_gtt.h).
    public enum Register {
        /// SNB_GMCH_CTRL: bits 15:8 GMS (stolen memory, 32 MiB units), 7:6 GGMS (GGTT size: 1 << GGMS MiB), bit 0 lock.
        public static let gmchControl = 0x50
        /// BDSM: base of data stolen memory, bit 0 lock.
        public static let baseOfStolen = 0x5c
        /// ASLS: ACPI OpRegion address (software writes it).
        public static let opRegion = 0xfc
    }

    /// The GMCH control word for a GGTT of `ggttBytes` (1, 2, 4 or 8 MiB of PTEs: 1, 2, 3 or... 1 << GGMS MiB)
    /// and `stolenMB` of stolen memory, locked as firmware leaves it.
    public static func gmchControl(ggttBytes: Int, stolenMB: Int) -> UInt16 {
        var ggms: UInt16 = 0
        while (1 << (20 + Int(ggms))) < ggttBytes && ggms < 3 { ggms += 1 }
        if ggttBytes > 0 && ggms == 0 { ggms = 1 }
        return UInt16(stolenMB / 32) << 8 | (ggms & 3) << 6 | 1
    }

    /// The function's config space with its write masks. `apertureBytes` is a power of two.
    public static func configSpace(ids: IDs, apertureBytes: UInt64, ggttBytes: Int, stolenMB: Int = 64) -> ConfigSpace {
        var b = [UInt8](repeating: 0, count: size)
        var w = [UInt8](repeating: 0, count: size)
        var c = [UInt8](repeating: 0, count: size)
        func put(_ o: Int, _ v: UInt64, _ n: Int) { for i in 0..<n { b[o + i] = UInt8((v >> (8 * UInt64(i))) & 0xff) } }
        func mask(_ m: inout [UInt8], _ o: Int, _ v: UInt64, _ n: Int) { for i in 0..<n { m[o + i] = UInt8((v >> (8 * UInt64(i))) & 0xff) } }

        put(0x00, UInt64(ids.vendor), 2)
        put(0x02, UInt64(ids.device), 2)
        put(0x04, 0x0007, 2); mask(&w, 0x04, 0x0547, 2)       // I/O, memory, bus master on; parity, SERR, INTx disable writable
        put(0x06, 0x0010, 2); mask(&c, 0x06, 0xf900, 2)       // capabilities list; error bits RW1C
        b[0x08] = ids.revision
        put(0x09, UInt64(ids.classCode), 3)
        mask(&w, 0x0c, 0xff, 1)                                // cache line size
        put(0x10, bar0Address | 0x4, 8)                        // 64-bit memory
        put(0x18, bar2Address | 0xc, 8)                        // 64-bit prefetchable
        put(0x20, UInt64(bar4Address) | 0x1, 4)                // I/O
        put(0x2c, UInt64(ids.subsystemVendor), 2)
        put(0x2e, UInt64(ids.subsystemDevice), 2)
        b[0x34] = UInt8(Capability.vendorSpecific)
        b[0x3c] = UInt8(interruptLine); mask(&w, 0x3c, 0xff, 1) // interrupt line, as firmware routed it
        b[0x3d] = 0x01                                         // INTA#

        // [40] Vendor specific (Intel capability identification): id 9, length 12.
        b[0x40] = 0x09; b[0x41] = UInt8(Capability.express); b[0x42] = 0x0c; b[0x43] = 0x01
        put(Register.gmchControl, UInt64(gmchControl(ggttBytes: ggttBytes, stolenMB: stolenMB)), 2)
        put(Register.baseOfStolen, 0x7b80_0001, 4)
        // [70] PCI Express v2, Root Complex Integrated Endpoint; function level reset.
        let e = Capability.express
        b[e] = 0x10; b[e + 1] = UInt8(Capability.msi)
        put(e + 2, 0x0092, 2)                                   // version 2, type 9
        put(e + 4, 0x1000_0000, 4)                              // DevCap: FLReset+
        mask(&w, e + 8, 0x7cff, 2)                              // DevCtl (initiate FLR is bit 15: self-clearing, not kept)
        mask(&c, e + 10, 0x000f, 2)                             // DevSta error bits RW1C
        // [ac] MSI, 32-bit address, one vector.
        let m = Capability.msi
        b[m] = 0x05; b[m + 1] = UInt8(Capability.powerManagement)
        mask(&w, m + 2, 0x0001, 2); mask(&w, m + 4, 0xffff_fffc, 4); mask(&w, m + 8, 0xffff, 2)
        // [d0] Power management v2; D0 with PME_En and the power state writable.
        let pm = Capability.powerManagement
        b[pm] = 0x01; b[pm + 1] = 0x00
        put(pm + 2, 0x0022, 2)
        mask(&w, pm + 4, 0x0103, 2); mask(&c, pm + 4, 0x8000, 2)
        // ASLS: the OpRegion's address, written by firmware and by a VMM's guest.
        put(Register.opRegion, 0x7ae3_d018, 4); mask(&w, Register.opRegion, 0xffff_ffff, 4)
        // Extended capabilities: PASID (1b), ATS (0f), PRI (13).
        put(Capability.pasid, 0x001b | 1 << 16 | UInt64(Capability.ats) << 20, 4)
        put(Capability.pasid + 4, 0x1400, 2)                   // max PASID width 20
        mask(&w, Capability.pasid + 6, 0x0007, 2)
        put(Capability.ats, 0x000f | 1 << 16 | UInt64(Capability.pri) << 20, 4)
        put(Capability.ats + 4, 0x0020, 2)                     // invalidate queue depth 0, page aligned
        mask(&w, Capability.ats + 6, 0x801f, 2)
        put(Capability.pri, 0x0013 | 1 << 16, 4)
        mask(&w, Capability.pri + 4, 0x0003, 2)
        put(Capability.pri + 8, 0x0000_8000, 4)                // outstanding page request capacity
        mask(&w, Capability.pri + 12, 0xffff_ffff, 4)

        var bars = [UInt32](repeating: 0, count: 6)
        let m0 = ~UInt64(bar0Size - 1), m2 = ~(apertureBytes - 1)
        bars[0] = UInt32(m0 & 0xffff_fff0); bars[1] = UInt32(m0 >> 32)
        bars[2] = UInt32(m2 & 0xffff_fff0); bars[3] = UInt32(m2 >> 32)
        bars[4] = ~UInt32(bar4Size - 1) & 0xffff_fffc
        return ConfigSpace(bytes: b, writable: w, clearOnOne: c, barMasks: bars)
    }

    /// A vGPU's config space as GVT-g builds it from the host's
    /// (`intel_vgpu_init_cfg_space()`, drivers/gpu/drm/i915/gvt/cfg_space.c): the
    /// host function's 4096 bytes with no stolen memory in GMCH (GMS cleared),
    /// BAR2 preset to the host aperture's address, I/O, memory and bus master
    /// off, the upper BAR halves, BAR4/5, ASLS and the ROM BAR cleared for the
    /// guest to assign. BAR0 and BAR2 size as the host's: 16 MiB and the aperture.
    public static func vgpuConfigSpace(_ g: VGPUGeometry) -> ConfigSpace {
        // vGPUs of one host share one template: its byte arrays (4 of 4096 bytes) are
        // copied only when a vGPU's config is written, the masks never.
        let key = TemplateKey(vendor: g.vendorID, device: g.deviceID, subsystemVendor: g.subsystemVendorID, subsystem: g.subsystemID,
                              revision: g.revision, aperture: g.apertureBytes, gmSpace: g.gmSpaceBytes)
        if let made = templates.withLock({ $0[key] }) { return made }
        let made = buildVGPUConfigSpace(g)
        templates.withLock { if $0.count < 64 { $0[key] = made } }
        return made
    }

    struct TemplateKey: Hashable {
        let vendor: UInt16, device: UInt16, subsystemVendor: UInt16, subsystem: UInt16, revision: UInt8, aperture: UInt64, gmSpace: UInt64
    }
    static let templates = Mutex<[TemplateKey: ConfigSpace]>([:])

    static func buildVGPUConfigSpace(_ g: VGPUGeometry) -> ConfigSpace {
        let ids = IDs(vendor: g.vendorID, device: g.deviceID, subsystemVendor: g.subsystemVendorID,
                      subsystemDevice: g.subsystemID, revision: g.revision, classCode: 0x030000)
        let host = configSpace(ids: ids, apertureBytes: g.apertureBytes, ggttBytes: g.ggttSpaceEntries * GPULayout.pteSize, stolenMB: 0)
        var b = host.bytes
        func put(_ o: Int, _ v: UInt64, _ n: Int) { for i in 0..<n { b[o + i] = UInt8((v >> (8 * UInt64(i))) & 0xff) } }
        put(0x18, bar2Address | 0xc, 4)
        b[0x04] &= ~0x07
        put(0x14, 0, 4); put(0x1c, 0, 4); put(0x20, 0, 8)
        put(Register.opRegion, 0, 4)
        put(0x30, 0, 4)
        var bars = host.barMasks
        bars[0] = UInt32(~UInt64(GPULayout.bar0Size(for: g) - 1) & 0xffff_fff0)
        bars[4] = 0; bars[5] = 0
        return ConfigSpace(bytes: b, writable: host.writable, clearOnOne: host.clearOnOne, barMasks: bars)
    }

    /// BAR sizes of the host function, for sysfs `resource` and `resourceN`.
    public static func bars(apertureBytes: UInt64) -> [(index: Int, address: UInt64, size: UInt64, flags: UInt64)] {
        // IORESOURCE_MEM 0x200, _IO 0x100, _PREFETCH 0x2000, _MEM_64 0x100000, _SIZEALIGN 0x40000 (include/linux/ioport.h).
        [(0, bar0Address, UInt64(bar0Size), 0x0014_0204),
         (2, bar2Address, apertureBytes, 0x0014_220c),
         (4, UInt64(bar4Address), UInt64(bar4Size), 0x0004_0101)]
    }
}
