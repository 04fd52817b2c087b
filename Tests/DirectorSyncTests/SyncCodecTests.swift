import Crypto
import DirectorCore
import DirectorSync
import DirectorWire
import Testing

let key = [UInt8](repeating: 0x5A, count: 32)
let codec = SyncCodec(key: key)!
let header = SyncHeader(nodeID: 2, incarnation: 1_764_000_000_000_000_000, sequence: 77, sentAt: 1_764_000_000_123_456_789)

func record(_ n: Int, change: SyncRecord.Change = .created) -> SyncRecord {
    SyncRecord(change: change, state: .established, transport: n % 2 == 0 ? .tcp : .udp, flags: 0,
               clientAddress: IPv4Address(198, 18, 1, UInt8(10 + n % 200)), clientPort: UInt16(20_000 + n),
               virtualAddress: IPv4Address(198, 18, 0, 100), virtualPort: 80,
               realServerAddress: IPv4Address(198, 18, 2, 11), realServerPort: 80, remainingLifetime: 900_000)
}

func record6(_ n: Int, change: SyncRecord.Change = .created) -> SyncRecord {
    SyncRecord(change: change, state: .finWait, transport: .tcp, flags: SyncWireFormat.provenRecordFlag,
               clientAddress: .v6(IPv6Address("2001:2:0:1::\(10 + n)")!), clientPort: UInt16(30_000 + n),
               virtualAddress: .v6(IPv6Address("2001:2::100")!), virtualPort: 443,
               realServerAddress: .v6(IPv6Address("2001:2:0:2::11")!), realServerPort: 8443, remainingLifetime: 120_000)
}

let everyKind: [SyncBody] = [
    .deltas(dataSequence: 1_001, records: [record(1), record6(1), record(2), record6(2, change: .removed)]),
    .snapshotChunk(requestID: 32, dataSequence: 1_045, index: 0, isLast: false,
                   records: (0..<(SyncWireFormat.recordBytesPerDatagram / SyncWireFormat.ipv6RecordLength)).map { record6($0, change: .refreshed) }),
    .deltas(dataSequence: 1_000, records: (0..<SyncWireFormat.recordsPerDatagram).map { record($0) }),
    .deltas(dataSequence: 1, records: []),
    .heartbeat(HeartbeatAnnouncement(ownershipVersion: 9, highestDataSequence: 1_043, bucketCount: 1024, ownedBuckets: 512),
               challenge: 0x0123_4567_89AB_CDEF, echo: 0xFEDC_BA98_7654_3210),
    .ack(dataSequence: 1_042),
    .nack(missing: [5...5, 9...12, 100...140]),
    .snapshotRequest(requestID: 31),
    .snapshotChunk(requestID: 31, dataSequence: 1_044, index: 2, isLast: true, records: [record(1, change: .refreshed), record(2, change: .removed)]),
    .ownership(version: 10, highestDataSequence: 77, action: .released, clientNextHop: MACAddress("02:18:00:00:01:01")!, ranges: [512...1023]),
    .ownership(version: 11, highestDataSequence: 0, action: .request, clientNextHop: .zero, ranges: [0...3, 7...7]),
    .health(version: 3, reports: (0..<SyncWireFormat.healthReportsPerMessage).map { healthReport($0, isUp: $0 % 3 != 0) }),
    .health(version: 4, reports: []),
    .health(version: 5, reports: (0..<3).map { healthReport6($0, isUp: $0 != 1) } + [healthReport(7, isUp: false)]),
]

func healthReport(_ n: Int, isUp: Bool) -> ServerHealthReport {
    ServerHealthReport(HealthKey(virtualAddress: IPv4Address(198, 18, 0, 100), virtualPort: 80, transport: n % 2 == 0 ? .tcp : .udp,
                                 serverAddress: IPv4Address(198, 18, 2, UInt8(11 + n)), serverPort: 80), isUp: isUp)
}

func healthReport6(_ n: Int, isUp: Bool) -> ServerHealthReport {
    ServerHealthReport(HealthKey(virtualAddress: .v6(IPv6Address("2001:2::100")!), virtualPort: 443, transport: .tcp,
                                 serverAddress: .v6(IPv6Address("2001:2:0:2::\(11 + n)")!), serverPort: 8443), isUp: isUp)
}

/// Re-signs bytes with the shared key, as a peer holding the key would: to test what the codec
/// does with authentic datagrams that are still wrong.
func signed(_ unsigned: [UInt8]) -> [UInt8] {
    unsigned + Array(HMAC<SHA256>.authenticationCode(for: unsigned, using: SymmetricKey(data: key)))
}

