import Foundation
import Synchronization

/// SIGINT, SIGTERM and SIGHUP during a long tool (migrate, record, replay):
/// the tool stops at its next chunk or step and takes its failure path, so
/// the source device ends RUNNING and a half-loaded destination is reset,
/// instead of dying with both devices mid-protocol.
public enum Interruption {
    static let received = Atomic<Int32>(0)

    /// Routes the signals to `check()`. For the CLI's process only.
    public static func install() {
        var set = sigset_t()
        sigemptyset(&set)
        for sig in [SIGINT, SIGTERM, SIGHUP] {
            signal(sig) { Interruption.received.store($0, ordering: .relaxed) }
            sigaddset(&set, sig)
        }
        // A parent may have left them blocked (a thread pool's mask is inherited through fork/exec).
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
    }

    /// Throws once a signal has arrived; the exit code is 128 + its number, as a shell reports it.
    public static func check() throws {
        let sig = received.load(ordering: .relaxed)
        guard sig != 0 else { return }
        let name = sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : sig == SIGHUP ? "SIGHUP" : "signal \(sig)"
        throw ToolError("interrupted by \(name)", exitCode: 128 + sig)
    }
}
