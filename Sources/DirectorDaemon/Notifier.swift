import CDirectorShim
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Runs the configured notify command once per event, with the event's words appended
/// (`peer dead 2`, `buckets taken 0-511`, `server down tcp:198.18.0.100:80 198.18.2.12:80`), as
/// keepalived runs its notify scripts. On a thread of its own, one event at a time, in order:
/// nothing that announces an event ever waits for the command. A command that runs longer than
/// `timeout` is killed; a failure is logged; past `queueLimit` waiting events the oldest are
/// dropped (and counted in the log).
final class Notifier: @unchecked Sendable {
    static let queueLimit = 256

    private let command = Mutex<[String]?>(nil)
    private let queue = Mutex<(events: [[String]], dropped: Int)>(([], 0))
    private let stopping = Atomic<Bool>(false)
    private var thread = DaemonThread(name: "notifier")
    /// Commands run and commands that failed (non-zero, killed, or not started), for `stats`.
    let ran = Atomic<UInt64>(0)
    let failed = Atomic<UInt64>(0)

    /// A command still running after this long is killed.
    let timeoutMilliseconds: UInt64

    init(command: [String]?, timeoutMilliseconds: UInt64 = 10_000) {
        self.timeoutMilliseconds = timeoutMilliseconds
        self.command.withLock { $0 = command }
    }

    /// The command from now on (a reload may change it); whether it differs from the last.
    @discardableResult
    func use(_ new: [String]?) -> Bool {
        command.withLock { command in
            defer { command = new }
            return command != new
        }
    }

    func start() { thread.start { self.run() } }

    func stop() {
        stopping.store(true, ordering: .relaxed)
        thread.join()
    }

    /// Queues `words` for the command (nothing, when none is configured).
    func notify(_ words: [String]) {
        guard command.withLock({ $0 != nil }) else { return }
        queue.withLock { queue in
            queue.events.append(words)
            if queue.events.count > Notifier.queueLimit {
                queue.events.removeFirst()
                queue.dropped += 1
            }
        }
    }

    private func run() {
        while !stopping.load(ordering: .relaxed) {
            let (events, dropped) = queue.withLock { queue in
                defer { queue = ([], 0) }
                return queue
            }
            if dropped > 0 { Log.warning("notify: \(dropped) event(s) dropped: more than \(Notifier.queueLimit) were waiting for the command") }
            if events.isEmpty { usleep(20_000) }
            for event in events {
                guard let command = command.withLock({ $0 }) else { break }
                run(command, event)
            }
        }
    }

    private func run(_ command: [String], _ event: [String]) {
        ran.add(1, ordering: .relaxed)
        let described = (command + event).joined(separator: " ")
        let process: ChildProcess
        do {
            process = try ChildProcess(command + event)
        } catch {
            failed.add(1, ordering: .relaxed)
            Log.error("notify: \(error)")
            return
        }
        let deadline = director_monotonic_nanoseconds() / 1_000_000 + timeoutMilliseconds
        var status = process.exitStatus()
        while status == .running, director_monotonic_nanoseconds() / 1_000_000 < deadline {
            usleep(5_000)
            status = process.exitStatus()
        }
        switch status {
        case .exited(0):
            break
        case .running:
            process.kill()
            failed.add(1, ordering: .relaxed)
            Log.error("notify: \(described) still ran after \(timeoutMilliseconds) ms and was killed")
        case .exited(let code):
            failed.add(1, ordering: .relaxed)
            Log.error("notify: \(described) failed (exit status \(code))")
        case .killed(let signal):
            failed.add(1, ordering: .relaxed)
            Log.error("notify: \(described) failed (killed by signal \(signal))")
        }
    }
}
