import CVFIO
import Foundation
import GPUModel
import Migration

/// What VFIO_DEVICE_GET_INFO, GET_REGION_INFO and GET_IRQ_INFO would report
/// for a vGPU, as JSON for `vfio/<uuid>/info`. Values come from <linux/vfio.h>.
struct DeviceInfo: Encodable {
    struct Region: Encodable {
        let index: Int
        let name: String
        let size: Int
        let flags: [String]
        let flagsValue: UInt32
        let file: String?
        var type: UInt32? = nil
        var subtype: UInt32? = nil
        /// VFIO_REGION_INFO_CAP_SPARSE_MMAP: the parts of the region that can be mapped.
        var sparseMmap: [SparseArea]? = nil
        struct SparseArea: Encodable { let offset: Int; let size: Int }
        enum CodingKeys: String, CodingKey { case index, name, size, flags, flagsValue = "flags_value", file, type, subtype, sparseMmap = "sparse_mmap" }
    }
    struct IRQ: Encodable {
        let index: Int
        let name: String
        let count: Int
        let flags: [String]
        let flagsValue: UInt32
        enum CodingKeys: String, CodingKey { case index, name, count, flags, flagsValue = "flags_value" }
    }

    let uuid: String
    let deviceAPI = "vfio-pci"
    let flags: [String]
    let flagsValue: UInt32
    let numRegions: Int
    let numIRQs: Int
    var regions: [Region]
    let irqs: [IRQ]
    /// IRQ indices whose VFIO_DEVICE_GET_IRQ_INFO is EINVAL: kvmgt answers only INTx and MSI.
    let irqInfoEINVAL: [Int]

    enum CodingKeys: String, CodingKey {
        case uuid, deviceAPI = "device_api", flags, flagsValue = "flags_value", numRegions = "num_regions"
        case numIRQs = "num_irqs", regions, irqs, irqInfoEINVAL = "irq_info_einval"
    }

    /// BAR2 is the host's whole aperture with the vGPU's slice of low GM as its one
    /// mappable area, as kvmgt reports it (CAPS | MMAP, VFIO_REGION_INFO_CAP_SPARSE_MMAP).
    init(uuid: String, bar0Size: Int, apertureSize: Int, apertureSlice: (offset: Int, size: Int), migrationRegion: Int?) {
        self.uuid = uuid
        flagsValue = UInt32(VFIO_DEVICE_FLAGS_PCI) | UInt32(VFIO_DEVICE_FLAGS_RESET)
        flags = ["VFIO_DEVICE_FLAGS_PCI", "VFIO_DEVICE_FLAGS_RESET"]
        numRegions = Int(VFIO_PCI_NUM_REGIONS) + 2 + (migrationRegion == nil ? 0 : 1)
        numIRQs = Int(VFIO_PCI_NUM_IRQS)
        let rw = UInt32(VFIO_REGION_INFO_FLAG_READ) | UInt32(VFIO_REGION_INFO_FLAG_WRITE)
        let mmap = rw | UInt32(VFIO_REGION_INFO_FLAG_MMAP)
        func names(_ v: UInt32) -> [String] {
            [(UInt32(VFIO_REGION_INFO_FLAG_READ), "READ"), (UInt32(VFIO_REGION_INFO_FLAG_WRITE), "WRITE"),
             (UInt32(VFIO_REGION_INFO_FLAG_MMAP), "MMAP")].filter { v & $0.0 != 0 }.map(\.1)
        }
        regions = [
            Region(index: Int(VFIO_PCI_BAR0_REGION_INDEX), name: "BAR0", size: bar0Size, flags: names(rw), flagsValue: rw, file: "regions/bar0"),
            Region(index: Int(VFIO_PCI_BAR2_REGION_INDEX), name: "BAR2", size: apertureSize, flags: names(mmap), flagsValue: mmap, file: nil,
                   sparseMmap: [Region.SparseArea(offset: apertureSlice.offset, size: apertureSlice.size)]),
            Region(index: Int(VFIO_PCI_CONFIG_REGION_INDEX), name: "CONFIG", size: ConfigSpace.size, flags: names(rw), flagsValue: rw, file: "regions/config"),
        ]
        if let migrationRegion {
            // A device-specific region with the v1 migration type/subtype capability.
            // Its data section can be mapped (so a VMM moves the data without a trap per 8 bytes);
            // the header above it is trapped.
            regions.append(Region(index: Int(VFIO_PCI_NUM_REGIONS), name: "MIGRATION", size: migrationRegion, flags: names(mmap),
                                  flagsValue: mmap, file: "regions/migration", type: UInt32(VFIO_REGION_TYPE_MIGRATION_DEPRECATED),
                                  subtype: UInt32(VFIO_REGION_SUBTYPE_MIGRATION_DEPRECATED),
                                  sparseMmap: [Region.SparseArea(offset: V1Region.dataOffset, size: migrationRegion - V1Region.dataOffset)]))
        }
        // kvmgt's device-specific regions: the IGD OpRegion (read-only).
        regions.append(Region(index: Int(VFIO_PCI_NUM_REGIONS) + (migrationRegion == nil ? 0 : 1), name: "OPREGION", size: OpRegion.size,
                              flags: names(UInt32(VFIO_REGION_INFO_FLAG_READ)), flagsValue: UInt32(VFIO_REGION_INFO_FLAG_READ),
                              file: "regions/opregion", type: UInt32(truncatingIfNeeded: VFIO_REGION_TYPE_PCI_VENDOR_TYPE) | 0x8086,   // (1 << 31) imports as a negative Int32
                              subtype: UInt32(VFIO_REGION_SUBTYPE_INTEL_IGD_OPREGION)))
        // kvmgt_set_edid: the EDID of the vGPU's virtual monitor (VFIO_REGION_TYPE_GFX / GFX_EDID), read-write.
        regions.append(Region(index: Int(VFIO_PCI_NUM_REGIONS) + (migrationRegion == nil ? 1 : 2), name: "EDID", size: EDIDRegion.reportedSize,
                              flags: names(rw), flagsValue: rw, file: "regions/edid", type: UInt32(VFIO_REGION_TYPE_GFX),
                              subtype: UInt32(VFIO_REGION_SUBTYPE_GFX_EDID)))
        let intx = UInt32(VFIO_IRQ_INFO_EVENTFD) | UInt32(VFIO_IRQ_INFO_MASKABLE) | UInt32(VFIO_IRQ_INFO_AUTOMASKED)
        let msi = UInt32(VFIO_IRQ_INFO_EVENTFD) | UInt32(VFIO_IRQ_INFO_NORESIZE)
        irqs = [
            IRQ(index: Int(VFIO_PCI_INTX_IRQ_INDEX), name: "INTX", count: 1, flags: ["EVENTFD", "MASKABLE", "AUTOMASKED"], flagsValue: intx),
            IRQ(index: Int(VFIO_PCI_MSI_IRQ_INDEX), name: "MSI", count: 1, flags: ["EVENTFD", "NORESIZE"], flagsValue: msi),
        ]
        // intel_vgpu_ioctl(VFIO_DEVICE_GET_IRQ_INFO): any index but INTx and MSI is -EINVAL.
        irqInfoEINVAL = [Int(VFIO_PCI_MSIX_IRQ_INDEX), Int(VFIO_PCI_ERR_IRQ_INDEX), Int(VFIO_PCI_REQ_IRQ_INDEX)]
    }

    var json: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try! encoder.encode(self), as: UTF8.self) + "\n"
    }
}
