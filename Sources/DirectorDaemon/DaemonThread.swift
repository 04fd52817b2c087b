import CDirectorShim
#if canImport(Glibc)
import Glibc
#endif

/// A thread of the daemon's own (sync, liveness, control, maintenance): started with a body,
/// joined on stop. The body keeps what it captures alive until it returns.
struct DaemonThread {
    private var handle: pthread_t?
    /// What `top -H`, `ps -L` and /proc/<pid>/task/<tid>/comm call it (15 bytes at most).
    let name: String

    init(name: String) { self.name = name }

    private final class Body {
        let run: () -> Void
        init(_ run: @escaping () -> Void) { self.run = run }
    }

    /// pthread_create(3) running `body`.
    mutating func start(_ body: @escaping () -> Void) {
        let name = self.name
        let box = Unmanaged.passRetained(Body {
            _ = director_name_current_thread(name)
            body()
        })
        var thread = pthread_t()
        let result = pthread_create(&thread, nil, { argument in
            Unmanaged<Body>.fromOpaque(argument!).takeRetainedValue().run()
            return nil
        }, box.toOpaque())
        guard result == 0 else {
            box.release()
            Log.error("pthread_create failed (errno \(result)): a thread of the director did not start")
            return
        }
        handle = thread
    }

    /// pthread_join(3), once; nothing if the thread never started.
    mutating func join() {
        if let handle { pthread_join(handle, nil) }
        handle = nil
    }

    /// Pins the calling thread to `cpu` (when given) and gives it SCHED_FIFO at `realtimePriority`
    /// (when above 0), logging what the system refuses and what that risks.
    static func placeCurrent(_ name: String, cpu: Int?, realtimePriority: Int, riskIfRefused: String) {
        if let cpu, director_pin_current_thread(Int32(cpu)) != 0 {
            Log.warning("\(name): could not pin to CPU \(cpu)")
        }
        guard realtimePriority > 0 else { return }
        let result = director_make_current_thread_realtime(Int32(realtimePriority))
        if result != 0 {
            Log.warning("\(name): SCHED_FIFO \(realtimePriority) refused (\(String(cString: strerror(result)))); \(riskIfRefused)")
        }
    }
}
