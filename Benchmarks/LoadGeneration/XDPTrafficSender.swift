import CFastPath
import DirectorWire
import Foundation
import PacketIO
import TrafficGeneratorProgram

/// The generator's XDP program (`traffic_generator.bpf.c`) loaded into the kernel for one plan of
/// established flows: the template frame it starts from is `FrameSynthesizer`'s, and the frames
/// it makes are the synthesizer's, byte for byte but the stamp's time.
public final class XDPTrafficProgram {
    public let plan: TrafficPlan
    private let object: OpaquePointer
    private let program: Int32
    private let configuration: Int32
    private let template: [UInt8]
    private var settings = director_generator_config()

    /// Loads the program; its frames go to interface `outputIndex` (of the caller's namespace).
    public init(plan: TrafficPlan, outputIndex: Int32) throws {
        guard plan.pattern == .established else {
            throw GeneratorRefusal(description: "the XDP generator sends established flows only, not \(plan.pattern.rawValue)")
        }
        self.plan = plan
        var synthesizer = FrameSynthesizer(plan: plan)
        template = synthesizer.withFrame(0, time: 0) { $0.withUnsafeBytes { Array($0) } }
        director_fast_path_capture_libbpf_messages()
        let opened = try XDPFastPath.open(TrafficGeneratorProgram.object, named: TrafficGeneratorProgram.programName)
        var cleanUp = true
        defer { if cleanUp { bpf_object__close(opened) } }
        let loaded = bpf_object__load(opened)
        guard loaded == 0 else { throw XDPFastPath.failure("loading the generator program into the kernel", errno: -loaded) }
        configuration = bpf_object__find_map_fd_by_name(opened, "config")
        guard configuration >= 0 else { throw XDPFastPath.failure("finding the generator's config map", errno: -configuration) }
        guard let found = bpf_object__find_program_by_name(opened, TrafficGeneratorProgram.programName) else {
            throw XDPFastPath.failure("finding the generator program", errno: ENOENT)
        }
        program = bpf_program__fd(found)
        object = opened
        cleanUp = false

        settings.flows = UInt32(plan.flows)
        settings.first_client = plan.firstClient.rawValue
        settings.payload_length = UInt32(plan.effectiveFrameLength - plan.headerLength)
        settings.output_ifindex = UInt32(outputIndex)
        settings.first_port = TrafficPlan.firstPort
        settings.ports_per_address = UInt16(TrafficPlan.portsPerAddress)
        let headerCount = Int(DIRECTOR_GENERATOR_HEADERS)
        precondition(plan.headerLength == headerCount, "an established plan's headers: Ethernet, IPv4, TCP")
        withUnsafeMutableBytes(of: &settings.headers) { $0.copyBytes(from: template.prefix(headerCount)) }
    }

    deinit { bpf_object__close(object) }

    /// Sets the frames to make (`count` from number `first`), the pace (`rate` frames a second
    /// from now, in bursts of `burst`; 0 = flat out), and the stamp's clock to CLOCK_REALTIME as
    /// of now.
    public func start(at first: UInt64, count: UInt64 = UInt64(Int32.max), rate: Int = 0, burst: Int = 1) throws {
        settings.next_frame = first
        settings.end_frame = first + count
        let monotonic = TrafficSender.nanoseconds(CLOCK_MONOTONIC)
        settings.realtime_offset_ns = TrafficSender.nanoseconds(CLOCK_REALTIME) &- monotonic
        settings.interval_fp = rate == 0 ? 0 : UInt64(1e9 * 1024 / Double(rate))
        settings.start_ns = monotonic
        settings.next_due_fp = 0
        settings.burst = UInt32(max(1, min(burst, 64)))
        settings.burst_left = 0
        var zero: UInt32 = 0
        guard bpf_map_update_elem(configuration, &zero, &settings, UInt64(BPF_ANY)) == 0 else {
            throw XDPFastPath.failure("writing the generator's plan", errno: errno)
        }
    }

    /// The number of the next frame, as the program has it.
    public func nextFrame() throws -> UInt64 {
        var zero: UInt32 = 0
        var current = director_generator_config()
        guard bpf_map_lookup_elem(configuration, &zero, &current) == 0 else {
            throw XDPFastPath.failure("reading the generator's progress", errno: errno)
        }
        return current.next_frame
    }