func rejection(_ bytes: [UInt8]) -> SyncRejection? {
    do {
        _ = try codec.decode(bytes)
        return nil
    } catch {
        return error
    }
}

@Suite("Sync wire format")
struct SyncCodecTests {
    @Test("every message kind survives encode and decode", arguments: everyKind)
    func roundTrip(_ body: SyncBody) throws {
        let datagram = SyncDatagram(header: header, body: body)
        let bytes = codec.encode(datagram)
        #expect(bytes.count <= SyncWireFormat.maximumDatagram, "fits a 1,500-byte path MTU")
        #expect(try codec.decode(bytes) == datagram)
        #expect(Array(bytes.prefix(4)) == [0x44, 0x53, SyncWireFormat.version, body.kind.rawValue], "magic, version, kind, big-endian")
    }

    @Test("every kind has a round-trip fixture")
    func allKindsCovered() {
        #expect(Set(everyKind.map(\.kind)) == Set(SyncMessageKind.allCases))
    }

    @Test("a datagram cut anywhere is rejected, never trusted")
    func truncated() {
        let bytes = codec.encode(SyncDatagram(header: header, body: everyKind[6]))
        for length in 0..<bytes.count {
            let reason = rejection(Array(bytes.prefix(length)))
            #expect(reason == .truncated || reason == .lengthMismatch, "cut at \(length): \(String(describing: reason))")
        }
    }

    @Test("oversized, bad magic, wrong version, wrong key, tampered")
    func rejected() {
        let bytes = codec.encode(SyncDatagram(header: header, body: .ack(dataSequence: 5)))
        #expect(rejection([UInt8](repeating: 0, count: SyncWireFormat.maximumDatagram + 1)) == .oversized)
        var magic = bytes; magic[0] = 0x45
        #expect(rejection(magic) == .badMagic)
        var version = bytes; version[2] = 1
        #expect(rejection(version) == .unsupportedVersion)
        let otherKey = SyncCodec(key: [UInt8](repeating: 0x33, count: 32))!
        #expect(rejection(otherKey.encode(SyncDatagram(header: header, body: .ack(dataSequence: 5)))) == .badAuthenticator)
        for index in [4, 8, 16, 24, 32, bytes.count - 1] {
            var tampered = bytes
            tampered[index] ^= 0x01
            #expect(rejection(tampered) == .badAuthenticator, "byte \(index) flipped")
        }
        #expect(SyncCodec(key: [1, 2, 3]) == nil, "a short key is refused")
    }

    @Test("authentic but malformed bodies are rejected")
    func malformedBodies() {
        let base = codec.encode(SyncDatagram(header: header, body: .deltas(dataSequence: 1, records: [record(1)])))
        let unsigned = Array(base.dropLast(32))
        // Record count says 2, one record present.
        var countTooHigh = unsigned; countTooHigh[32 + 9] = 2
        #expect(rejection(signed(countTooHigh)) == .malformedBody)
        // An unknown change kind inside a record.
        var badChange = unsigned; badChange[32 + 12] = 9
        #expect(rejection(signed(badChange)) == .malformedBody)
        // An unknown message kind.
        var badKind = unsigned; badKind[3] = 42
        #expect(rejection(signed(badKind)) == .unknownKind)
        // A NACK range that runs backwards.
        let nack = Array(codec.encode(SyncDatagram(header: header, body: .nack(missing: [5...9]))).dropLast(32))
        var backwards = nack; backwards[32 + 15] = 20
        #expect(rejection(signed(backwards)) == .malformedBody)
        // Trailing bytes after an ACK's body (length field updated to match).
        var trailing = Array(codec.encode(SyncDatagram(header: header, body: .ack(dataSequence: 1))).dropLast(32)) + [0, 0]
        trailing[7] = 10
        #expect(rejection(signed(trailing)) == .malformedBody)
        // A health report with a state that is neither up nor down, one with an unknown
        // protocol, and a count beyond the reports present.
        let health = Array(codec.encode(SyncDatagram(header: header, body: .health(version: 1, reports: [healthReport(0, isUp: true)]))).dropLast(32))
        var badState = health; badState[32 + 16 + 3] = 3
        #expect(rejection(signed(badState)) == .malformedBody)
        var badProtocol = health; badProtocol[32 + 16 + 2] = 1
        #expect(rejection(signed(badProtocol)) == .malformedBody)
        // An unknown address family, and an IPv4 address field with bytes after its four.
        var badFamily = health; badFamily[32 + 16 + 6] = 5
        #expect(rejection(signed(badFamily)) == .malformedBody)
        var paddedIPv4 = health; paddedIPv4[32 + 16 + 8 + 4] = 1
        #expect(rejection(signed(paddedIPv4)) == .malformedBody)
        var tooMany = health; tooMany[32 + 9] = 2
        #expect(rejection(signed(tooMany)) == .malformedBody)
    }

