import DirectorLab
import Foundation
import LoadGeneration

/// One measured run: a fresh performance lab, one device, a warm-up that opens every flow, then
/// a window of offered load in which the device's CPU and the frames in and out are counted.
struct Trial {
    var device: DeviceKind
    var traffic: TrafficOptions
    /// Offered frames per second; 0 = as fast as the generator goes.
    var rate: Int
    var seconds: Double
    /// Passes over every flow before the window (0 for SYN floods: every SYN must be new).
    var warmupPasses = 2
    /// Run the sink (checks every frame) or only count frames at the sink's interface.
    var checksFrames = true
    var connectionCapacity = 1 << 20
    /// Fields of the director's `receive_ring` beyond its format (nil: the defaults).
    var receiveRing: String?
    /// The binary of the `baseline` device.
    var baseline: String?
    /// Profile CPU 1 with perf during the window (director only).
    var profiles = false
    /// Stop the director (SIGSTOP, then SIGCONT) this many seconds into the window, for this
    /// many milliseconds: its receive ring must hold what arrives meanwhile.
    var pause: (after: Double, milliseconds: Int)?
    var prefix = "bench"
    /// How the generator sends (the warm-up too: every device meets the same frames).
    var generator = GeneratorMethod.tpacket

    struct Result: Codable {
        var device: String
        var offeredRate: Int
        /// Frames per second that reached the device's input, and that left it for the sink.
        var inputRate: Double
        var forwardedRate: Double
        var loss: Double
        /// Of the forwarded frames, those veth dropped because the sink's side was full.
        var droppedAtSinkSide: UInt64
        /// Busy time of the device's CPU per forwarded frame, nanoseconds.
        var cpuNanosecondsPerFrame: Double
        var deviceCPUBusy: Double
        var generator: GeneratorSummary
        var sink: SinkSummary?
        var directorStats: [String: UInt64]?
        /// The director's resident memory at the end of the window (VmRSS), bytes.
        var directorResidentBytes: UInt64?
        var profile: Profile?

        /// The share of the forwarded frames that veth dropped past the device.
        var pastDeviceShare: Double {
            let forwarded = forwardedRate * generator.seconds
            return forwarded > 0 ? Double(droppedAtSinkSide) / forwarded : 0
        }
    }

    static var selfBinary: String { URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path }

