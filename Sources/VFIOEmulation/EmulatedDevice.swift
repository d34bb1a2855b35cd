import Migration

/// One VFIO region as VFIO_DEVICE_GET_REGION_INFO reports it.
public struct VFIORegion: Sendable, Equatable {
    public let index: Int
    public let size: Int
    /// VFIO_REGION_INFO_FLAG_READ / WRITE / MMAP (CAPS is added when capabilities follow).
    public let flags: UInt32
    /// VFIO_REGION_INFO_CAP_TYPE, when the region has one.
    public let type: (type: UInt32, subtype: UInt32)?
    /// VFIO_REGION_INFO_CAP_SPARSE_MMAP areas (offset, size) within the region; empty: all of an MMAP region.
    public let sparse: [SparseArea]
    /// Served by the device (pread/pwrite reach `EmulatedVFIODevice.read/write`); otherwise the
    /// region is plain memory shared with the caller's mappings.
    public let trapped: Bool
    /// How far a trapped access may reach: `size` but for a region whose device serves
    /// bytes beyond what it reports (kvmgt's EDID region reports 128 bytes, its block is at 0x800).
    public let extent: Int

    public struct SparseArea: Sendable, Equatable {
        public let offset: Int
        public let size: Int
        public init(offset: Int, size: Int) {
            self.offset = offset
            self.size = size
        }
    }

    public init(index: Int, size: Int, flags: UInt32, type: (type: UInt32, subtype: UInt32)? = nil, sparse: [SparseArea] = [], trapped: Bool,
                extent: Int? = nil) {
        self.index = index
        self.size = size
        self.extent = max(size, extent ?? size)
        self.flags = flags
        self.type = type
        self.sparse = sparse
        self.trapped = trapped
    }

    public static func == (a: VFIORegion, b: VFIORegion) -> Bool {
        a.index == b.index && a.size == b.size && a.flags == b.flags && a.type?.type == b.type?.type
            && a.type?.subtype == b.type?.subtype && a.sparse == b.sparse && a.trapped == b.trapped && a.extent == b.extent
    }
}

/// One interrupt index as VFIO_DEVICE_GET_IRQ_INFO reports it.
public struct VFIOIRQ: Sendable, Equatable {
    public let index: Int
    public let count: Int
    public let flags: UInt32
    public init(index: Int, count: Int, flags: UInt32) {
        self.index = index
        self.count = count
        self.flags = flags
    }
}

/// Where a device's interrupts go: the emulation signals the eventfds the VMM
/// gave with VFIO_DEVICE_SET_IRQS. `raise` is called by the device whenever
/// its interrupt line asserts (INTx) or a message is sent (MSI).
public protocol InterruptSink: AnyObject, Sendable {
    func raise(index: Int, vector: Int)
}

/// What the VFIO emulation needs of a device: the uAPI's view of it, with no
/// knowledge of how the device is modelled. A simulated vGPU is one
/// (`VFIOView`); tests can make others.
public protocol EmulatedVFIODevice: AnyObject, Sendable {
    /// The name VFIO_GROUP_GET_DEVICE_FD takes (an mdev's UUID).
    var name: String { get }
    var iommuGroup: Int { get }
    /// The vfio cdev minor (`/dev/vfio/devices/vfio<N>`).
    var cdevMinor: Int { get }
    /// VFIO_DEVICE_FLAGS_*.
    var flags: UInt32 { get }
    var numRegions: Int { get }
    var numIRQs: Int { get }
    func region(_ index: Int) -> VFIORegion?
    /// nil: GET_IRQ_INFO of that index is EINVAL.
    func irq(_ index: Int) -> VFIOIRQ?
    /// A trapped region's bytes; returns the count read.
    func read(region: Int, offset: Int, into buffer: UnsafeMutableRawBufferPointer) throws(MigrationError) -> Int
    func write(region: Int, offset: Int, _ bytes: UnsafeRawBufferPointer) throws(MigrationError) -> Int
    /// Direct access to a trapped region's bytes at `offset`: a device that offers a v1
    /// data section as a sparse-mmap area must give it (nil: it keeps no such bytes).
    func withSection(region: Int, offset: Int, count: Int, _ body: (UnsafeMutableRawBufferPointer) -> Int) -> Int?
    /// VFIO_DEVICE_RESET.
    func reset() throws(MigrationError)
    /// The v2 migration uAPI (VFIO_DEVICE_FEATURE); nil for a device without it.
    var migration: (any MigrationEndpoint)? { get }
    /// Called when the VMM opens the device: its interrupts go to `sink` from now on.
    func setInterruptSink(_ sink: (any InterruptSink)?)
    /// Called when that open device is closed (ignored if another open replaced it since).
    func clearInterruptSink(_ sink: any InterruptSink)
}

/// The devices a VFIO emulation offers, looked up when a process opens them.
public protocol VFIOBackend: AnyObject, Sendable {
    /// The devices of IOMMU group `group` (empty: no such group).
    func devices(inGroup group: Int) -> [any EmulatedVFIODevice]
    func device(cdevMinor: Int) -> (any EmulatedVFIODevice)?
}

extension EmulatedVFIODevice {
    public func withSection(region: Int, offset: Int, count: Int, _ body: (UnsafeMutableRawBufferPointer) -> Int) -> Int? { nil }

    /// `count` bytes of a trapped region (fewer at its end).
    func readBytes(region: Int, offset: Int, count: Int) throws(MigrationError) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        let got = out.withUnsafeMutableBytes { b in Result { () throws(MigrationError) in try read(region: region, offset: offset, into: b) } }
        out.removeLast(count - (try got.get()))
        return out
    }

    func writeBytes(region: Int, offset: Int, _ bytes: [UInt8]) throws(MigrationError) -> Int {
        try bytes.withUnsafeBytes { b in Result { () throws(MigrationError) in try write(region: region, offset: offset, b) } }.get()
    }
}
