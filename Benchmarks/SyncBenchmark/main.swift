// What one sync thread can carry, in process: records per second through the sending side
// (pack, number, encode, HMAC-SHA256) and through the receiving side (verify, decode, replay
// check, order, hand out), each on one core, without the socket.
//
//     swift run -c release sync-benchmark [--quick]
import DirectorCore
import DirectorSync
import DirectorWire
import Foundation
#if canImport(Glibc)
import Glibc
#endif

func nanoseconds() -> UInt64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
}

let quick = CommandLine.arguments.contains("--quick")
let recordCount = quick ? 200_000 : 2_000_000
let key = [UInt8](repeating: 0x5A, count: 32)
let network = IPv4Address(198, 18, 0, 0).rawValue
let virtualAddress = IPv4Address(198, 18, 0, 100)
func record(_ n: Int) -> SyncRecord {
    let client = IPv4Address(rawValue: network &+ UInt32(n % 65_000))
    let server = IPv4Address(198, 18, 2, UInt8(11 + n % 3))
    let change: SyncRecord.Change = n % 3 == 0 ? .created : .stateChanged
    return SyncRecord(change: change, state: .established, transport: .tcp, clientAddress: client, clientPort: UInt16(1024 + n / 65_000),
                      virtualAddress: virtualAddress, virtualPort: 80, realServerAddress: server, realServerPort: 80, remainingLifetime: 900_000)
}
let records = (0..<recordCount).map(record)

var bestSend = 0.0, bestReceive = 0.0
var datagramCount = 0
for _ in 0..<3 {
    var sender = SyncSession(settings: SyncSettings(nodeID: 1, peerNodeID: 2, flushDelay: 0), configuredShare: .evenShare(1024, node: 0, of: 2),
                             codec: SyncCodec(key: key)!, incarnation: 1, now: 0)
    var receiver = SyncSession(settings: SyncSettings(nodeID: 2, peerNodeID: 1, flushDelay: 0), configuredShare: .evenShare(1024, node: 1, of: 2),
                               codec: SyncCodec(key: key)!, incarnation: 2, now: 0)
    // Sending: records in, datagrams out, as the sync thread's turns would (a tick per 4,300 records).
    var datagrams: [[UInt8]] = []
    datagrams.reserveCapacity(recordCount / 40)
    var now: UInt64 = 1_000
    let sendStart = nanoseconds()
    for (index, record) in records.enumerated() {
        sender.record(record, changedAt: now, now: now)
        if index % 4_300 == 4_299 {
            now += 100_000
            sender.tick(now: now, wallClock: now, ownership: .evenShare(1024, node: 0, of: 2))
            datagrams += sender.takeOutgoing()
        }
    }
    sender.tick(now: now + 100_000, wallClock: now, ownership: .evenShare(1024, node: 0, of: 2))
    datagrams += sender.takeOutgoing()
    let sendElapsed = nanoseconds() - sendStart
    // Receiving: every datagram verified, decoded and its records handed out in order.
    var applied = 0
    let receiveStart = nanoseconds()
    for bytes in datagrams {
        receiver.receive(bytes, now: now, wallClock: now)
        for event in receiver.takeEvents() {
            if case .apply(let batch, _) = event { applied += batch.count }
        }
    }
    let receiveElapsed = nanoseconds() - receiveStart
    precondition(applied == recordCount, "every record must arrive: \(applied)")
    datagramCount = datagrams.count
    bestSend = max(bestSend, Double(recordCount) / (Double(sendElapsed) / 1e9))
    bestReceive = max(bestReceive, Double(recordCount) / (Double(receiveElapsed) / 1e9))
}
print("sync benchmark: \(recordCount) records in \(datagramCount) datagrams (heartbeats travel on their own channel), best of 3")
print("  sending side (pack, encode, HMAC-SHA256):          \(Int(bestSend)) records/s on one core")
print("  receiving side (verify, decode, replay, order):    \(Int(bestReceive)) records/s on one core")

// The worst a peer can ask of one call, each measured as the longest single call (µs): the sync
// thread's turn is made of such calls, so none may take long whatever the peer sends.
func longest(_ body: () -> Void) -> Double {
    let start = nanoseconds()
    body()
    return Double(nanoseconds() - start) / 1000
}