    func run() throws -> Result {
        let lab = PerformanceLab(prefix: prefix)
        defer { lab.tearDown() }
        // The sink's NAPI thread preempts the generator when the sink checks frames and times
        // them; flat out, where nothing reads them, it shares CPU 0 with the generator instead
        // of taking it.
        try lab.setUp(sinkPreemptsGenerator: checksFrames)
        let plan = try traffic.plan()
        let device = try DeviceUnderTest(kind: self.device, lab: lab, plan: plan, connectionCapacity: connectionCapacity, receiveRing: receiveRing, baseline: baseline)
        defer { device.stop() }
        // The sink's host stack has no business with these frames: a netdev drop hides them
        // (AF_PACKET sees frames before the ingress hook).
        try lab.run(lab.sinkNamespace, "nft -f -", input: """
            table netdev sink {
              chain ingress { type filter hook ingress device "\(lab.sinkPort)" priority 0; policy drop; }
            }
            """)
        let warmupFrames = plan.pattern == .syn ? 0 : UInt64(plan.flows * warmupPasses)
        let windowFrames = rate == 0 ? 1_000_000_000 : UInt64(Double(rate) * seconds)
        var sink: pid_t?
        let sinkSummaryPath = lab.stateDirectory + "/sink.json"
        if checksFrames {
            let ready = lab.stateDirectory + "/sink.ready"
            let servers = PerformanceLab.realServers.map { "\($0.mac)@\($0.address)" }.joined(separator: ",")
            let tracked = plan.distinctFlows(frames: warmupFrames + windowFrames)
            sink = try Shell.spawn(["ip", "netns", "exec", lab.sinkNamespace, Trial.selfBinary, "sink", "--interface", lab.sinkPort]
                                   + traffic.arguments + ["--real-servers", servers, "--rewrite", self.device.rewrite.rawValue,
                                   "--track", String(tracked), "--seconds", String(seconds + 60), "--idle-stop", "1",
                                   // Frame n is packet n / flows of its flow: the warm-up's passes are the packets below.
                                   "--delay-from-packet", String(plan.pattern == .established || plan.pattern == .udp ? warmupPasses : 0),
                                   "--cpu", String(PerformanceLab.benchCPU), "--ready-file", ready, "--summary", sinkSummaryPath],
                                   output: lab.stateDirectory + "/sink.log")
            let started = sink!
            try Lab.waitUntil(seconds: 10, "the sink to receive") {
                guard Shell.exitStatus(started) == nil else {
                    throw LabDirector.LabError(description: "the sink exited: \((try? String(contentsOfFile: lab.stateDirectory + "/sink.log", encoding: .utf8)) ?? "")")
                }
                return FileManager.default.fileExists(atPath: ready)
            }
        }
        defer { if let sink, Shell.exitStatus(sink) == nil { kill(sink, SIGTERM); Shell.wait(sink) } }

        if warmupFrames > 0 {
            _ = try lab.generate(traffic, count: warmupFrames, startAt: 0, rate: min(rate == 0 ? 200_000 : rate, 200_000), seconds: 120, method: generator)
            usleep(300_000)
        }
        var perf: ProfileRecording?
        if profiles && self.device.isDirector { perf = try ProfileRecording(cpu: PerformanceLab.deviceCPU, seconds: seconds, directory: lab.stateDirectory) }
        let cpuBefore = try CPUTime(cpu: PerformanceLab.deviceCPU)
        let before = try lab.deviceCounters()
        let started = Lab.monotonicNanoseconds()
        let generated = try lab.generate(traffic, count: windowFrames, startAt: warmupFrames, rate: rate, seconds: seconds, method: generator) {
            guard let pause, let pid = device.director?.processID else { return }
            usleep(UInt32(pause.after * 1e6))
            kill(pid, SIGSTOP)
            usleep(UInt32(pause.milliseconds) * 1000)
            kill(pid, SIGCONT)
        }
        try Trial.waitForOutputToSettle(lab)  // what is still queued is the window's work too
        let elapsed = Double(Lab.monotonicNanoseconds() - started) / 1e9
        let cpuAfter = try CPUTime(cpu: PerformanceLab.deviceCPU)
        let busy = Double(cpuAfter.busyNanoseconds(since: cpuBefore))
        let after = try lab.deviceCounters()
        let profile = try perf?.finish()

        // What the generator sent that never reached the device's input (its queue was full: a frame
        // from XDP is dropped there, not held back) is the device's loss too.
        let input = Double(max(after.input - before.input, generated.frames)), output = Double(after.output - before.output)
        // Rates over the generator's own sending time: the drain pause adds frames, not time.
        let sendingTime = max(generated.seconds, 0.001)
        var result = Result(device: self.device.rawValue, offeredRate: rate, inputRate: input / sendingTime, forwardedRate: output / sendingTime,
                            loss: input > 0 ? max(0, 1 - output / input) : 0, droppedAtSinkSide: after.outputDropped - before.outputDropped,
                            cpuNanosecondsPerFrame: output > 0 ? busy / output : 0,
                            deviceCPUBusy: busy / 1e9 / elapsed,
                            generator: generated, sink: nil, directorStats: nil, profile: profile)
        if self.device.isDirector {
            result.directorStats = try device.stats()
            result.directorResidentBytes = device.residentBytes()
        }
        if let sink {
            Shell.wait(sink)
            result.sink = try JSONDecoder().decode(SinkSummary.self, from: Data(contentsOf: URL(fileURLWithPath: sinkSummaryPath)))
        }
        return result
    }

    /// Waits until the device has sent what it still holds: at least 200 ms, then until its output
    /// counter stands still for 100 ms (at most 3 s). A device that fell behind (a director kept off
    /// its CPU, a busy machine) is still sending its backlog when the generator stops; reading the
    /// counters at a fixed delay would count that backlog as lost.
    static func waitForOutputToSettle(_ lab: PerformanceLab) throws {
        usleep(200_000)
        var last = try lab.deviceCounters().output
        let deadline = Lab.monotonicNanoseconds() + 3_000_000_000
        while Lab.monotonicNanoseconds() < deadline {
            usleep(100_000)
            let now = try lab.deviceCounters().output
            if now == last { return }
            last = now
        }
    }
}
