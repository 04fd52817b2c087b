import DirectorWire
import LoadGeneration
import Testing

private let realServers: [(mac: MACAddress, address: IPv4Address)] = (0..<3).map {
    (MACAddress(rawValue: 0x02_18_00_00_02_0b + UInt64($0)), IPv4Address(198, 18, 2, UInt8(11 + $0)))
}

/// A frame of the plan as a device would forward it: to real server `server`, by DR (MAC only)
/// or by NAT (destination address too; the transport checksum is not checked by the sink).
func forwarded(_ synthesizer: inout FrameSynthesizer, _ n: UInt64, to server: Int, nat: Bool = false, sentAt: UInt64 = 1_000_000) -> [UInt8] {
    var bytes = synthesizer.withFrame(n, time: sentAt) { $0.withUnsafeBytes { Array($0) } }
    patch(&bytes) { span in
        span.storeMACAddress(realServers[server].mac, at: 0)
        if nat { span.storeBigEndian(realServers[server].address.rawValue, at: 14 + IPv4Header.destinationOffset) }
    }
    return bytes
}

func patch(_ bytes: inout [UInt8], _ change: (inout MutableRawSpan) -> Void) {
    bytes.withUnsafeMutableBytes { buffer in
        var span = buffer.mutableBytes
        change(&span)
    }
}

enum Delivery: Sendable {
    /// Frame n of the plan to real server `server` (DR), arriving at `at` µs.
    case frame(UInt64, server: Int, at: UInt64 = 2_000)
    case natFrame(UInt64, server: Int, wrongAddress: Bool)
    case toUnknownMAC(UInt64)
    case otherPort
}

struct LedgerFixture: CustomTestStringConvertible, Sendable {
    let name: String
    let rewrite: SinkExpectation.Rewrite
    let deliveries: [Delivery]
    let misrouted: UInt64, serverChanges: UInt64, duplicates: UInt64, late: UInt64, foreign: UInt64
    var testDescription: String { name }
}

/// 4 flows; frame n is flow n % 4, packet n / 4.
private let ledgerFixtures: [LedgerFixture] = [
    .init(name: "a clean DR stream", rewrite: .directRouting, deliveries: (0..<12).map { .frame($0, server: Int($0 % 4) % 3) },
          misrouted: 0, serverChanges: 0, duplicates: 0, late: 0, foreign: 0),
    .init(name: "a flow that moves to another real server", rewrite: .directRouting, deliveries: [.frame(0, server: 0), .frame(4, server: 1)],
          misrouted: 0, serverChanges: 1, duplicates: 0, late: 0, foreign: 0),
    .init(name: "the same frame twice", rewrite: .directRouting, deliveries: [.frame(0, server: 0), .frame(4, server: 0), .frame(4, server: 0)],
          misrouted: 0, serverChanges: 0, duplicates: 1, late: 0, foreign: 0),
    .init(name: "an older frame after a newer one", rewrite: .directRouting, deliveries: [.frame(0, server: 0), .frame(8, server: 0), .frame(4, server: 0)],
          misrouted: 0, serverChanges: 0, duplicates: 0, late: 1, foreign: 0),
    .init(name: "a frame to no real server's MAC", rewrite: .directRouting, deliveries: [.toUnknownMAC(0)],
          misrouted: 1, serverChanges: 0, duplicates: 0, late: 0, foreign: 0),
    .init(name: "NAT to the server the MAC belongs to", rewrite: .destinationNAT, deliveries: [.natFrame(0, server: 2, wrongAddress: false)],
          misrouted: 0, serverChanges: 0, duplicates: 0, late: 0, foreign: 0),
    .init(name: "NAT to another server's address", rewrite: .destinationNAT, deliveries: [.natFrame(0, server: 2, wrongAddress: true)],
          misrouted: 1, serverChanges: 0, duplicates: 0, late: 0, foreign: 0),
    .init(name: "DR expected, NAT done", rewrite: .directRouting, deliveries: [.natFrame(0, server: 1, wrongAddress: false)],
          misrouted: 1, serverChanges: 0, duplicates: 0, late: 0, foreign: 0),
    .init(name: "not the service's port", rewrite: .directRouting, deliveries: [.otherPort],
          misrouted: 0, serverChanges: 0, duplicates: 0, late: 0, foreign: 1),
]

@Suite("Sink ledger")
struct SinkLedgerTests {
    let plan = LoadGenerationTests.plan(.established, flows: 4)

    func ledger(_ rewrite: SinkExpectation.Rewrite) -> SinkLedger {
        SinkLedger(expectation: SinkExpectation(plan: plan, realServers: realServers, rewrite: rewrite), flows: 4)
    }

