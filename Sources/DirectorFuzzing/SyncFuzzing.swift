import DirectorCore
import DirectorSync
import DirectorWire

/// One fuzzer input through a `SyncSession` (node 1, its peer node 2), carried out as the daemon's
/// sync thread does: accepted records go through `replicaDecision` into a forwarder's table,
/// snapshots are answered, takes and releases are confirmed.
///
/// Chunk control byte (see `FuzzInput`): bits 2–7 are the time step in 5 ms units; bits 0–1 say
/// how the body arrives:
/// - 0: on the sync socket, *signed* by the harness with the pair's key after setting the body
///   length field: a peer that has the key but a bug (the case HMAC cannot stop);
/// - 1: on the sync socket as it is (forged or damaged: must fail cheaply and be counted);
/// - 2: on the liveness socket, signed as in 0;
/// - 3: nothing arrives; only time passes.
///
/// Beyond "no crash", it checks the bounds the protocol promises: one turn never sends more
/// than the pacing allows, and the retransmission queue never outgrows its retention.
public enum SyncFuzzing {
    static let codec = SyncCodec(key: [UInt8](repeating: 0x5A, count: 32))!
    /// A short retention: eviction from the retransmission queue is reached by small inputs, and
    /// a session is cheap enough to make for every input.
    static let settings = SyncSettings(nodeID: 1, peerNodeID: 2, retention: 256)
    static let epoch: UInt64 = 1_800_000_000_000_000_000

    /// Datagrams one turn may send: paced retransmissions, paced NACKs, and the few control
    /// datagrams (ack, request, ownership, snapshot request) a turn can add.
    public static let datagramsPerTurnBound = settings.retransmissionsPerTick + settings.nackRangesPerTick / 16 + 16

    public static func run(_ input: UnsafeRawBufferPointer) {
        var session = SyncSession(settings: settings, configuredShare: BucketOwnership(bucketCount: 64) { $0 < 32 }, codec: codec,
                                  incarnation: 7, now: 1_000_000_000)
        // Challenges the fuzzer can learn to echo: 1, 2, 3, … (the daemon draws them at random).
        let counter = NonceCounter()
        var liveness = LivenessChannel(nodeID: 1, peerNodeID: 2, incarnation: 7, codec: codec, nonces: counter.next)
        var forwarder = FuzzedFarm.forwarder()
        var ownership = BucketOwnership.none(64)
        var chunks = FuzzInput(input)
        var now: UInt64 = 1_000_000_000
        while let chunk = chunks.next() {
            now += UInt64(chunk.control >> 2) * 5_000_000
            let wallClock = epoch + now
            let body = [UInt8](chunk.body)
            switch chunk.control & 3 {
            case 0: session.receive(signed(body), now: now, wallClock: wallClock)
            case 1: session.receive(body, now: now, wallClock: wallClock)
            case 2:
                if let heartbeat = liveness.receive(signed(body), now: now) { session.heard(heartbeat, now: now, wallClock: wallClock) }
            default: break
            }
            session.tick(now: now, wallClock: wallClock, ownership: ownership)
            for event in session.takeEvents() {
                switch event {
                case .apply(let records, _):
                    for record in records {
                        switch record.replicaDecision(services: FuzzedFarm.services, timeouts: forwarder.settings.timeouts) {
                        case .apply(let update, _): forwarder.apply(update, now: now)
                        case .apply6(let update, _): forwarder.apply(update, now: now)
                        case .unknownService, .unknownRealServer: break
                        }
                    }
                case .resyncStarted: forwarder.beginResync()
                case .resyncCompleted:
                    forwarder.completeResync()
                    forwarder.purgeStaleReplicas(budget: 64)
                case .snapshotWanted(let id): session.finishSnapshot(requestID: id, now: now, wallClock: wallClock)
                case .takeAll: ownership = .all(64)
                case .release(let buckets):
                    ownership = ownership.subtracting(buckets)
                    session.didRelease(buckets, stoppedAt: now, now: now, wallClock: wallClock)
                case .take(let buckets):
                    ownership = ownership.union(buckets)
                    session.didTake(buckets, now: now, wallClock: wallClock)
                case .peerAlive, .peerDead, .ownPauseExcused, .caughtUp, .handoverCompleted, .peerHealth: break
                }
            }
            let sent = session.takeOutgoing().count
            precondition(sent <= datagramsPerTurnBound, "one turn sent \(sent) datagrams")
            precondition(session.retransmissionsQueued <= settings.retention, "the retransmission queue outgrew its retention")
            precondition(forwarder.table.count <= forwarder.table.capacity, "the table holds more than its capacity")
        }
    }

    /// Nonces 1, 2, 3, … for one fuzzer input.
    final class NonceCounter: @unchecked Sendable {
        private var last: UInt64 = 0
        var next: @Sendable () -> UInt64 { { self.last += 1; return self.last } }
    }

    /// `bytes` as the peer would send them if it held the key and spoke this version: the
    /// version and body length fields set, the authenticator appended.
    static func signed(_ bytes: [UInt8]) -> [UInt8] {
        guard bytes.count >= SyncWireFormat.headerLength, bytes.count - SyncWireFormat.headerLength <= Int(UInt16.max) else { return bytes }
        var datagram = bytes
        datagram[2] = SyncWireFormat.version
        let bodyLength = bytes.count - SyncWireFormat.headerLength
        datagram[6] = UInt8(bodyLength >> 8)
        datagram[7] = UInt8(bodyLength & 0xFF)
        return codec.authenticated(datagram)
    }