    @Test("random bytes, signed or not, never trap")
    func randomBytes() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<5_000 {
            var bytes = (0..<Int.random(in: 0...200, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
            if bytes.count >= 32 {
                bytes[0] = 0x44; bytes[1] = 0x53; bytes[2] = SyncWireFormat.version
                bytes[6] = UInt8((bytes.count - 32) >> 8); bytes[7] = UInt8((bytes.count - 32) & 0xFF)
                _ = rejection(signed(bytes))
            }
            _ = rejection(bytes)
        }
    }
}

@Suite("Replay window")
struct ReplayWindowTests {
    @Test("each datagram once; late ones inside the window; none older than it")
    func window() {
        var window = ReplayWindow()
        window.start(incarnation: 5)
        #expect(window.admit(incarnation: 5, sequence: 10) == nil)
        #expect(window.refusal(incarnation: 5, sequence: 10) == .replayed, "the check before authentication agrees")
        #expect(window.admit(incarnation: 5, sequence: 10) == .replayed)
        #expect(window.admit(incarnation: 5, sequence: 12) == nil)
        #expect(window.refusal(incarnation: 5, sequence: 11) == nil)
        #expect(window.admit(incarnation: 5, sequence: 11) == nil, "late but inside the window")
        #expect(window.admit(incarnation: 5, sequence: 11) == .replayed)
        #expect(window.admit(incarnation: 5, sequence: 200) == nil)
        #expect(window.admit(incarnation: 5, sequence: 200 - 63) == nil)
        #expect(window.admit(incarnation: 5, sequence: 200 - 64) == .outsideReplayWindow)
        #expect(window.admit(incarnation: 5, sequence: 12) == .outsideReplayWindow)
        #expect(window.admitData(incarnation: 5, sequence: 12) == nil, "a retransmission may be old")
    }

    @Test("only the believed incarnation is admitted, larger or smaller; believing another starts over")
    func incarnations() {
        var window = ReplayWindow()
        #expect(window.admit(incarnation: 5, sequence: 1) == .unverifiedIncarnation, "nothing before an incarnation is believed")
        window.start(incarnation: 5)
        #expect(window.admit(incarnation: 5, sequence: 1_000) == nil)
        #expect(window.admit(incarnation: 6, sequence: 1_001) == .unverifiedIncarnation)
        #expect(window.admit(incarnation: 4, sequence: 1_001) == .unverifiedIncarnation)
        #expect(window.admitData(incarnation: 6, sequence: 1) == .unverifiedIncarnation)
        window.start(incarnation: 2)
        #expect(window.admit(incarnation: 2, sequence: 1) == nil, "a smaller incarnation is as good as any once believed")
        #expect(window.admit(incarnation: 5, sequence: 1_001) == .unverifiedIncarnation)
        #expect(window.incarnation == 2)
    }
}

@Suite("Delta outbox")
struct DeltaOutboxTests {
    @Test("records of both families are packed by bytes: 43 IPv4 ones, 20 IPv6 ones, or a mix, never past the datagram")
    func packsByBytes() {
        var outbox = DeltaOutbox(retention: 8)
        var full: [DeltaOutbox.Numbered] = []
        for n in 0..<43 { if let datagram = outbox.append(record(n), changedAt: 1) { full.append(datagram) } }
        for n in 0..<20 { if let datagram = outbox.append(record6(n), changedAt: 2) { full.append(datagram) } }
        for n in 0..<40 { if let datagram = outbox.append(record(n), changedAt: 3) { full.append(datagram) } }
        for n in 0..<2 { if let datagram = outbox.append(record6(n), changedAt: 4) { full.append(datagram) } }
        full += outbox.flush(now: 5)
        let counts = full.map { numbered -> Int in if case .deltas(_, let records) = numbered.body { records.count } else { -1 } }
        #expect(counts == [43, 20, 41, 1], "a full datagram leaves at once; an IPv6 record that does not fit starts the next")
        for numbered in full {
            let bytes = codec.encode(SyncDatagram(header: header, body: numbered.body))
            #expect(bytes.count <= SyncWireFormat.maximumDatagram)
        }
    }
}

extension SyncRecord {
    /// The flow of an IPv4 record (every record these tests build by hand is one).
    var ipv4Key: FlowKey<IPv4Address> { key(as: IPv4Address.self)! }
}
