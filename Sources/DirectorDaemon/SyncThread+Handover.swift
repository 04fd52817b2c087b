import CDirectorShim
import DirectorCore
import DirectorSync

/// A bucket handover being carried out by the sync thread, one step per turn: nothing in it
/// waits, so the turn stays short whatever the workers are doing.
///
/// Releasing buckets:
///   1. `changingFilter`: every worker's kernel filter stops accepting them (retried on failure,
///      given up after `filterAttempts`: the buckets stay this side's);
///   2. `waitingForWorkers`: each worker comes round its loop twice, so every frame it held of
///      those buckets has been processed and its changes are in its ring;
///   3. `waitingForReports`: the sync thread has taken every report pushed until then, so the
///      peer hears of each change before it hears `released`.
/// Taking buckets:
///   1. `waitingForBacklogs`: every record of the peer's handed to the workers' rings;
///   2. `waitingForWorkers`: each worker has applied what its ring held;
///   3. `changingFilter`: the filters accept the buckets (retried; given up: they go back to the
///      peer, which takes what nobody accepts).
/// A worker that does not come round within `workerWait` is not waited for any longer (its
/// frames of those buckets are the peer's to carry from then on): the handover completes late
/// rather than never.
struct HandoverInProgress {
    enum Direction { case release, take }
    enum Stage { case waitingForBacklogs, changingFilter, waitingForWorkers, waitingForReports }

    let direction: Direction
    let buckets: BucketOwnership
    var stage: Stage
    /// When the workers stopped accepting released buckets (monotonic ns).
    var stoppedAt: UInt64 = 0
    var filterAttempts = 0
    /// Per worker, the loop count to pass (stage `waitingForWorkers`), or the reports pushed to
    /// take (stage `waitingForReports`).
    var marks: [Int] = []
    var stageStartedAt: UInt64

    static let maximumFilterAttempts = 5
    static let workerWait: UInt64 = 50_000_000
}

extension SyncThread {
    // MARK: - Starting

    func beginRelease(_ buckets: BucketOwnership) {
        handover = HandoverInProgress(direction: .release, buckets: buckets, stage: .changingFilter, stageStartedAt: director_monotonic_nanoseconds())
        continueHandover()
    }

    func beginTake(_ buckets: BucketOwnership) {
        handover = HandoverInProgress(direction: .take, buckets: buckets, stage: .waitingForBacklogs, stageStartedAt: director_monotonic_nanoseconds())
        continueHandover()
    }

    // MARK: - A step per turn

    /// Carries the handover in progress as far as it can go now: a stage whose condition already
    /// holds is passed in the same turn.
    func continueHandover() {
        if takeAllPending { takeAll() }
        if releaseAllPending { releaseAll() }
        for _ in 0..<4 where advanceHandover() {}
    }

    /// One stage of the handover in progress; true if it moved on (or ended).
    private func advanceHandover() -> Bool {
        guard var step = handover else { return false }
        let now = director_monotonic_nanoseconds()
        switch (step.direction, step.stage) {
        case (.take, .waitingForBacklogs):
            guard backlogsAreEmpty else { return false }
            enter(.waitingForWorkers, &step, now: now)
        case (_, .changingFilter):
            let target = step.direction == .release ? director.currentOwnership.subtracting(step.buckets)
                                                     : director.currentOwnership.union(step.buckets)
            if applyOwnership(target, attempt: &step.filterAttempts) {
                if step.direction == .release {
                    step.stoppedAt = now
                    enter(.waitingForWorkers, &step, now: now)
                } else {
                    finishTake(step.buckets)
                    return true
                }
            } else if step.filterAttempts >= HandoverInProgress.maximumFilterAttempts {
                giveUp(step)
                return true
            } else {
                handover = step
                return false
            }
        case (_, .waitingForWorkers):
            let behind = workers.indices.filter { Int(truncatingIfNeeded: workers[$0].iterations.load(ordering: .acquiring)) < step.marks[$0] }
            if !behind.isEmpty {
                guard now - step.stageStartedAt >= HandoverInProgress.workerWait else {
                    for index in behind { workers[index].link?.wakeup.ring() }
                    return false
                }
                Log.warning("sync: worker(s) \(behind.map(String.init).joined(separator: ", ")) did not come round within "
                    + "\(HandoverInProgress.workerWait / 1_000_000) ms of the \(step.direction == .release ? "release" : "take"); going on without them")
            }
            enter(step.direction == .release ? .waitingForReports : .changingFilter, &step, now: now)
        case (.release, .waitingForReports):
            // The reports are taken by the turn's drain, before this step.
            let done = workers.indices.allSatisfy { (workers[$0].link?.outbound.consumed ?? 0) >= step.marks[$0] }
            guard done || now - step.stageStartedAt >= HandoverInProgress.workerWait else { return false }
            handover = nil
            session.didRelease(step.buckets, stoppedAt: step.stoppedAt, now: now, wallClock: director_realtime_nanoseconds())
            sendDatagrams()
            Log.info("sync: released buckets \(step.buckets.description) to the peer")
            return true
        case (.release, .waitingForBacklogs), (.take, .waitingForReports):
            // Not stages of these directions.
            enter(.changingFilter, &step, now: now)
        }
        handover = step
        return true
    }