let share = BucketOwnership.evenShare(1024, node: 0, of: 2)
let codec = SyncCodec(key: key)!
func peerHeartbeat(highest: UInt64, incarnation: UInt64 = 7, at now: UInt64) -> PeerHeartbeat {
    PeerHeartbeat(incarnation: incarnation, announcement: HeartbeatAnnouncement(ownershipVersion: 1, highestDataSequence: highest, bucketCount: 1024, ownedBuckets: 512), heardAt: now)
}
func peerDatagram(_ body: SyncBody, sequence: UInt64, incarnation: UInt64 = 7) -> [UInt8] {
    codec.encode(SyncDatagram(header: SyncHeader(nodeID: 2, incarnation: incarnation, sequence: sequence, sentAt: 0), body: body))
}

// 1. A NACK for every data sequence, against a full retention of 8,192 datagrams.
var sender = SyncSession(settings: SyncSettings(nodeID: 1, peerNodeID: 2, flushDelay: 0), configuredShare: share, codec: codec, incarnation: 1, now: 0)
var clock: UInt64 = 1_000
sender.heard(peerHeartbeat(highest: 0, at: clock), now: clock, wallClock: clock)
for index in 0..<(8192 * SyncWireFormat.recordsPerDatagram) { sender.record(record(index), changedAt: clock, now: clock) }
sender.tick(now: clock, wallClock: clock, ownership: share)
_ = sender.takeOutgoing()
let nackReceive = longest { sender.receive(peerDatagram(.nack(missing: [1...(UInt64.max - 1)]), sequence: 10), now: clock, wallClock: clock) }
var nackTick = 0.0, retransmitted = 0
while sender.retransmissionsQueued > 0 {
    clock += 500_000
    sender.heard(peerHeartbeat(highest: 0, at: clock), now: clock, wallClock: clock)
    nackTick = max(nackTick, longest { sender.tick(now: clock, wallClock: clock, ownership: share) })
    retransmitted += sender.takeOutgoing().count
}

// 2. A restarted peer that announces a data sequence of 10^12, then a gap in every other datagram.
var receiver = SyncSession(settings: SyncSettings(nodeID: 1, peerNodeID: 2, flushDelay: 0), configuredShare: share, codec: codec, incarnation: 1, now: 0)
clock = 1_000
let announce = longest { receiver.heard(peerHeartbeat(highest: 1_000_000_000_000, at: clock), now: clock, wallClock: clock) }
var gappyReceive = 0.0, gappyTick = 0.0
for step in 0..<4_000 {
    let sequence = 1_000_000_000_000 + UInt64(step * 2 + 2)
    let bytes = peerDatagram(.deltas(dataSequence: sequence, records: [record(step)]), sequence: UInt64(step + 100))
    gappyReceive = max(gappyReceive, longest { receiver.receive(bytes, now: clock, wallClock: clock) })
    clock += 100_000
    receiver.heard(peerHeartbeat(highest: sequence, at: clock), now: clock, wallClock: clock)
    gappyTick = max(gappyTick, longest { receiver.tick(now: clock, wallClock: clock, ownership: share) })
    _ = receiver.takeOutgoing()
    _ = receiver.takeEvents()
}

// 3. A snapshot of 430,000 records arriving at once: the longest single datagram.
var snapshotReceive = 0.0
for index in 0..<10_000 {
    let records = (0..<SyncWireFormat.recordsPerDatagram).map { record(index * 43 + $0) }
    let bytes = peerDatagram(.snapshotChunk(requestID: 1, dataSequence: 1_000_000_000_000 + 10_000 + UInt64(index), index: UInt32(index), isLast: false, records: records),
                             sequence: UInt64(10_000 + index))
    snapshotReceive = max(snapshotReceive, longest { receiver.receive(bytes, now: clock, wallClock: clock) })
    _ = receiver.takeEvents()
}
print("worst cases, the longest single call:")
print(String(format: "  a NACK of every sequence: taking it %.0f µs; each tick after %.0f µs at most, %d datagrams resent (%d a tick at most)",
             nackReceive, nackTick, retransmitted, SyncSettings(nodeID: 1, peerNodeID: 2).retransmissionsPerTick))
print(String(format: "  a peer announcing sequence 10^12: %.0f µs; then 4,000 datagrams each after a gap: receive %.0f µs, tick %.0f µs", announce, gappyReceive, gappyTick))
print(String(format: "  a 430,000-record snapshot arriving at once: %.0f µs for the slowest datagram of 10,000", snapshotReceive))
