import ArgumentParser
import DirectorLab
import Foundation
import PacketIO

/// The receive rings side by side: what getting a frame from the front interface to a worker
/// costs through the director's TPACKET_V3 ring, its low-latency TPACKET_V2 ring, the TPACKET_V3
/// ring behind an XDP program (the slow path of `fast_path: xdp`), and an AF_XDP socket in copy
/// mode. The device's
/// CPU carries the interface's receive work and the receiver, nothing else; CPU per received
/// frame is its busy time over the frames the receiver read.
struct Rings: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Measure the receive rings (TPACKET_V3, TPACKET_V2, TPACKET_V3 behind XDP, AF_XDP) side by side (builds its own lab).")
    @OptionGroup var traffic: TrafficOptions
    @Option(help: "Fixed offered rates, frames per second, comma-separated.") var rates = "10000,100000,200000"
    @Flag(inversion: .prefixedNo, help: "Also run flat out for the peak received rate.") var peak = true
    @Option(help: "Runs of every ring at every rate (interleaved).") var repeats = 3
    @Option(help: "Seconds of offered load per run.") var seconds = 5.0
    @Option(help: "Rings to compare, comma-separated: tpacket-v3, tpacket-v2, tpacket-v3-xdp, af-xdp.") var receivers = "tpacket-v3,tpacket-v2,tpacket-v3-xdp,af-xdp"
    @Option(help: "Folder for the report (created).") var results = "results"
    @Option(help: "Prefix of the lab's namespaces (at most 6 letters or digits).") var prefix = "brings"

    struct Run: Codable {
        var ring: ReceiverKind
        var offeredRate: Int
        var generated: UInt64
        var sendingSeconds: Double
        var deviceInput: UInt64
        var receiver: Receive.Summary
        var deviceCPUBusyNanoseconds: Double

        var receivedRate: Double { Double(receiver.frames) / max(sendingSeconds, 0.001) }
        var loss: Double { deviceInput > 0 ? max(0, 1 - Double(receiver.frames) / Double(deviceInput)) : 0 }
        var cpuNanosecondsPerFrame: Double { receiver.frames > 0 ? deviceCPUBusyNanoseconds / Double(receiver.frames) : 0 }
    }

    func run() throws {
        let offered = try rates.split(separator: ",").map { item in
            guard let rate = Int(item), rate > 0, rate <= 5_000_000 else { throw ValidationError("--rates: 1…5,000,000 frames per second each, got \(item)") }
            return rate
        } + (peak ? [0] : [])
        let kinds = try receivers.split(separator: ",").map { name in
            guard let kind = ReceiverKind(rawValue: String(name)) else { throw ValidationError("--receivers: unknown ring \(name)") }
            return kind
        }
        guard !offered.isEmpty, !kinds.isEmpty, (1...20).contains(repeats), seconds > 0, seconds <= 600 else {
            throw ValidationError("at least one rate and ring, --repeats 1…20, --seconds up to 600")
        }
        _ = try traffic.plan()
        try NUMAPlacement(cpu: PerformanceLab.benchCPU).pinCurrentThread()
        var runs: [Run] = []
        for round in 0..<repeats {
            for rate in offered {
                for index in kinds.indices {
                    let run = try measure(kinds[(index + round) % kinds.count], rate: rate)
                    runs.append(run)
                    print(String(format: "[%d/%d] %@ at %@: received %.0f k/s of %.0f k/s in, loss %.2f %%, CPU %.2f µs per frame, delay to user space p50 %@ / p99 %@ µs",
                                 round + 1, repeats, run.ring.title as NSString, Rings.rateName(rate) as NSString, run.receivedRate / 1000,
                                 Double(run.deviceInput) / max(run.sendingSeconds, 0.001) / 1000, run.loss * 100, run.cpuNanosecondsPerFrame / 1000,
                                 (run.receiver.delayP50Microseconds.map(String.init) ?? "-") as NSString,
                                 (run.receiver.delayP99Microseconds.map(String.init) ?? "-") as NSString))
                    fflush(nil)
                }
            }
        }
        let table = Rings.table(runs, kinds: kinds, rates: offered)
        print("")
        print(table)
        try ResultsFolder(path: results).write("rings", markdown: ResultsFolder.header("Receive rings side by side") + table, raw: runs)
    }

    /// One run: a fresh lab, the receiver on the device's CPU, the generator's frames into it.
    private func measure(_ kind: ReceiverKind, rate: Int) throws -> Run {
        let lab = PerformanceLab(prefix: prefix)
        defer { lab.tearDown() }
        try lab.setUp()
        // As the director's `hide_frames_from_host`: the device's own stack never handles them.
        try lab.run(lab.deviceNamespace, "nft -f -", input: """
            table netdev hide {
              chain ingress { type filter hook ingress device "\(lab.deviceInput)" priority 0; policy drop; }
            }
            """)
        let ready = lab.stateDirectory + "/receiver.ready", done = lab.stateDirectory + "/receiver.done", summaryPath = lab.stateDirectory + "/receiver.json"
        let receiver = try Shell.spawn(["ip", "netns", "exec", lab.deviceNamespace, Trial.selfBinary, "receive", "--interface", lab.deviceInput,
                                        "--ring", kind.rawValue] + traffic.arguments
                                       + ["--seconds", String(seconds + 60), "--idle-stop", "0.5", "--cpu", String(PerformanceLab.deviceCPU),
                                          "--ready-file", ready, "--done-file", done, "--summary", summaryPath],
                                       output: lab.stateDirectory + "/receiver.log")
        defer { if Shell.exitStatus(receiver) == nil { kill(receiver, SIGTERM); Shell.wait(receiver) } }
        let log = { (try? String(contentsOfFile: lab.stateDirectory + "/receiver.log", encoding: .utf8)) ?? "" }
        try Lab.waitUntil(seconds: 10, "the receiver to start") {
            guard Shell.exitStatus(receiver) == nil else { throw LabDirector.LabError(description: "the receiver exited: \(log())") }
            return FileManager.default.fileExists(atPath: ready)
        }
        let count = rate == 0 ? 1_000_000_000 : UInt64(Double(rate) * seconds)
        let cpuBefore = try CPUTime(cpu: PerformanceLab.deviceCPU)
        let inputBefore = try lab.deviceCounters().input
        let generated = try lab.generate(traffic, count: count, startAt: 0, rate: rate, seconds: seconds)
        // The receiver stops half a second after its last frame: what was still queued is read
        // within the measured time, and the idle half second costs next to nothing. Its
        // teardown (the program's detach, the UMEM's unpinning) is not the frames' cost.
        try Lab.waitUntil(seconds: 30, "the receiver to read the last frames") {
            guard Shell.exitStatus(receiver) == nil || FileManager.default.fileExists(atPath: done) else {
                throw LabDirector.LabError(description: "the receiver exited: \(log())")
            }
            return FileManager.default.fileExists(atPath: done)
        }
        let cpuAfter = try CPUTime(cpu: PerformanceLab.deviceCPU)
        let input = try lab.deviceCounters().input - inputBefore
        let status = Shell.wait(receiver)
        guard status == 0, let data = FileManager.default.contents(atPath: summaryPath) else {
            throw LabDirector.LabError(description: "the receiver failed: \(log())")
        }
        return Run(ring: kind, offeredRate: rate, generated: generated.frames, sendingSeconds: generated.seconds, deviceInput: input,
                   receiver: try JSONDecoder().decode(Receive.Summary.self, from: data),
                   deviceCPUBusyNanoseconds: Double(cpuAfter.busyNanoseconds(since: cpuBefore)))
    }

    static func rateName(_ rate: Int) -> String { rate == 0 ? "flat out" : "\(rate / 1000) k/s" }

    /// Medians with min–max per ring and rate, and each ring against the ones it could replace.
    static func table(_ runs: [Run], kinds: [ReceiverKind], rates: [Int]) -> String {
        var lines = ["| offered | ring | CPU µs per received frame | received k/s | loss % | delay to user space p50 / p99 µs |",
                     "|---|---|---:|---:|---:|---:|"]
        for rate in rates {
            for kind in kinds {
                let some = runs.filter { $0.ring == kind && $0.offeredRate == rate }
                guard !some.isEmpty else { continue }
                let p50 = Spread(some.map { Double($0.receiver.delayP50Microseconds ?? 0) }).median
                let p99 = Spread(some.map { Double($0.receiver.delayP99Microseconds ?? 0) }).median
                lines.append("| \(rateName(rate)) | \(kind.title) | \(Spread(some.map(\.cpuNanosecondsPerFrame)).formatted(scale: 0.001)) | "
                             + "\(Spread(some.map(\.receivedRate)).formatted(scale: 0.001, digits: 0)) | \(Spread(some.map(\.loss)).formatted(scale: 100)) | "
                             + String(format: "%.0f / %.0f", p50, p99) + " |")
            }
        }
        // Each ring against the one it would replace: the default ring; AF_XDP also against the
        // ring with its delay (TPACKET_V2) and the ring of the XDP fast path's slow path.
        let pairs: [(ReceiverKind, ReceiverKind)] = [(.tpacketV2, .tpacketV3), (.tpacketV3BehindXDP, .tpacketV3), (.afXDP, .tpacketV3),
                                                     (.afXDP, .tpacketV2), (.afXDP, .tpacketV3BehindXDP)]
        let compared = pairs.filter { kinds.contains($0.0) && kinds.contains($0.1) }
        guard !compared.isEmpty else { return lines.joined(separator: "\n") + "\n" }
        lines += ["", "| CPU per frame at a fixed rate; frames received flat out | " + rates.map(rateName).joined(separator: " | ") + " |",
                  "|---|" + rates.map { _ in "---:|" }.joined()]
        func median(_ kind: ReceiverKind, _ rate: Int, _ value: (Run) -> Double) -> Double? {
            let some = runs.filter { $0.ring == kind && $0.offeredRate == rate }
            return some.isEmpty ? nil : Spread(some.map(value)).median
        }
        for (kind, reference) in compared {
            let cells = rates.map { rate -> String in
                let value: (Run) -> Double = rate == 0 ? { $0.receivedRate } : { $0.cpuNanosecondsPerFrame }
                guard let mine = median(kind, rate, value), let theirs = median(reference, rate, value), theirs > 0 else { return "–" }
                return String(format: "%.2f×", mine / theirs)
            }
            lines.append("| \(kind.title) / \(reference.title) | " + cells.joined(separator: " | ") + " |")
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