    /// Moves a handover to `stage`, taking the marks that stage waits for.
    private func enter(_ stage: HandoverInProgress.Stage, _ step: inout HandoverInProgress, now: UInt64) {
        step.stage = stage
        step.stageStartedAt = now
        switch stage {
        case .waitingForWorkers:
            // Twice round: the iteration under way when the mark is taken may have begun before
            // the filter changed or the records were handed over.
            step.marks = workers.map { Int(truncatingIfNeeded: $0.iterations.load(ordering: .acquiring)) + 2 }
            for worker in workers { worker.link?.wakeup.ring() }
        case .waitingForReports:
            step.marks = workers.map { $0.link?.outbound.produced ?? 0 }
        case .waitingForBacklogs, .changingFilter:
            step.marks = []
        }
    }

    private func finishTake(_ buckets: BucketOwnership) {
        handover = nil
        local.tookBucketsAt = director_monotonic_nanoseconds()
        session.didTake(buckets, now: director_monotonic_nanoseconds(), wallClock: director_realtime_nanoseconds())
        sendDatagrams()
        // Client packets of these buckets that arrived in the gap were dropped by both sides.
        for index in workers.indices { hand(.probeReplicas(buckets, nextHop: session.peerClientNextHop), to: index) }
        for worker in workers { worker.link?.wakeup.ring() }
        Log.info("sync: took buckets \(buckets.description) from the peer")
    }

    private func giveUp(_ step: HandoverInProgress) {
        handover = nil
        let now = director_monotonic_nanoseconds()
        switch step.direction {
        case .release:
            session.releaseFailed(step.buckets, now: now)
            Log.error("sync: could not stop accepting buckets \(step.buckets.description) after \(step.filterAttempts) attempts; keeping them for now")
        case .take:
            session.takeFailed(step.buckets, now: now, wallClock: director_realtime_nanoseconds())
            sendDatagrams()
            Log.error("sync: could not accept buckets \(step.buckets.description) after \(step.filterAttempts) attempts; handed them back to the peer")
        }
    }

    /// One attempt at making `target` the workers' ownership; counts and logs a failure.
    private func applyOwnership(_ target: BucketOwnership, attempt: inout Int) -> Bool {
        attempt += 1
        do {
            try director.setOwnership(target)
            return true
        } catch {
            Log.error("sync: changing the ownership filter failed (attempt \(attempt)): \(error)")
            return false
        }
    }

    // MARK: - Every bucket, and faults

    /// Serves every bucket (the peer died or never came). Retried every turn until the filters
    /// take it: with no peer, no one else would serve them.
    func takeAll() {
        let all = BucketOwnership.all(director.configuration.bucketCount)
        if director.currentOwnership != all {
            do {
                try director.setOwnership(all)
            } catch {
                let now = director_monotonic_nanoseconds()
                if now - lastFilterRetryLog >= 1_000_000_000 {
                    lastFilterRetryLog = now
                    Log.error("sync: taking every bucket failed: \(error); retrying every turn")
                }
                return
            }
        }
        takeAllPending = false
        director.setAnswersARP(true)
        director.announceVirtualAddresses()
        local.tookAllAt = director_monotonic_nanoseconds()
    }

    /// This dispatcher became unfit to serve (`fault`), or fit again (nil). Unfit with a live
    /// peer, it stops accepting every bucket at once: its heartbeats are withheld, the peer
    /// declares it dead and takes everything. Fit again, it asks for its share back through the
    /// ordinary handover, or takes everything if the peer is gone.
    func enterOrLeaveFault(_ fault: String?) {
        guard let fault else {
            Log.info("sync: fit to serve again")
            releaseAllPending = false
            session.setFault(false)
            return
        }
        session.setFault(true)
        handover = nil
        takeAllPending = false
        guard session.peer == .alive else {
            Log.warning("sync: \(fault); no live peer to take over, so this dispatcher keeps its buckets")
            return
        }
        Log.warning("sync: \(fault); stops accepting every bucket for the peer to take")
        releaseAllPending = true
        releaseAll()
    }

    /// Stops accepting every bucket (in fault, beside a live peer); retried every turn until the
    /// filters take it, or until the peer is no longer alive to take them (then this side keeps
    /// them, as it would have had the peer been dead at the fault).
    private func releaseAll() {
        guard session.peer == .alive else {
            releaseAllPending = false
            Log.warning("sync: the peer is no longer alive; this dispatcher keeps its buckets")
            return
        }
        do {
            try director.setOwnership(.none(director.configuration.bucketCount))
            releaseAllPending = false
        } catch {
            let now = director_monotonic_nanoseconds()
            if now - lastFilterRetryLog >= 1_000_000_000 {
                lastFilterRetryLog = now
                Log.error("sync: releasing every bucket failed: \(error); retrying every turn")
            }
        }
    }
}