    /// Seeds: a datagram of every kind from a healthy peer, signed and unsigned, in the order a
    /// peer's start sends them.
    public static func seeds() -> [(name: String, bytes: [UInt8])] {
        var sequence: UInt64 = 0
        func unsigned(_ body: SyncBody) -> [UInt8] {
            sequence += 1
            let bytes = codec.encode(SyncDatagram(header: SyncHeader(nodeID: 2, incarnation: 9, sequence: sequence, sentAt: epoch + sequence), body: body))
            return Array(bytes.dropLast(SyncWireFormat.authenticatorLength))
        }
        func record(_ change: SyncRecord.Change, port: UInt16, state: ConnectionState, server: Int = 0) -> SyncRecord {
            let listener = FuzzedFarm.listeners.first { $0.0 == port }!
            return SyncRecord(change: change, state: state, transport: listener.1, flags: 0x02, clientAddress: IPv4Address(198, 18, 1, 10),
                              clientPort: 40000, virtualAddress: FuzzedFarm.virtualAddress, virtualPort: port,
                              realServerAddress: FuzzedFarm.serverAddress(server), realServerPort: 80, remainingLifetime: 900_000)
        }
        func record6(_ change: SyncRecord.Change, port: UInt16) -> SyncRecord {
            let listener = FuzzedFarm.listeners6.first { $0.0 == port }!
            return SyncRecord(change: change, state: .established, transport: listener.1, flags: 0x02,
                              clientAddress: .v6(IPv6Address("2001:2:0:1::10")!), clientPort: 40000,
                              virtualAddress: .v6(FuzzedFarm.virtualAddress6), virtualPort: port,
                              realServerAddress: .v6(FuzzedFarm.serverAddress6(1)), realServerPort: listener.3, remainingLifetime: 900_000)
        }
        // The first challenge of the harness's liveness channel is 1: the peer echoes it.
        let heartbeat = SyncBody.heartbeat(HeartbeatAnnouncement(ownershipVersion: 1, highestDataSequence: 2, bucketCount: 64, ownedBuckets: 32),
                                           challenge: 77, echo: 1)
        let start: [(control: UInt8, body: [UInt8])] = [
            (control: 2, body: unsigned(heartbeat)),
            (control: 4, body: unsigned(.snapshotChunk(requestID: 1, dataSequence: 1, index: 0, isLast: true,
                                                       records: [record(.refreshed, port: 80, state: .established)]))),
            (control: 4, body: unsigned(.deltas(dataSequence: 2, records: [record(.created, port: 443, state: .synReceived, server: 1),
                                                                       record(.stateChanged, port: 53, state: .udp, server: 2),
                                                                       record(.removed, port: 80, state: .established)]))),
            (control: 4, body: unsigned(.deltas(dataSequence: 3, records: [record6(.created, port: 80), record6(.created, port: 8443),
                                                                       record6(.removed, port: 80)]))),
            (control: 4, body: unsigned(.ack(dataSequence: 0))),
            (control: 4, body: unsigned(.nack(missing: [1...3]))),
            (control: 4, body: unsigned(.snapshotRequest(requestID: 5))),
            (control: 4, body: unsigned(.ownership(version: 2, highestDataSequence: 2, action: .released, clientNextHop: FuzzedFarm.clientMAC,
                                                   ranges: [32...47]))),
            (control: 4, body: unsigned(.ownership(version: 3, highestDataSequence: 2, action: .request, clientNextHop: FuzzedFarm.clientMAC,
                                                   ranges: [0...15]))),
            (control: 4, body: unsigned(.ownership(version: 4, highestDataSequence: 2, action: .taken, clientNextHop: .zero,
                                                   ranges: [48...63]))),
            (control: 4, body: unsigned(.health(version: 1, reports: [
                ServerHealthReport(HealthKey(virtualAddress: FuzzedFarm.virtualAddress, virtualPort: 80, transport: .tcp,
                                             serverAddress: FuzzedFarm.serverAddress(1), serverPort: 80), isUp: false),
                ServerHealthReport(HealthKey(virtualAddress: .v6(FuzzedFarm.virtualAddress6), virtualPort: 80, transport: .tcp,
                                             serverAddress: .v6(FuzzedFarm.serverAddress6(2)), serverPort: 80), isUp: false),
            ]))),
            (control: 0xFF, body: []),
        ]
        let forged = codec.encode(SyncDatagram(header: SyncHeader(nodeID: 2, incarnation: 9, sequence: 1, sentAt: epoch), body: heartbeat))
        return [
            ("peer-start", FuzzInput.encode(start)),
            ("peer-silent-then-back", FuzzInput.encode([start[0], (control: 0xFF, body: []), (control: 0xFF, body: []), start[0]])),
            ("forged", FuzzInput.encode([(control: 1, body: forged.dropLast(1) + [0]), (control: 1, body: Array(forged.prefix(40)))])),
        ]
    }
}
