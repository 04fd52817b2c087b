#if canImport(Glibc)
import Glibc
#endif

/// How a thread that reads a sync socket waits for its next turn.
///
/// Woken by each datagram, a thread under a flood of them (forged datagrams from the peer's own
/// address pass every check the kernel can make) wakes once per datagram: a context switch and a
/// poll each, about 5 µs here, and the sync and liveness threads together then kept their CPU busy
/// with realtime work all the time. The kernel gives realtime threads at most 95 % of a CPU per
/// second (`kernel.sched_rt_runtime_us`) and runs the other threads for the rest: the liveness
/// thread waited 25 ms at once on the run queue in one run, a heartbeat left 35 ms late in
/// another (the peer's death window is 50 ms by default), and the peer declared a living
/// dispatcher dead.
///
/// So once a turn finds the socket busy (it read many, or stopped at its budget with more
/// waiting), the next wait is a plain sleep for the turn and the datagrams that came meanwhile are
/// read in one go; a quiet socket still wakes its reader at once. The price: while busy, a
/// datagram waits up to a turn to be read (the liveness thread's turn is the heartbeat interval,
/// one fifth of the default death window).
public struct ReceivePacing {
    /// Datagrams read in one turn that mark the socket busy: the liveness socket carries one
    /// heartbeat per interval, the sync socket a few records per turn outside a snapshot.
    public static let busyAfter = 16

    public private(set) var busy = false

    public init() {}

    /// What the last turn read, and whether it emptied the socket.
    public mutating func noteRead(_ datagrams: Int, drained: Bool) {
        busy = !drained || datagrams >= ReceivePacing.busyAfter
    }

    /// Until `nanoseconds` have passed, or, while the socket is quiet, until a datagram arrives.
    public func wait(for socket: borrowing SyncSocket, nanoseconds: UInt64) {
        guard busy else {
            socket.wait(timeoutNanoseconds: nanoseconds)
            return
        }
        var interval = timespec(tv_sec: Int(nanoseconds / 1_000_000_000), tv_nsec: Int(nanoseconds % 1_000_000_000))
        _ = nanosleep(&interval, nil)
    }
}
