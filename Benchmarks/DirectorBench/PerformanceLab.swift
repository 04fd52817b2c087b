import DirectorLab
import DirectorWire
import Foundation
import LoadGeneration

/// The performance topology, built anew for every trial so that no state (conntrack entries,
/// a director's table, queued frames) carries from one trial into the next:
///
///     <p>-gen                 <p>-dut (device under test)                 <p>-sink
///     ┌──────────┐  veth  ┌─────────────────────────────────┐  veth  ┌──────────┐
///     │ <p>g     ├────────┤ <p>i ── director | nft ── <p>o  ├────────┤ <p>s      │
///     └──────────┘        └─────────────────────────────────┘        └──────────┘
///      generator, CPU 0      all of its work on CPU 1                  sink, CPU 0
///
/// veth does the receiving side's work on the sender's CPU unless the receiving interface runs in
/// NAPI mode (GRO on, `threaded`, the sending side without TSO/GSO); both receiving interfaces
/// run so, with <p>i's NAPI thread pinned to CPU 1 and <p>s's to CPU 0 (at SCHED_FIFO when the
/// sink times frames, so that a frame's arrival preempts the generator there as an interrupt
/// would): CPU 1 then carries the
/// device's whole cost (its receive, its forwarding, its transmit) and nothing else of the
/// benchmark's. Data segments carry PSH, so GRO on <p>i never merges them (the sink checks).
struct PerformanceLab {
    static let deviceCPU = 1
    static let benchCPU = 0
    static let virtualMAC = MACAddress("02:18:00:00:00:64")!
    static let deviceOutputMAC = MACAddress("02:18:00:00:02:01")!
    static let realServers: [(mac: MACAddress, address: IPv4Address)] = (0..<3).map {
        (MACAddress(rawValue: 0x02_18_00_00_02_0b + UInt64($0)), IPv4Address(198, 18, 2, UInt8(11 + $0)))
    }
    static let virtualAddress = "198.18.0.100"
    /// The NAT device's gateway address on the sink's side (the one-way traffic has no replies).
    static let natGatewayAddress = "198.18.2.254"

    let prefix: String
    var generatorNamespace: String { "\(prefix)-gen" }
    var deviceNamespace: String { "\(prefix)-dut" }
    var sinkNamespace: String { "\(prefix)-sink" }
    var generatorPort: String { "\(prefix)g" }
    var deviceInput: String { "\(prefix)i" }
    var deviceOutput: String { "\(prefix)o" }
    var sinkPort: String { "\(prefix)s" }
    var stateDirectory: String { Lab(prefix: prefix).stateDirectory }

    init(prefix: String) {
        precondition(prefix.count <= 6 && prefix.allSatisfy { $0.isLetter || $0.isNumber })
        self.prefix = prefix
    }

    /// `sinkPreemptsGenerator`: the sink's NAPI thread at SCHED_FIFO (see `pinNAPIThread`).
    func setUp(sinkPreemptsGenerator: Bool = false) throws {
        tearDown()
        try FileManager.default.createDirectory(atPath: stateDirectory, withIntermediateDirectories: true)
        for namespace in [generatorNamespace, deviceNamespace, sinkNamespace] {
            try Shell.run(["ip", "netns", "add", namespace])
            try run(namespace, "ip link set lo up")
            try run(namespace, "sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1")
        }
        try run(generatorNamespace, "ip link add \(generatorPort) type veth peer name \(deviceInput) netns \(deviceNamespace)")
        try run(deviceNamespace, "ip link add \(deviceOutput) type veth peer name \(sinkPort) netns \(sinkNamespace)")
        try run(deviceNamespace, "ip link set \(deviceInput) address \(PerformanceLab.virtualMAC)")
        try run(deviceNamespace, "ip link set \(deviceOutput) address \(PerformanceLab.deviceOutputMAC)")
        // Senders without TSO/GSO, receivers with GRO: the condition for veth's NAPI mode.
        try run(generatorNamespace, "ethtool -K \(generatorPort) tso off gso off")
        try run(deviceNamespace, "ethtool -K \(deviceOutput) tso off gso off")
        try run(deviceNamespace, "ethtool -K \(deviceInput) gro on")
        try run(sinkNamespace, "ethtool -K \(sinkPort) gro on")
        for (namespace, port) in [(generatorNamespace, generatorPort), (deviceNamespace, deviceInput), (deviceNamespace, deviceOutput), (sinkNamespace, sinkPort)] {
            try run(namespace, "ip link set \(port) up")
        }
        try run(deviceNamespace, "echo 1 > /sys/class/net/\(deviceInput)/threaded")
        try run(sinkNamespace, "echo 1 > /sys/class/net/\(sinkPort)/threaded")
        try pinNAPIThread(of: deviceInput, to: PerformanceLab.deviceCPU)
        try pinNAPIThread(of: sinkPort, to: PerformanceLab.benchCPU, realtime: sinkPreemptsGenerator)
    }

