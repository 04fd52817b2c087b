// The per-packet pipeline in process, without rings or a kernel: what user space costs per
// frame. Prints nanoseconds per forwarded frame for established flows at several table sizes,
// and new connections per second (SYN → schedule with Maglev → insert).
//
//     swift run -c release pipeline-benchmark [--quick]
import DirectorCore
import DirectorWire
#if canImport(Glibc)
import Glibc
#endif

struct NoChanges: ConnectionChangeSink {
    mutating func record(_ change: ConnectionChange<IPv4Address>) {}
    mutating func record(_ change: ConnectionChange<IPv6Address>) {}
}

let vipMAC = MACAddress("02:00:00:00:00:64")!
let vip = IPv4Address(198, 18, 0, 100)
let quick = CommandLine.arguments.contains("--quick")

func nanoseconds() -> UInt64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
}

func makeForwarder(capacity: Int) -> Forwarder<NoChanges> {
    let pool = (0..<10).map { RealServer(id: UInt16($0 + 1), address: IPv4Address(198, 18, 2, UInt8(11 + $0)), port: 80, weight: 1,
                                         mac: MACAddress(rawValue: 0x02_00_00_00_02_00 + UInt64($0))) }
    let services = ServiceTable(services: [VirtualService(address: vip, port: 80, transport: .tcp, pool: pool, scheduler: .maglev)])
    return Forwarder(table: ConnectionTable<IPv4Address>(capacity: capacity)!, services: services,
                     settings: ForwarderSettings(virtualMAC: vipMAC, backMAC: MACAddress("02:00:00:00:00:b0")!), changes: NoChanges())
}

/// Frame `n` of a flow set: client address and port spread over a /16 and the port range.
func frame(_ n: Int, flags: TCPFlags, payload: Int = 0) -> [UInt8] {
    PacketBuilder().ethernet(from: MACAddress("02:00:00:00:01:01")!, to: vipMAC)
        .ipv4(from: IPv4Address(rawValue: IPv4Address(198, 18, 0, 0).rawValue &+ UInt32(n % 65_000) &+ 256), to: vip)
        .tcp(sourcePort: UInt16(1024 + n / 65_000), destinationPort: 80, flags: flags)
        .payload([UInt8](repeating: 0x61, count: payload)).build()
}

/// Frames packed one per 64-byte slot in one buffer, as a receive ring holds them.
struct FrameBatch {
    static let stride = 64
    let storage: UnsafeMutableRawBufferPointer
    let count: Int
    let length: Int

    init(_ frames: [[UInt8]]) {
        let length = frames[0].count
        precondition(length <= FrameBatch.stride && frames.allSatisfy { $0.count == length })
        count = frames.count
        self.length = length
        let storage = UnsafeMutableRawBufferPointer.allocate(byteCount: count * FrameBatch.stride, alignment: 64)
        for (index, frame) in frames.enumerated() {
            frame.withUnsafeBytes { UnsafeMutableRawBufferPointer(rebasing: storage[(index * FrameBatch.stride)...]).copyMemory(from: $0) }
        }
        self.storage = storage
    }
}

/// Runs a batch through the forwarder `rounds` times, copying each frame into a scratch buffer
/// first (the pipeline rewrites in place; the transmit ring copies anyway), and returns
/// nanoseconds per frame.
func measure(_ forwarder: inout Forwarder<NoChanges>, frames: FrameBatch, rounds: Int, now: UInt64) -> Double {
    let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 2048, alignment: 64)
    defer { scratch.deallocate() }
    var forwarded = 0
    let start = nanoseconds()
    for _ in 0..<rounds {
        for index in 0..<frames.count {
            scratch.baseAddress!.copyMemory(from: frames.storage.baseAddress! + index * FrameBatch.stride, byteCount: frames.length)
            var span = UnsafeMutableRawBufferPointer(rebasing: scratch[0..<frames.length]).mutableBytes
            if case .transmitOnBack = forwarder.process(&span, now: now) { forwarded += 1 }
        }
    }
    let elapsed = nanoseconds() - start
    precondition(forwarded == frames.count * rounds, "every frame must be forwarded")
    return Double(elapsed) / Double(frames.count * rounds)
}

print("pipeline benchmark (user space only: parse, service, table, Maglev, DR rewrite)")
print("table entries | ns/frame (established flows, 64 B frames) | bytes of table per connection")
let sizes = quick ? [1_000, 100_000] : [1_000, 100_000, 1_000_000, 10_000_000]
var results: [(Int, Double)] = []
for size in sizes {
    var forwarder = makeForwarder(capacity: size)
    for n in 0..<size { _ = forwarder.process(frame(n, flags: .syn), now: 1) }
    precondition(forwarder.table.count == size)
    // Touch flows in a scattered order, as many clients would, not in insertion order.
    let sample = min(size, 200_000)
    var generator = SystemRandomNumberGenerator()
    // Data segments of 64 bytes, as a client's requests are: after the first round every flow
    // is an ESTABLISHED connection its client has proven real, the path real traffic takes.
    let frames = FrameBatch((0..<sample).map { _ in frame(Int.random(in: 0..<size, using: &generator), flags: [.ack, .psh], payload: 10) })
    let rounds = max(1, (quick ? 1_000_000 : 4_000_000) / sample)
    let best = (0..<3).map { _ in measure(&forwarder, frames: frames, rounds: rounds, now: 2) }.min()!
    results.append((size, best))
    let bytes = Double(forwarder.table.memoryFootprint) / Double(size)
    print("\(String(size).padding(13)) | \(format(best).padding(42)) | \(format(bytes))")
}
if let first = results.first, let last = results.last {
    print("lookup cost at \(last.0) entries / at \(first.0): \(format(last.1 / first.1))x")
}

// New connections: every frame a SYN of a flow never seen, into an empty table each round.
let newFlows = quick ? 200_000 : 1_000_000
let synFrames = FrameBatch((0..<newFlows).map { frame($0, flags: .syn) })
var bestRate = 0.0
for _ in 0..<3 {
    var forwarder = makeForwarder(capacity: newFlows)
    let perFrame = measure(&forwarder, frames: synFrames, rounds: 1, now: 1)
    bestRate = max(bestRate, 1e9 / perFrame)
}
print("new connections per second on one core (SYN → Maglev → insert): \(Int(bestRate))")

extension Forwarder {
    mutating func process(_ frame: [UInt8], now: UInt64) -> Verdict {
        var copy = frame
        return copy.withUnsafeMutableBytes { buffer in
            var span = buffer.mutableBytes
            return process(&span, now: now)
        }
    }
}

func format(_ value: Double) -> String {
    let scaled = (value * 10).rounded() / 10
    return String(scaled)
}

extension String {
    func padding(_ width: Int) -> String { self + String(repeating: " ", count: max(0, width - count)) }
}
