#if canImport(Glibc)
import Glibc
#endif

/// A vGPU's graphics memory: one contiguous mapping of all its frames,
/// reserved, not committed (the kernel gives a page on its first write), with a
/// bitmap of the frames ever written. An idle vGPU holds no mapping and no
/// bitmap at all; both come with the first written frame. Pages are copied in
/// and out by pointer, one memcpy each: no array or dictionary entry per page.
///
/// Not synchronised: the owning `Hardware` is mutated only under its `VGPU`'s
/// lock. A `Hardware` copy shares the store (copies are read, or replace the
/// device's hardware whole, as a resume does).
public final class PageStore: @unchecked Sendable {
    public let frames: Int
    private var base: UnsafeMutableRawPointer?
    /// Pages allocated one by one: only when the kernel refuses the reservation (strict
    /// overcommit, vm.overcommit_memory=2, does not honour MAP_NORESERVE), so such a host
    /// gets the old per-page cost instead of a daemon that stops.
    private var loose: [UInt32: UnsafeMutableRawPointer] = [:]
    private let mayReserve: Bool
    private var started = false
    /// The written-frame bitmap in chunks of 4096 words (1 GiB of frames each), made on first use.
    private var present: [UnsafeMutablePointer<UInt64>?] = []
    private static let chunkWords = 4096
    public private(set) var count = 0

    /// `reserve: false` keeps pages one by one from the start (what a refused reservation does).
    public init(frames: Int, reserve: Bool = true) {
        self.frames = frames
        mayReserve = reserve
    }

    deinit {
        if let base { munmap(base, frames * GPULayout.pageSize) }
        for p in loose.values { p.deallocate() }
        for c in present { c?.deallocate() }
    }

    private var words: Int { (frames + 63) / 64 }

    /// Whether the frames live in one reserved mapping (else one allocation each).
    public var isReserved: Bool { base != nil }

    /// Reserves the mapping on first use (address space only), or falls back to loose pages.
    private func ensure() -> UnsafeMutableRawPointer? {
        if started { return base }
        started = true
        present = Array(repeating: nil, count: (words + PageStore.chunkWords - 1) / PageStore.chunkWords)
        guard mayReserve else { return nil }
        let p = mmap(nil, max(frames, 1) * GPULayout.pageSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
        if let p, p != MAP_FAILED { base = p }
        return base
    }

    public func contains(_ frame: UInt32) -> Bool {
        let w = Int(frame) >> 6
        guard Int(frame) < frames, w / PageStore.chunkWords < present.count, let chunk = present[w / PageStore.chunkWords] else { return false }
        return chunk[w % PageStore.chunkWords] & (1 << (UInt64(frame) & 63)) != 0
    }

    private func chunk(_ i: Int) -> UnsafeMutablePointer<UInt64> {
        if let c = present[i] { return c }
        let c = UnsafeMutablePointer<UInt64>.allocate(capacity: PageStore.chunkWords)
        c.initialize(repeating: 0, count: PageStore.chunkWords)
        present[i] = c
        return c
    }

    /// A written frame's bytes (valid until the store is mutated or freed), or nil.
    public func page(_ frame: UInt32) -> UnsafeRawBufferPointer? {
        guard contains(frame) else { return nil }
        let start = base.map { $0 + Int(frame) * GPULayout.pageSize } ?? loose[frame]
        return UnsafeRawBufferPointer(start: start, count: GPULayout.pageSize)
    }

    /// A copy of a written frame: for tests and tools.
    public subscript(frame: UInt32) -> [UInt8]? { page(frame).map(Array.init) }

    /// The frame's bytes to write (zero if never written), marked written.
    public func withMutablePage<R>(_ frame: UInt32, _ body: (UnsafeMutableRawBufferPointer) -> R) -> R {
        precondition(Int(frame) < frames, "frame \(frame) is beyond the store's \(frames)")
        let base = ensure()
        let w = Int(frame) >> 6, bit: UInt64 = 1 << (UInt64(frame) & 63)
        let c = chunk(w / PageStore.chunkWords)
        if c[w % PageStore.chunkWords] & bit == 0 { c[w % PageStore.chunkWords] |= bit; count += 1 }
        let start: UnsafeMutableRawPointer
        if let base {
            start = base + Int(frame) * GPULayout.pageSize
        } else if let p = loose[frame] {
            start = p
        } else {
            start = UnsafeMutableRawPointer.allocate(byteCount: GPULayout.pageSize, alignment: GPULayout.pageSize)
            start.initializeMemory(as: UInt8.self, repeating: 0, count: GPULayout.pageSize)
            loose[frame] = start
        }
        return body(UnsafeMutableRawBufferPointer(start: start, count: GPULayout.pageSize))
    }

    /// Written frames in ascending order.
    public var writtenFrames: [UInt32] {
        var out: [UInt32] = []
        out.reserveCapacity(count)
        for (i, chunk) in present.enumerated() {
            guard let chunk else { continue }
            for k in 0..<PageStore.chunkWords {
                var bits = chunk[k]
                while bits != 0 {
                    out.append(UInt32((i * PageStore.chunkWords + k) * 64 + bits.trailingZeroBitCount))
                    bits &= bits - 1
                }
            }
        }
        return out
    }
}