    /// The kernel thread that polls `interface` ("napi/<name>-<id>") onto `cpu`. `realtime`: at
    /// SCHED_FIFO, so that it preempts the generator on a frame's arrival as a NIC's interrupt
    /// would (the sink's: the delay it stamps is then the device's, not the wait for CPU 0). The
    /// device's own stays an ordinary thread: at FIFO under overload it would starve a director's
    /// worker, where the kernel's softirq would hand over to ksoftirqd and share.
    private func pinNAPIThread(of interface: String, to cpu: Int, realtime: Bool = false) throws {
        let name = "napi/\(interface)-"
        var threads: [Int32] = []
        try Lab.waitUntil(seconds: 1, "a NAPI thread for \(interface) (veth NAPI mode)") {
            threads = ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap(Int32.init).filter { pid in
                ((try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8)) ?? "").hasPrefix(name)
            }
            return !threads.isEmpty
        }
        for pid in threads {
            try Shell.run(["taskset", "-pc", String(cpu), String(pid)])
            if realtime { try Shell.run(["chrt", "-f", "-p", "50", String(pid)]) }
        }
    }

    /// Frames in at the device's input, and out of its output. What the device sent counts
    /// whether or not the sink's side then kept up: veth's tx_dropped counts frames its peer's
    /// NAPI queue had no room for (the sink shares CPU 0 with a flat-out generator).
    func deviceCounters() throws -> (input: UInt64, output: UInt64, outputDropped: UInt64) {
        let files = ["\(deviceInput)/statistics/rx_packets", "\(deviceOutput)/statistics/tx_packets", "\(deviceOutput)/statistics/tx_dropped"]
        let text = try run(deviceNamespace, "cd /sys/class/net && cat " + files.joined(separator: " ")).output
        let values = text.split(separator: "\n").compactMap { UInt64($0.trimmingCharacters(in: .whitespaces)) }
        guard values.count == 3 else { throw LabDirector.LabError(description: "unreadable interface counters: \(text)") }
        return (values[0], values[1] + values[2], values[2])
    }

    /// Runs the generator (`director-bench generate`, in the generator's namespace, on the bench's
    /// CPU) to its end; `meanwhile` runs while it sends.
    func generate(_ traffic: TrafficOptions, count: UInt64, startAt: UInt64, rate: Int, seconds: Double, method: GeneratorMethod = .tpacket,
                  meanwhile: () -> Void = {}) throws -> GeneratorSummary {
        let summary = stateDirectory + "/generator.json"
        try? FileManager.default.removeItem(atPath: summary)
        let generator = try Shell.spawn(["ip", "netns", "exec", generatorNamespace, Trial.selfBinary, "generate", "--interface", generatorPort,
                                         "--destination-mac", PerformanceLab.virtualMAC.description] + traffic.arguments
                                        + ["--count", String(count), "--start-at", String(startAt), "--rate", String(rate), "--seconds", String(seconds),
                                           "--method", method.rawValue, "--cpu", String(PerformanceLab.benchCPU), "--summary", summary],
                                        output: stateDirectory + "/generator.log")
        meanwhile()
        let status = Shell.wait(generator)
        guard status == 0, let data = FileManager.default.contents(atPath: summary) else {
            throw LabDirector.LabError(description: "the generator failed (exit \(status)): "
                                       + ((try? String(contentsOfFile: stateDirectory + "/generator.log", encoding: .utf8)) ?? ""))
        }
        return try JSONDecoder().decode(GeneratorSummary.self, from: data)
    }

    @discardableResult
    func run(_ namespace: String, _ command: String, input: String? = nil) throws -> Shell.Result {
        try Shell.run(["ip", "netns", "exec", namespace, "sh", "-c", command], input: input)
    }

    /// Removes the namespaces (ending the processes inside first: the trial's own generator,
    /// sink and director) and the files. Safe to call twice and after a killed run.
    func tearDown() { Lab(prefix: prefix).tearDown() }
}
