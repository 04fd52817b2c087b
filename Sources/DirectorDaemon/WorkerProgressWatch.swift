/// Whether every worker comes round its loop: the liveness thread's judgment of its dispatcher's
/// data path, apart from the thread, so that it runs on made-up loop counts and clocks in tests.
/// A worker whose loop count has not moved for `stallLimit` is stalled: a living but silent data
/// path, which the liveness thread answers by withholding the heartbeats.
struct WorkerProgressWatch {
    let stallLimit: UInt64
    /// Per worker: its loop count when last seen to move, and when (monotonic ns).
    private var progress: [(iterations: UInt64, at: UInt64)]

    init(iterations: [UInt64], now: UInt64, stallLimit: UInt64) {
        self.stallLimit = stallLimit
        progress = iterations.map { ($0, now) }
    }

    /// The watcher itself did not run for `pause` ns longer than it meant to (it woke that late).
    /// No worker could be seen to move meanwhile, and in a process stopped whole (SIGSTOP, a
    /// frozen VM) the workers could not move either: that time does not count against them.
    /// A worker that was stuck before the pause is found stuck as long after it.
    mutating func watcherWasPaused(for pause: UInt64) {
        for index in progress.indices { progress[index].at &+= pause }
    }

    /// The first worker that has not moved for `stallLimit`, and how long it has not, given each
    /// worker's loop count now (`iterations(index)`); nil if every worker moves.
    mutating func stalledWorker(now: UInt64, iterations: (Int) -> UInt64) -> (index: Int, milliseconds: UInt64)? {
        for index in progress.indices {
            let count = iterations(index)
            if count != progress[index].iterations {
                progress[index] = (count, now)
            } else if now > progress[index].at, now - progress[index].at >= stallLimit {
                return (index, (now - progress[index].at) / 1_000_000)
            }
        }
        return nil
    }
}
