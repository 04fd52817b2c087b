import ArgumentParser
import DirectorWire
import DirectorLab
import Foundation
import LoadGeneration
import PacketIO

/// The sink on the real servers' side: a TPACKET_V3 receive ring on one interface, every frame
/// into a `SinkLedger` (right real server, the same one for the life of the flow, no duplicates,
/// one-way delay from the generator's stamp to the kernel's receive time stamp). It stops after
/// `--idle-stop` seconds without frames once the first arrived, or at `--seconds`.
struct Sink: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Receive and check what the device under test forwards (run inside a lab namespace).")
    @Option(help: "Interface to receive on.") var interface: String
    @OptionGroup var traffic: TrafficOptions
    @Option(help: "Real servers as MAC@address, comma-separated, in the device's order.") var realServers: String
    @Option(help: "The rewrite to expect: dr (MAC only) or nat (destination address too).") var rewrite = "dr"
    @Option(help: "Flows to keep books for (0 = the plan's --flows).") var track = 0
    @Option(help: "Count the delay of packets numbered this or higher in their flow only (the warm-up's are below).") var delayFromPacket: UInt32 = 0
    @Option(help: "Upper bound on the run time, seconds (at most 3600).") var seconds = 60.0
    @Option(help: "Stop after this many seconds without a frame, once frames have come.") var idleStop = 1.0
    @Option(help: "A flow counts as alive at the end if its last frame came within this many ms of the last frame of all.") var aliveWindowMs = 200.0
    @Option(help: "CPU to pin the sink to (-1 = leave it).") var cpu = -1
    @Option(help: "Create this file once the ring is receiving.") var readyFile: String?
    @Option(help: "Write a JSON summary here.") var summary: String?

    func run() throws {
        guard let expectedRewrite = SinkExpectation.Rewrite(rawValue: rewrite) else { throw ValidationError("--rewrite must be dr or nat") }
        let servers = try realServers.split(separator: ",").map { item in
            let parts = item.split(separator: "@")
            guard parts.count == 2, let mac = MACAddress(String(parts[0])), let address = IPv4Address(String(parts[1])) else {
                throw ValidationError("--real-servers: expected MAC@address, got \"\(item)\"")
            }
            return (mac: mac, address: address)
        }
        guard !servers.isEmpty, servers.count < 255 else { throw ValidationError("--real-servers: 1…254 servers") }
        guard seconds > 0, seconds <= 3600, idleStop > 0 else { throw ValidationError("--seconds up to 3600, --idle-stop above 0") }
        if cpu >= 0 { try NUMAPlacement(cpu: cpu).pinCurrentThread() }
        let plan = try traffic.plan()
        var ledger = SinkLedger(expectation: SinkExpectation(plan: plan, realServers: servers, rewrite: expectedRewrite, delayFromPacket: delayFromPacket),
                                flows: track > 0 ? track : plan.flows)
        var geometry = ReceiveRingGeometry.standard
        geometry.blockSize = 1 << 20
        geometry.blockCount = 64
        var ring = try PacketReceiveRing(interface: try NetworkInterface(named: interface), geometry: geometry, fanoutGroup: 0, fanoutProgram: nil)
        if let readyFile { _ = FileManager.default.createFile(atPath: readyFile, contents: Data()) }

        let start = Lab.monotonicNanoseconds()
        var lastFrame: UInt64 = 0
        while true {
            let now = Lab.monotonicNanoseconds()
            if now - start > UInt64(seconds * 1e9) { break }
            if lastFrame != 0 && now - lastFrame > UInt64(idleStop * 1e9) { break }
            guard ring.waitForFrames(timeoutMilliseconds: 20) == .ready else { continue }
            let walked = ring.drainTimestampedBurst { frame, arrival in ledger.account(frame, arrival: arrival) }
            if walked > 0 { lastFrame = Lab.monotonicNanoseconds() }
        }
        var result = ledger.summary
        result.flowsAliveAtEnd = ledger.flowsArrived(since: ledger.latestArrival - min(ledger.latestArrival, UInt64(aliveWindowMs * 1e6)))
        result.ringDrops = ring.takeDropCount()
        print("sink: \(result.frames) frames, \(result.flowsSeen) flows, per real server \(result.framesPerServer); "
              + "misrouted \(result.misrouted), server changes \(result.serverChanges), duplicates \(result.duplicates), late \(result.late), "
              + "foreign \(result.foreign), oversized \(result.oversized); one-way delay p50 \(result.delayP50Microseconds.map(String.init) ?? "-") µs, "
              + "p99 \(result.delayP99Microseconds.map(String.init) ?? "-") µs; sink ring drops \(result.ringDrops ?? 0)")
        if let summary { try JSONEncoder().encode(result).write(to: URL(fileURLWithPath: summary)) }
    }
}
