import CFuse
import Dispatch
import Glibc
import Synchronization
import VirtualFS

/// Sends the kernel the entry invalidations of removed nodes, and holds back
/// the replies that must not overtake them.
///
/// `fuse_lowlevel_notify_inval_entry` waits for the kernel to lock the parent
/// directory, and a lookup in that directory holds the lock while it waits
/// for this daemon's answer. Sent from a request handler, or under any lock a
/// handler can take (the bus lock around a remove), it deadlocks as soon as
/// the other workers are busy (libfuse's header forbids exactly that). So the
/// tree's removal callback only queues; one thread of its own sends, holding
/// no lock; and a request whose handler queued removals (the write to
/// `remove`) gets its reply from that thread after them, so the removed entry
/// is gone from the kernel's cache before the writer's write(2) returns,
/// without a worker waiting for it.
final class Invalidator: Sendable {
    private struct Session: @unchecked Sendable { let se: OpaquePointer }
    private let session: Session
    private let queue = DispatchQueue(label: "mdevsim.invalidate")
    /// Removals queued and not yet sent. Read without the queue by replies.
    private let pending = Atomic<Int>(0)

    init(session se: OpaquePointer) {
        session = Session(se: se)
    }

    /// The tree's removal callback: never blocks.
    func enqueue(_ removals: [Tree.Removal]) {
        pending.add(removals.count, ordering: .sequentiallyConsistent)
        let session = self.session
        queue.async { [self] in
            for r in removals {
                _ = r.name.withCString { fuse_lowlevel_notify_inval_entry(session.se, fuse_ino_t(r.parent), $0, strlen($0)) }
            }
            pending.subtract(removals.count, ordering: .sequentiallyConsistent)
        }
    }

    /// Runs `reply` now when nothing is queued, otherwise after everything
    /// queued so far has been sent (the queue is first in, first out).
    func afterPending(_ reply: @escaping @Sendable () -> Void) {
        if pending.load(ordering: .sequentiallyConsistent) == 0 {
            reply()
        } else {
            queue.async(execute: reply)
        }
    }

    /// Waits for every queued invalidation and reply.
    func drain() { queue.sync {} }
}

/// A request handle carried to the invalidation thread; libfuse lets any
/// thread reply, once.
struct PendingRequest: @unchecked Sendable {
    let req: fuse_req_t?
}
