import ArgumentParser
import Foundation
import LoadGeneration
import PacketIO

/// The receive ring against a worker kept off its CPU: established flows at a set rate through
/// the director, which is stopped (SIGSTOP) for a while mid-run and then continued. What arrived
/// meanwhile must wait in the ring, not be dropped: the run counts the ring's drops, the frames
/// in and out of the device, and what the sink received.
struct Stall: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Stop the director under load for a while and count what its receive ring lost (builds its own lab).")
    @OptionGroup var traffic: TrafficOptions
    @Option(help: "Offered frames per second.") var rate = 100_000
    @Option(help: "How long the director is stopped, ms (at most 10,000).") var stallMs = 300
    @Option(help: "Seconds into the window at which it is stopped.") var stallAfter = 1.0
    @Option(help: "Seconds of offered load.") var seconds = 3.0
    @Option(help: "The director's receive ring: director (TPACKET_V3) or director-v2 (TPACKET_V2).") var device = "director"
    @Option(help: "Runs.") var repeats = 1
    @Option(help: "Write a JSON summary of the runs here.") var summary: String?
    @Option(help: "Prefix of the lab's namespaces (at most 6 letters or digits).") var prefix = "bstall"

    struct Run: Codable {
        var offeredRate: Int
        var stallMilliseconds: Int
        var generated: UInt64
        var deviceInput: Double
        var deviceOutput: Double
        var ringDrops: UInt64
        var sinkFrames: UInt64
        /// Frames the sink's own ring could not hold (the burst after the stall): the sink's loss, not the director's.
        var sinkRingDrops: UInt64
        /// Frames the device sent that veth dropped on the sink's side (a burst after the stall).
        var droppedPastTheDevice: UInt64
        /// The longest one-way delay the sink saw (µs): about the stall, for frames that waited.
        var longestDelayMicroseconds: UInt64
    }

    func run() throws {
        guard let kind = DeviceKind(rawValue: device), kind.isDirector else { throw ValidationError("--device: director or director-v2") }
        guard rate > 0, (1...10_000).contains(stallMs), stallAfter > 0, seconds > stallAfter + Double(stallMs) / 1000 + 0.5, (1...20).contains(repeats) else {
            throw ValidationError("--rate above 0, --stall-ms 1…10,000, the stall at least 0.5 s before the end of --seconds, --repeats 1…20")
        }
        try NUMAPlacement(cpu: PerformanceLab.benchCPU).pinCurrentThread()
        var runs: [Run] = []
        for round in 0..<repeats {
            var trial = Trial(device: kind, traffic: traffic, rate: rate, seconds: seconds, prefix: prefix)
            trial.pause = (stallAfter, stallMs)
            let result = try trial.run()
            let run = Run(offeredRate: rate, stallMilliseconds: stallMs, generated: result.generator.frames,
                          deviceInput: result.inputRate * result.generator.seconds, deviceOutput: result.forwardedRate * result.generator.seconds,
                          ringDrops: result.directorStats?["receive_ring_drops"] ?? 0, sinkFrames: result.sink?.frames ?? 0,
                          sinkRingDrops: result.sink?.ringDrops ?? 0,
                          droppedPastTheDevice: result.droppedAtSinkSide,
                          longestDelayMicroseconds: result.sink?.delayMaxMicroseconds ?? 0)
            runs.append(run)
            print(String(format: "[%d/%d] %@ stopped %d ms at %d frames/s: ring drops %llu; frames generated %llu, into the device %.0f, out %.0f "
                         + "(%llu of them dropped by veth on the sink's side); sink received %llu with the warm-up (its own ring dropped %llu); longest one-way delay %.1f ms",
                         round + 1, repeats, kind.title as NSString, stallMs, rate, run.ringDrops, run.generated, run.deviceInput, run.deviceOutput,
                         run.droppedPastTheDevice, run.sinkFrames, run.sinkRingDrops, Double(run.longestDelayMicroseconds) / 1000))
            fflush(nil)
        }
        if let summary {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(runs).write(to: URL(fileURLWithPath: summary))
        }
    }
}
