import ArgumentParser
import DirectorLab
import Foundation

/// Two ways of doing the same work, measured side by side: SYN bursts from the lab's router to a
/// VIP port without a service (the director counts and drops them identically every time), runs
/// interleaved, whole-machine busy CPU per frame from /proc/stat, medians of the repeats.
struct ComparisonRun {
    struct Variant {
        let name: String
        var director = LabDirector.Settings()
        var floodArguments: [String] = []
    }

    let frames: Int
    let rate: Int
    let repeats: Int

    /// Nanoseconds of busy CPU per frame, per variant, in run order.
    func measure(_ variants: [Variant]) throws -> [[Double]] {
        let lab = Lab(prefix: "cmp")
        defer { lab.tearDown() }
        try lab.setUp(largeFileMegabytes: 1)
        let binary = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
        var results = [[Double]](repeating: [], count: variants.count)
        for _ in 0..<repeats {
            for (index, variant) in variants.enumerated() {
                var settings = variant.director
                settings.workerCPUs = [1]
                let director = try LabDirector(lab: lab, settings: settings)
                try director.start()
                defer { director.stop() }
                let mac = try lab.inNamespace(lab.directorNamespace(0), ["cat", "/sys/class/net/front/address"]).output
                    .trimmingCharacters(in: .whitespacesAndNewlines)
                usleep(300_000)
                let before = try CPUTime()
                try lab.inNamespace(lab.routerNamespace, [binary, "flood", "--destination-mac", mac, "--port", "8080",
                                                          "--count", String(frames), "--rate", String(rate)] + variant.floodArguments)
                usleep(300_000)
                let after = try CPUTime()
                let received = try director.stats()["frames_received"] ?? 0
                guard received >= UInt64(frames) * 9 / 10 else {
                    throw ValidationError("\(variant.name): the director saw only \(received) of \(frames) frames")
                }
                results[index].append(Double(after.busyNanoseconds(since: before)) / Double(frames))
            }
        }
        return results
    }

    func report(_ variants: [Variant], _ results: [[Double]]) -> [Double] {
        print("CPU per frame, whole machine (generator, director, kernel), median of \(repeats) interleaved runs, \(frames) frames at \(rate)/s:")
        var medians: [Double] = []
        for (variant, runs) in zip(variants, results) {
            let median = runs.sorted()[runs.count / 2]
            medians.append(median)
            print("  \(variant.name.padding(toLength: 52, withPad: " ", startingAt: 0)) \(microseconds(median)) µs   runs: \(runs.map(microseconds).joined(separator: ", "))")
        }
        return medians
    }

    func microseconds(_ nanoseconds: Double) -> String { String(format: "%.2f", nanoseconds / 1000) }
}

struct MeasurementOptions: ParsableArguments {
    @Option(help: "Frames per run.") var frames = 200_000
    @Option(help: "Offered frames per second.") var rate = 50_000
    @Option(help: "Runs of each kind (interleaved).") var repeats = 3
    var run: ComparisonRun { ComparisonRun(frames: frames, rate: rate, repeats: repeats) }
}

/// What the director host's own stack would spend on the director's frames (here the RST path:
/// the lab's director host holds the VIP), against the guard rule that hides them.
struct HostStackCost: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "host-stack-cost",
        abstract: "Measure the CPU the director host's stack spends on the director's frames, with and without the guard.")
    @OptionGroup var options: MeasurementOptions

    func run() throws {
        var hidden = ComparisonRun.Variant(name: "guard on  (frames hidden from the host stack)")
        hidden.director.hideFramesFromHost = true
        var exposed = ComparisonRun.Variant(name: "guard off (the host stack answers with RSTs)")
        exposed.director.hideFramesFromHost = false
        let variants = [hidden, exposed]
        let medians = options.run.report(variants, try options.run.measure(variants))
        print("  the host stack's work the guard saves, net of the rule: \(options.run.microseconds(medians[1] - medians[0])) µs per frame")
    }
}

/// The transmit path the director uses (TPACKET TX ring with a virtio header whose hdr_len is
/// the frame length) against the same ring without the header, as the lab's frame generator.
struct TransmitCost: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "transmit-cost",
        abstract: "Measure a TX ring with and without the virtio header (PACKET_VNET_HDR).")
    @OptionGroup var options: MeasurementOptions

    func run() throws {
        let variants = [ComparisonRun.Variant(name: "TX ring + virtio header (hdr_len = frame length)"),
                        ComparisonRun.Variant(name: "TX ring, plain", floodArguments: ["--no-virtio-header"])]
        let medians = options.run.report(variants, try options.run.measure(variants))
        print("  plain / virtio header: \(String(format: "%.2f", medians[1] / medians[0]))×")
    }
}
