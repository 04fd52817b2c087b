import ArgumentParser
import DirectorLab
import Foundation
import PacketIO

/// The comparison run: the director against nftables' stateless DR forwarding and its conntrack
/// DNAT, at fixed offered rates and flat out, interleaved, with repeats; a table on standard
/// output and a report (Markdown, a chart, the raw results) in the results folder.
struct Compare: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Measure the director against nftables side by side (builds its own lab).")
    @OptionGroup var traffic: TrafficOptions
    @Option(help: "Fixed offered rates, frames per second, comma-separated.") var rates = "10000,100000,200000"
    @Option(help: "Runs of every device at every rate (interleaved).") var repeats = 3
    @Option(help: "Seconds of offered load per run.") var seconds = 5.0
    @Option(help: "Devices to compare, comma-separated: director (TPACKET_V3 ring), director-xdp (the XDP fast path), director-v2 (TPACKET_V2 ring), director-nat (NAT), nft-fwd, nft-dnat, baseline and baseline-xdp (with --baseline).")
    var devices = "director,director-v2,nft-fwd,nft-dnat"
    @Flag(inversion: .prefixedNo, help: "Also run flat out for the peak forwarded rate.") var peak = true
    @Flag(inversion: .prefixedNo, help: "Profile the director (perf) in one extra run at the highest fixed rate.") var profile = true
    @Option(help: "The director's connection capacity (the default is what conntrack may hold here, nf_conntrack_max).") var connectionCapacity = 262_144
    @Option(help: "How the generator sends: tpacket (a TX ring, socket buffers) or xdp (XDP frames the kernel makes, as a NIC's reach the driver).")
    var generator: GeneratorMethod = .tpacket
    @Option(help: "Folder for the report (created).") var results = "results"
    @Option(help: "Prefix of the lab's namespaces (at most 6 letters or digits).") var prefix = "bench"
    @Option(help: "The directors' receive_ring fields beyond the format, e.g. \"block_size: 262144, block_count: 32\" (default: the format's own).")
    var receiveRing: String?
    @Option(help: "Another director binary (an earlier build) for the device `baseline`.") var baseline: String?
    @Option(help: "Measure nothing: write the report again from an earlier run's compare.json (give that run's options).") var from: String?

    func run() throws {
        let offered = try rates.split(separator: ",").map { item in
            guard let rate = Int(item), rate > 0, rate <= 5_000_000 else { throw ValidationError("--rates: 1…5,000,000 frames per second each, got \(item)") }
            return rate
        } + (peak ? [0] : [])
        let kinds = try devices.split(separator: ",").map { name in
            guard let kind = DeviceKind(rawValue: String(name)) else { throw ValidationError("--devices: unknown device \(name)") }
            return kind
        }
        guard !offered.isEmpty, !kinds.isEmpty, (1...20).contains(repeats), seconds > 0, seconds <= 600 else {
            throw ValidationError("at least one rate and device, --repeats 1…20, --seconds up to 600")
        }
        guard generator == .tpacket || traffic.pattern == .established else {
            throw ValidationError("--generator xdp sends established flows only, not \(traffic.pattern.rawValue)")
        }
        // The sink never answers, so conntrack sees a SYN and then data with no SYN-ACK between:
        // it marks the data invalid and does not translate it. Flows it picks up mid-stream work.
        if kinds.contains(.nftablesDNAT) && (traffic.pattern == .tcpFlows || traffic.pattern == .syn) {
            throw ValidationError("--pattern \(traffic.pattern.rawValue) cannot be compared with nft-dnat: one-way TCP that starts with a SYN "
                                  + "is invalid to conntrack without the server's reply; use established or udp, or leave nft-dnat out of --devices")
        }
        _ = try traffic.plan()
        if kinds.contains(.baseline) || kinds.contains(.baselineXDP), baseline == nil {
            throw ValidationError("the devices baseline and baseline-xdp need --baseline PATH (a director binary)")
        }
        if let from {
            let all = try JSONDecoder().decode([Trial.Result].self, from: Data(contentsOf: URL(fileURLWithPath: from)))
            let runs = all.filter { $0.profile == nil }
            let rounds = max(1, runs.count / max(1, Set(runs.map(\.device)).count * Set(runs.map(\.offeredRate)).count))
            var report = ComparisonReport(runs: runs, profiled: all.first { $0.profile != nil }, traffic: traffic, seconds: seconds, repeats: rounds)
            report.generator = generator
            print(report.table)
            try report.write(to: results)
            return
        }
        if profile && (try? Shell.run(["perf", "--version"]))?.status != 0 {
            throw ValidationError("--profile needs perf (Debian: linux-perf); install it or pass --no-profile")
        }
        // The orchestration, generator and sink stay on CPU 0 (children inherit it); CPU 1 is the device's.
        try NUMAPlacement(cpu: PerformanceLab.benchCPU).pinCurrentThread()

        var runs: [Trial.Result] = []
        for round in 0..<repeats {
            for rate in offered {
                // A different device goes first in each round, so no device always meets a cold machine.
                for index in kinds.indices {
                    let kind = kinds[(index + round) % kinds.count]
                    var trial = Trial(device: kind, traffic: traffic, rate: rate, seconds: seconds, checksFrames: rate != 0,
                                      connectionCapacity: connectionCapacity, prefix: prefix)
                    trial.receiveRing = receiveRing
                    trial.baseline = baseline
                    trial.generator = generator
                    let result = try trial.run()
                    runs.append(result)
                    print(ComparisonReport.progressLine(result, round: round + 1, of: repeats))
                    fflush(nil)
                }
            }
        }
        var profiled: Trial.Result?
        if profile, let kind = kinds.first(where: \.isDirector), let top = offered.filter({ $0 > 0 }).max() {
            var trial = Trial(device: kind, traffic: traffic, rate: top, seconds: seconds, checksFrames: false,
                              connectionCapacity: connectionCapacity, profiles: true, prefix: prefix)
            trial.receiveRing = receiveRing
            trial.generator = generator
            profiled = try trial.run()
        }
        var report = ComparisonReport(runs: runs, profiled: profiled, traffic: traffic, seconds: seconds, repeats: repeats)
        report.generator = generator
        print("")
        print(report.table)
        try report.write(to: results)
        if let problem = report.failure {
            print("FAILED: \(problem)")
            throw ExitCode(1)
        }
    }
}
