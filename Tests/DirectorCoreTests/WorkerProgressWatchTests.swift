@testable import DirectorDaemon
import Testing

@Suite("Worker progress watch")
struct WorkerProgressWatchTests {
    static let millisecond: UInt64 = 1_000_000

    @Test("a worker whose loop count stands still for the stall limit is stalled; one that moves is not")
    func stallFound() {
        let ms = WorkerProgressWatchTests.millisecond
        var counts: [UInt64] = [10, 20]
        var watch = WorkerProgressWatch(iterations: counts, now: 0, stallLimit: 300 * ms)
        counts[0] = 11
        #expect(watch.stalledWorker(now: 200 * ms) { counts[$0] } == nil)
        counts[0] = 12
        let stalled = watch.stalledWorker(now: 300 * ms) { counts[$0] }
        #expect(stalled?.index == 1 && stalled?.milliseconds == 300, "worker 1 stood still from 0 to 300 ms")
        counts[1] = 21
        #expect(watch.stalledWorker(now: 310 * ms) { counts[$0] } == nil, "moving again")
    }

    @Test("a pause of the watcher's own (the process stopped whole) does not count against workers that could not run either; a worker stuck before it is found stuck as long after it")
    func ownPauseExcused() {
        let ms = WorkerProgressWatchTests.millisecond
        var counts: [UInt64] = [10, 20]
        var watch = WorkerProgressWatch(iterations: counts, now: 0, stallLimit: 300 * ms)
        counts[1] = 21
        #expect(watch.stalledWorker(now: 200 * ms) { counts[$0] } == nil)
        // Stopped at 210 ms for a second: the watcher wakes 1,000 ms late and neither worker moved.
        watch.watcherWasPaused(for: 1_000 * ms)
        #expect(watch.stalledWorker(now: 1_210 * ms) { counts[$0] } == nil, "the stop is not the workers' stall")
        // Worker 0 had not moved since 0 ms: 100 ms after the thaw it has stood still 300 ms of running time.
        let stalled = watch.stalledWorker(now: 1_300 * ms) { counts[$0] }
        #expect(stalled?.index == 0 && stalled?.milliseconds == 300)
    }
}