    /// Has the kernel run the program on live frames, each frame it makes redirected to the
    /// output interface, until it has run `runs` times or `seconds` have passed (a signal to this
    /// thread ends the loop, and repeats until it has); returns the number of the next frame.
    public func runLive(runs: Int32, seconds: Double) throws -> UInt64 {
        // The signal must interrupt the system call, not end the process; the process's own
        // handling comes back afterwards.
        var action = sigaction(), previousAction = sigaction()
        action.__sigaction_handler.sa_handler = { _ in }
        sigemptyset(&action.sa_mask)
        action.sa_flags = 0
        guard sigaction(SIGALRM, &action, &previousAction) == 0 else {
            throw SystemCallError(call: "sigaction", context: "taking SIGALRM to end the generator's loop", errno: errno)
        }
        defer { sigaction(SIGALRM, &previousAction, nil) }
        // A thread of a pool (Dispatch's, Swift's) may block signals: this one takes it meanwhile.
        var alarm = sigset_t(), previous = sigset_t()
        sigemptyset(&alarm)
        sigaddset(&alarm, SIGALRM)
        let unblocked = pthread_sigmask(SIG_UNBLOCK, &alarm, &previous)
        guard unblocked == 0 else { throw SystemCallError(call: "pthread_sigmask", context: "taking SIGALRM on this thread", errno: unblocked) }
        defer { pthread_sigmask(SIG_SETMASK, &previous, nil) }
        let caller = pthread_self()
        let finished = DispatchSemaphore(value: 0), stopped = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            var wait = DispatchTime.now() + seconds
            while finished.wait(timeout: wait) == .timedOut {
                pthread_kill(caller, SIGALRM)
                wait = .now() + 0.01
            }
            stopped.signal()
        }
        defer {
            finished.signal()
            stopped.wait()
        }
        var options = bpf_test_run_opts()
        options.sz = MemoryLayout<bpf_test_run_opts>.size
        options.repeat = runs
        options.flags = UInt32(BPF_F_TEST_XDP_LIVE_FRAMES)
        options.batch_size = 64
        let result = template.withUnsafeBytes { input in
            options.data_in = input.baseAddress
            options.data_size_in = UInt32(input.count)
            return bpf_prog_test_run_opts(program, &options)
        }
        if result != 0 && -result != EINTR { throw XDPFastPath.failure("running the generator program", errno: -result) }
        return try nextFrame()
    }

    /// Runs the program once on the template (or on `page`, a frame as a device left it), not
    /// live: its action and the frame it made (the generator's own check against
    /// `FrameSynthesizer`).
    public func makeOne(from page: [UInt8]? = nil) throws -> (action: UInt32, frame: [UInt8]) {
        try XDPFastPath.testRun(program, on: page ?? template, "running the generator program on the template")
    }
}

/// Sends a plan of established flows with `XDPTrafficProgram`: the kernel makes and sends each
/// frame, with no socket buffer and no copy, paced by the program itself; `TrafficSender`'s
/// bounds (count, first frame, rate, seconds).
public struct XDPTrafficSender {
    public var bounds: TrafficSender
    /// Frames sent back to back at a set rate (1…64).
    public var burst: Int

    public init(bounds: TrafficSender, burst: Int = XDPTrafficSender.defaultBurst) {
        self.bounds = bounds
        self.burst = burst
    }

    /// 16 frames, 80 µs apart at 200 k frames/s: what interrupt moderation at NIC defaults
    /// (ixgbe's, i40e's: tens of µs) hands a driver at that rate, and about what the TX ring's
    /// bursts between clock readings come to.
    public static let defaultBurst = 16

    public func send(_ plan: TrafficPlan, on interface: NetworkInterface) throws -> GeneratorSummary {
        if let problem = bounds.problem { throw GeneratorRefusal(description: problem) }
        let program = try XDPTrafficProgram(plan: plan, outputIndex: interface.index)
        let start = TrafficSender.nanoseconds(CLOCK_MONOTONIC)
        try program.start(at: bounds.startAt, count: bounds.count, rate: bounds.rate, burst: burst)
        // Paced, the loop spins (each early run drops at once) until the last frame is due, with
        // a little slack; flat out, it runs once per frame. Either way the timer bounds it. A loop
        // that used up its runs (2^31 of them last about two minutes when spinning: measured, 116 s) is
        // started again.
        let paced = bounds.rate > 0 ? Double(bounds.count) / Double(bounds.rate) + 0.05 : bounds.seconds
        let end = bounds.startAt + bounds.count
        let deadline = start + UInt64(min(bounds.seconds, paced) * 1e9)
        var next = bounds.startAt
        var now = start
        while next < end && now < deadline {
            let runs = bounds.rate > 0 ? Int32.max : Int32(min(end - next, UInt64(Int32.max)))
            next = try program.runLive(runs: runs, seconds: Double(deadline - now) / 1e9)
            now = TrafficSender.nanoseconds(CLOCK_MONOTONIC)
        }
        return GeneratorSummary(frames: next - bounds.startAt, seconds: Double(now - start) / 1e9, ringFullWaits: 0)
    }
}

/// A plan or bounds the XDP generator cannot run, and why.
public struct GeneratorRefusal: Error, CustomStringConvertible {
    public var description: String
}
