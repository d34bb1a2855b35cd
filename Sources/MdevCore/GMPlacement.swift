/// Where a vGPU's graphics memory sits in its parent's GGTT address space, as
/// GVT-g's `alloc_vgpu_gm()` places it (drivers/gpu/drm/i915/gvt/aperture_gm.c):
/// low GM inside the aperture, lowest hole first (`PIN_MAPPABLE`), high GM in
/// the hidden range after the aperture, highest hole first (`PIN_HIGH`). The
/// host's own reserve sits at the bottom of each range. The guest reads these
/// bases from PVINFO (`vgt_if.avail_rs`), and BAR2's mappable area is the low
/// slice of the aperture.
public struct GMPlacement: Sendable, Hashable {
    /// Byte offsets in the GGTT address space (0 = start of the aperture).
    public var lowBase: UInt64
    public var highBase: UInt64
    public init(lowBase: UInt64, highBase: UInt64) { (self.lowBase, self.highBase) = (lowBase, highBase) }
}

/// The allocated ranges of one parent, in MB, kept sorted by start.
struct GMRanges: Sendable {
    var low: [(start: Int, size: Int)] = []
    var high: [(start: Int, size: Int)] = []

    /// A placement for `lowMB` and `highMB` within the parent's ranges, or nil when there is
    /// none: GVT-g fails the create with -ENOSPC when no hole is large enough, even if the
    /// totals that `available_instances` counts would fit (fragmentation).
    func place(lowMB: Int, highMB: Int, _ p: ParentConfig) -> GMPlacement? {
        guard let low = GMRanges.lowestHole(low, size: lowMB, from: p.hostLowGMMB, to: p.apertureMB),
              let high = GMRanges.highestHole(high, size: highMB, from: p.apertureMB + p.hostHighGMMB, to: p.apertureMB + p.hiddenMB)
        else { return nil }
        return GMPlacement(lowBase: UInt64(low) << 20, highBase: UInt64(high) << 20)
    }

    mutating func insert(_ at: GMPlacement, lowMB: Int, highMB: Int) {
        let (l, h) = (Int(at.lowBase >> 20), Int(at.highBase >> 20))
        low.insert((l, lowMB), at: low.firstIndex { $0.start > l } ?? low.endIndex)
        high.insert((h, highMB), at: high.firstIndex { $0.start > h } ?? high.endIndex)
    }

    mutating func remove(_ at: GMPlacement) {
        let (l, h) = (Int(at.lowBase >> 20), Int(at.highBase >> 20))
        if let i = low.firstIndex(where: { $0.start == l }) { low.remove(at: i) }
        if let i = high.firstIndex(where: { $0.start == h }) { high.remove(at: i) }
    }

    static func lowestHole(_ used: [(start: Int, size: Int)], size: Int, from: Int, to: Int) -> Int? {
        var at = from
        for r in used where r.start + r.size > from {
            if r.start - at >= size { break }
            at = max(at, r.start + r.size)
        }
        return at + size <= to ? at : nil
    }

    static func highestHole(_ used: [(start: Int, size: Int)], size: Int, from: Int, to: Int) -> Int? {
        var end = to
        for r in used.reversed() where r.start < to {
            if end - (r.start + r.size) >= size { break }
            end = min(end, r.start)
        }
        return end - size >= from ? end - size : nil
    }
}
