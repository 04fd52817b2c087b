import CDirectorShim
import DirectorSync
import DirectorWire
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Checks every real server that has a health check, on a thread of its own (off the workers'
/// CPUs when the host has CPUs to spare), with all checks in flight at once under one poll(2):
/// a server that never answers costs its own timeout, never another check's turn, the control
/// socket's or the sync thread's. A server is up at start (as keepalived has it), goes down
/// after `fall` failures in a row and comes back after `rise` successes in a row; each change
/// goes to the `start` call's `onChange` (on this thread).
final class HealthChecker: @unchecked Sendable {
    struct Target: Sendable, Equatable {
        var key: HealthKey
        var check: HealthCheck
    }

    /// One server's checks as an operator reads them (`director services`).
    struct Status: Sendable {
        var isUp = true
        /// Monotonic milliseconds of the last change (or of the first check).
        var since: UInt64
        var lastOutcome = "not checked yet"
        var passed: UInt64 = 0
        var failed: UInt64 = 0
        /// Successes (while down) or failures (while up) in a row.
        var streak = 0
    }

    let statuses = Mutex<[HealthKey: Status]>([:])
    /// Checks passed and failed since start, for `director stats`.
    let passedTotal = Atomic<UInt64>(0)
    let failedTotal = Atomic<UInt64>(0)
    private let wanted = Mutex<[Target]?>(nil)
    private let stopping = Atomic<Bool>(false)
    private var thread = DaemonThread(name: "health checks")
    private let device: String
    let cpu: Int?
    /// Set once, before the thread starts.
    private var onChange: @Sendable (HealthKey, _ isUp: Bool, _ why: String) -> Void = { _, _, _ in }

    /// `device`: the interface the checks leave by; `cpu`: where the thread runs (nil: anywhere).
    init(device: String, cpu: Int?) {
        self.device = device
        self.cpu = cpu
    }

    /// The servers to check from now on (a reload or a live change calls it again). A server
    /// kept keeps its state; a check that changed starts over at once.
    func check(_ targets: [Target]) {
        wanted.withLock { $0 = targets }
    }

    /// The CPU the checks' thread runs on: the first of `cpuCount` that no worker (nor the sync
    /// thread) has; nil when every one is taken (it then runs where the scheduler puts it).
    static func spareCPU(of cpuCount: Int, busy: [Int]) -> Int? {
        (0..<cpuCount).first { !busy.contains($0) }
    }

    func start(onChange: @escaping @Sendable (HealthKey, _ isUp: Bool, _ why: String) -> Void) {
        self.onChange = onChange
        thread.start { self.run() }
    }

    func stop() {
        stopping.store(true, ordering: .relaxed)
        thread.join()
    }

    private struct Scheduled {
        var target: Target
        var nextDue: UInt64
        var probe: HealthProbe?
    }

    private func run() {
        DaemonThread.placeCurrent("health checker", cpu: cpu, realtimePriority: 0, riskIfRefused: "")
        var scheduled: [HealthKey: Scheduled] = [:]
        var pollSet: [pollfd] = []
        var polled: [HealthKey] = []
        while !stopping.load(ordering: .relaxed) {
            var now = director_monotonic_nanoseconds() / 1_000_000
            if let targets = wanted.withLock({ value in defer { value = nil }; return value }) {
                replace(&scheduled, with: targets, now: now)
            }
            // Start what is due.
            for (key, entry) in scheduled where entry.probe == nil && entry.nextDue <= now {
                let probe = HealthProbe(entry.target.check, address: key.serverAddress, port: key.serverPort, device: device, now: now)
                scheduled[key]!.nextDue = now + entry.target.check.intervalMilliseconds
                if let outcome = probe.early {
                    record(outcome, for: entry.target, now: now)
                } else {
                    scheduled[key]!.probe = probe
                }
            }
            // Wait for sockets, the next deadline or the next check, 50 ms at most (programs are
            // looked at on every pass).
            pollSet.removeAll(keepingCapacity: true)
            polled.removeAll(keepingCapacity: true)
            var wake = now + 50
            for (key, entry) in scheduled {
                wake = min(wake, entry.probe?.deadline ?? entry.nextDue)
                guard let probe = entry.probe, probe.descriptor >= 0 else { continue }
                pollSet.append(pollfd(fd: probe.descriptor, events: probe.pollEvents, revents: 0))
                polled.append(key)
            }
            let timeout = Int32(clamping: wake > now ? wake - now : 0)
            _ = pollSet.withUnsafeMutableBufferPointer { poll($0.baseAddress, nfds_t($0.count), timeout) }
            now = director_monotonic_nanoseconds() / 1_000_000
            var events: [HealthKey: Int16] = [:]
            for (index, key) in polled.enumerated() where pollSet[index].revents != 0 { events[key] = pollSet[index].revents }
            for (key, entry) in scheduled {
                guard let probe = entry.probe else { continue }
                var outcome = probe.advance(events: events[key] ?? 0)
                if outcome == nil, now >= probe.deadline { outcome = probe.expire() }
                guard let outcome else { continue }
                scheduled[key]!.probe = nil
                record(outcome, for: entry.target, now: now)
            }
        }
        for entry in scheduled.values { entry.probe?.cancel() }
    }

    private func replace(_ scheduled: inout [HealthKey: Scheduled], with targets: [Target], now: UInt64) {
        let keys = Set(targets.map(\.key))
        for (key, entry) in scheduled where !keys.contains(key) {
            entry.probe?.cancel()
            scheduled[key] = nil
        }
        statuses.withLock { statuses in statuses = statuses.filter { keys.contains($0.key) } }
        for target in targets {
            if let entry = scheduled[target.key], entry.target == target { continue }
            scheduled[target.key]?.probe?.cancel()
            scheduled[target.key] = Scheduled(target: target, nextDue: now, probe: nil)
            statuses.withLock { statuses in
                if statuses[target.key] == nil { statuses[target.key] = Status(since: now) }
                statuses[target.key]!.streak = 0
            }
        }
    }

    private func record(_ outcome: HealthProbe.Outcome, for target: Target, now: UInt64) {
        if outcome == .passed { passedTotal.add(1, ordering: .relaxed) } else { failedTotal.add(1, ordering: .relaxed) }
        let change: (isUp: Bool, why: String)? = statuses.withLock { statuses in
            guard var status = statuses[target.key] else { return nil }
            defer { statuses[target.key] = status }
            switch outcome {
            case .passed:
                status.passed += 1
                status.lastOutcome = "passed"
                status.streak = status.isUp ? 0 : status.streak + 1
                guard !status.isUp, status.streak >= target.check.rise else { return nil }
                status.isUp = true
                status.streak = 0
                status.since = now
                return (true, "\(target.check.rise) \(target.check.probe.name) check(s) passed in a row")
            case .failed(let why):
                status.failed += 1
                status.lastOutcome = why
                status.streak = status.isUp ? status.streak + 1 : 0
                guard status.isUp, status.streak >= target.check.fall else { return nil }
                status.isUp = false
                status.streak = 0
                status.since = now
                return (false, "\(target.check.fall) \(target.check.probe.name) check(s) failed in a row, the last: \(why)")
            }
        }
        if let change { onChange(target.key, change.isUp, change.why) }
    }
}
