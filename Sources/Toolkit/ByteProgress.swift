import Foundation

/// Progress of a long transfer by bytes: a line at most every half second
/// ("stop-and-copy: 412.0 MB so far, 803 MB/s"), so a user watching a large
/// device move sees it move, not only when an iteration ends.
final class ByteProgress {
    let report: ((String) -> Void)?
    var label: String
    private var bytes = 0
    private let started = Date()
    private var last = Date()
    /// Seconds between lines (`MDEVSIM_PROGRESS_INTERVAL` overrides it, for tests).
    static let interval = ProcessInfo.processInfo.environment["MDEVSIM_PROGRESS_INTERVAL"].flatMap(Double.init) ?? 0.5

    init(_ report: ((String) -> Void)?, label: String = "") {
        self.report = report
        self.label = label
    }

    func add(_ n: Int) {
        bytes += n
        guard let report, Date().timeIntervalSince(last) >= ByteProgress.interval else { return }
        last = Date()
        let seconds = max(last.timeIntervalSince(started), 1e-6)
        report(String(format: "%@: %.1f MB so far, %.0f MB/s", label, Double(bytes) / 1e6, Double(bytes) / 1e6 / seconds))
    }
}