    @Test("each broken rule is counted under its own name", arguments: ledgerFixtures)
    func rules(_ fixture: LedgerFixture) {
        var synthesizer = FrameSynthesizer(plan: plan)
        var ledger = ledger(fixture.rewrite)
        for delivery in fixture.deliveries {
            var bytes: [UInt8]
            var arrival: UInt64 = 2_000_000
            switch delivery {
            case .frame(let n, let server, let at):
                bytes = forwarded(&synthesizer, n, to: server)
                arrival = at * 1000
            case .natFrame(let n, let server, let wrongAddress):
                bytes = forwarded(&synthesizer, n, to: server, nat: true)
                if wrongAddress {
                    patch(&bytes) { $0.storeBigEndian(realServers[0].address.rawValue, at: 14 + IPv4Header.destinationOffset) }
                }
            case .toUnknownMAC(let n):
                bytes = synthesizer.withFrame(n, time: 0) { $0.withUnsafeBytes { Array($0) } }
            case .otherPort:
                bytes = forwarded(&synthesizer, 0, to: 0)
                patch(&bytes) { $0.storeBigEndian(UInt16(443), at: 34 + 2) }
            }
            bytes.withUnsafeBytes { ledger.account($0.bytes, arrival: arrival) }
        }
        let summary = ledger.summary
        #expect(summary.frames == UInt64(fixture.deliveries.count))
        #expect(summary.misrouted == fixture.misrouted)
        #expect(summary.serverChanges == fixture.serverChanges)
        #expect(summary.duplicates == fixture.duplicates)
        #expect(summary.late == fixture.late)
        #expect(summary.foreign == fixture.foreign)
    }

    @Test("per flow: its real server, its frames, its longest gap; one-way delay from the stamp")
    func books() {
        var synthesizer = FrameSynthesizer(plan: plan)
        var ledger = ledger(.directRouting)
        // Flow 1: packets 0, 1, 2 arriving at 10 ms, 12 ms, 40 ms; sent 100 µs before each.
        for (packet, arrivalMilliseconds) in [(UInt64(0), UInt64(10)), (1, 12), (2, 40)] {
            let arrival = arrivalMilliseconds * 1_000_000
            let bytes = forwarded(&synthesizer, packet * 4 + 1, to: 2, sentAt: arrival - 100_000)
            bytes.withUnsafeBytes { ledger.account($0.bytes, arrival: arrival) }
        }
        #expect(ledger.realServer(of: 1) == 2)
        #expect(ledger.realServer(of: 0) == nil)
        #expect(ledger.framesReceived(of: 1) == 3)
        #expect(ledger.longestGap(of: 1) == 28_000_000)
        #expect(ledger.flowsArrived(since: 39_000_000) == 1)
        let summary = ledger.summary
        #expect(summary.flowsSeen == 1)
        #expect(summary.framesPerServer == [0, 0, 3])
        #expect(summary.longestFlowGapMicroseconds == 28_000)
        // 100 µs falls in the bucket 96…111 µs; a percentile is its upper bound.
        #expect(summary.delayP50Microseconds == 111)
    }

    @Test("the warm-up's packets are checked, their delay not counted")
    func warmUpDelayLeftOut() {
        var synthesizer = FrameSynthesizer(plan: plan)
        var ledger = SinkLedger(expectation: SinkExpectation(plan: plan, realServers: realServers, rewrite: .directRouting, delayFromPacket: 2), flows: 4)
        // Flow 0's packets 0 and 1 (the warm-up) took 1 ms, packet 2 took 100 µs.
        for (packet, delay) in [(UInt64(0), UInt64(1_000_000)), (1, 1_000_000), (2, 100_000)] {
            let arrival = (packet + 1) * 10_000_000
            let bytes = forwarded(&synthesizer, packet * 4, to: 0, sentAt: arrival - delay)
            bytes.withUnsafeBytes { ledger.account($0.bytes, arrival: arrival) }
        }
        let summary = ledger.summary
        #expect(summary.frames == 3)
        #expect(summary.framesPerServer == [3, 0, 0])
        #expect(summary.delayMaxMicroseconds == 111, "only packet 2's 100 µs (bucket 96…111 µs)")
    }

    @Test("a duplicate is told from a late frame across the 64-packet window")
    func window() {
        var synthesizer = FrameSynthesizer(plan: plan)
        var ledger = ledger(.directRouting)
        for packet: UInt64 in [0, 80, 10, 10, 79, 79, 80] {
            forwarded(&synthesizer, packet * 4, to: 0).withUnsafeBytes { ledger.account($0.bytes, arrival: 1) }
        }
        // 10 is 70 below the highest, beyond the window: late both times (a repeat there cannot
        // be told). 79 is inside it: late, then a duplicate; 80 again: a duplicate.
        #expect(ledger.summary.duplicates == 2)
        #expect(ledger.summary.late == 3)
    }
}
