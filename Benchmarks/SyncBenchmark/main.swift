// What one sync thread can carry, in process: records per second through the sending side
// (pack, number, encode, HMAC-SHA256) and through the receiving side (verify, decode, replay
// check, order, hand out), each on one core, without the socket.
//
//     swift run -c release sync-benchmark [--quick]
import DirectorCore
import DirectorSync
import DirectorWire
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
