import GPUModel
import StateStream

/// Checks what a stream's records say, as a resume would, without a device:
/// `verify` and `inspect` call a blob sound only when a device of the kind
/// its header names would load it. A checksum proves the bytes arrived as
/// written; this proves they can be a device's state (every register value
/// one the register can hold, GGTT entries mapping the vGPU's own frames,
/// pages inside its memory, a workload a guest could be in).
public struct ContentCheck {
    private var loader: ImageLoader
    private var geometry: VGPUGeometry
    private var records = 0
    /// The aperture assumed without a destination: the default host's 1 GiB, or the
    /// smallest power of two holding the low GM if that is larger.
    public static func aperture(lowGMBytes: UInt64) -> UInt64 { GPULayout.aperture(holding: lowGMBytes, atLeast: 1 << 30) }

    /// Throws when the header does not say what device it is from: without
    /// low_gm_mb, high_gm_mb and fences nothing can be checked.
    public init(header: StreamHeader) throws(StreamError) {
        let p = Dictionary(header.parameters.map { ($0.name, $0.value) }, uniquingKeysWith: { a, _ in a })
        guard let low = p["low_gm_mb"].flatMap(UInt64.init), let high = p["high_gm_mb"].flatMap(UInt64.init),
              let fences = p["fences"].flatMap(Int.init), low <= 1 << 20, high <= 1 << 20, fences <= 1 << 20 else {
            throw StreamError(offset: 0, "the header names no device geometry (low_gm_mb, high_gm_mb, fences); "
                                 + "its records cannot be checked")
        }
        let dims = (p["resolution"] ?? "").split(separator: "x").compactMap { Int($0) }
        // Without a destination, the GM bases the guest carries are checked against the
        // default host's aperture (1 GiB) and gen9's 4 GiB GGTT space.
        geometry = VGPUGeometry(lowGMBytes: low << 20, highGMBytes: high << 20, fences: fences,
                                width: dims.first ?? 1920, height: dims.count > 1 ? dims[1] : 1200,
                                apertureBytes: ContentCheck.aperture(lowGMBytes: low << 20))
        loader = ImageLoader(geometry: geometry, keepsPages: false)
    }

    /// Checks one record; throws the first thing a device would refuse.
    public mutating func check(_ type: RecordType, _ payload: ArraySlice<UInt8>, at offset: Int) throws(StreamError) {
        defer { records += 1 }
        // The stream's own PCI ids stand for the destination's: a config record
        // is checked for what no device could hold, not for another device's ids.
        if type == .config, records == 0, payload.count >= 0x30 {
            let b = Array(payload)
            func u16(_ o: Int) -> UInt16 { UInt16(b[o]) | UInt16(b[o + 1]) << 8 }
            geometry.vendorID = u16(0); geometry.deviceID = u16(2)
            geometry.subsystemVendorID = u16(0x2c); geometry.subsystemID = u16(0x2e); geometry.revision = b[8]
            loader = ImageLoader(geometry: geometry, keepsPages: false)
        }
        do throws(LoadError) { try loader.apply(type, payload) } catch {
            throw StreamError(offset: offset, error.message)
        }
    }

    /// At the end record: a device image needs its config and workload.
    public func finish(at offset: Int) throws(StreamError) {
        guard loader.sawConfig && loader.sawWorkload else {
            throw StreamError(offset: offset, "stream has no config or workload record; it is not a complete device image")
        }
    }
}
