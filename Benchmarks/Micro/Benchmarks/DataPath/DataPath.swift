// The data path's pieces, each alone: parsing a frame, the client bucket hash, the connection
// table's lookup and insert at 1 k … 10 M entries, a Maglev table build at M = 65537, the
// incremental checksum, and a whole new connection (SYN → Maglev → insert).
import Benchmark
import DirectorCore
import DirectorWire

let virtualAddress = IPv4Address(198, 18, 0, 100)
let virtualMAC = MACAddress("02:18:00:00:00:64")!

/// Flow n: clients spread over 198.19.0.0/16 and the port range.
func key(_ n: Int) -> FlowKey<IPv4Address> {
    FlowKey(clientAddress: IPv4Address(rawValue: IPv4Address(198, 19, 0, 0).rawValue &+ UInt32(n % 65_000)), clientPort: UInt16(1024 + n / 65_000),
            virtualAddress: virtualAddress, virtualPort: 80, transport: .tcp)
}

func realServers(_ count: Int) -> [RealServer] {
    (0..<count).map { RealServer(id: UInt16($0 + 1), address: IPv4Address(rawValue: IPv4Address(198, 18, 2, 11).rawValue + UInt32($0)), port: 80,
                                 weight: 1, mac: MACAddress(rawValue: 0x02_18_00_00_02_00 + UInt64($0))) }
}

/// A table holding `size` established connections, and a scattered sample of their keys: as
/// many as there are, up to 4 M (more than any cache holds).
final class FilledTable {
    var table: ConnectionTable<IPv4Address>
    let sample: [(key: FlowKey<IPv4Address>, hash: UInt32)]

    init(size: Int) {
        table = ConnectionTable<IPv4Address>(capacity: size * 9 / 8 + 64)!
        for n in 0..<size {
            let key = key(n)
            _ = table.insert(ConnectionEntry(key: key, keyHash: key.tableHash, state: .established, realServerID: 1, expiresAt: .max))
        }
        var generator = SystemRandomNumberGenerator()
        sample = (0..<min(size, 4_000_000)).map { _ in
            let key = key(Int.random(in: 0..<size, using: &generator))
            return (key, key.tableHash)
        }
    }
}

struct NoChanges: ConnectionChangeSink {
    mutating func record(_ change: ConnectionChange<IPv4Address>) {}
    mutating func record(_ change: ConnectionChange<IPv6Address>) {}
}

let tableSizes = [1_000, 100_000, 1_000_000, 10_000_000]
/// Tables by size, built in a benchmark's setup (once, not per iteration) and dropped in its teardown.
nonisolated(unsafe) var filledTables: [Int: FilledTable] = [:]

/// Results per operation: each iteration runs a thousand.
func perOperation() -> Benchmark.Configuration {
    .init(metrics: [.wallClock, .throughput, .mallocCountTotal], scalingFactor: .kilo, maxDuration: .seconds(2), maxIterations: 1_000)
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = perOperation()

    let frame = PacketBuilder().ethernet(from: MACAddress("02:18:00:00:01:01")!, to: virtualMAC).ipv4(from: IPv4Address(198, 19, 0, 1), to: virtualAddress)
        .tcp(sourcePort: 40_000, destinationPort: 80, flags: [.ack, .psh]).payload([UInt8](repeating: 0, count: 12)).build()
    Benchmark("Parse: TCP data segment, 66 bytes") { benchmark in
        frame.withUnsafeBytes { bytes in
            for _ in benchmark.scaledIterations { blackHole(FrameParser.parse(bytes.bytes)) }
        }
    }

    Benchmark("Bucket hash: client address and port → bucket of 1024") { benchmark in
        var port: UInt16 = 0
        for _ in benchmark.scaledIterations {
            port &+= 1
            blackHole(ClientBucket.bucket(address: IPv4Address(198, 19, 0, 1), port: port, bucketCount: 1024))
        }
    }

    Benchmark("Checksum: incremental update for a rewritten address (RFC 1624)") { benchmark in
        var checksum: UInt16 = 0x1c46
        var address: UInt32 = 0xC612_0064
        for _ in benchmark.scaledIterations {
            address &+= 1
            checksum = InternetChecksum.updated(checksum, replacing: address, with: address &+ 0x0101)
        }
        blackHole(checksum)
    }

    for size in tableSizes {
        // Built once per size, before the first measurement; 10 M entries take a few seconds.
        Benchmark("Table lookup: \(size) entries", configuration: perOperation(), closure: { benchmark in
            let state = filledTables[size]!
            var index = 0
            for _ in benchmark.scaledIterations {
                let probe = state.sample[index]
                // The next key depends on what this lookup read from the table (the slot number
                // alone would not do: it is predicted with the branches), so lookups cannot
                // overlap: this is a lookup's latency, the cost a frame sees.
                let slot = state.table.find(probe.key, hash: probe.hash) ?? 0
                index = (index + Int(state.table[slot].realServerID)) % state.sample.count
            }
        }, setup: { filledTables[size] = FilledTable(size: size) }, teardown: { filledTables[size] = nil })

        Benchmark("Table insert and remove: \(size) entries", configuration: perOperation(), closure: { benchmark in
            let state = filledTables[size]!
            var n = size
            for _ in benchmark.scaledIterations {
                let key = key(n)
                n += 1
                if case .inserted(let slot) = state.table.insert(ConnectionEntry(key: key, keyHash: key.tableHash, state: .synReceived,
                                                                                 realServerID: 1, expiresAt: .max)) {
                    state.table.remove(at: slot)
                }
            }
        }, setup: { filledTables[size] = FilledTable(size: size) }, teardown: { filledTables[size] = nil })
    }

    for servers in [10, 100] {
        Benchmark("Maglev table build: M = 65537, \(servers) real servers",
                  configuration: .init(metrics: [.wallClock, .mallocCountTotal], maxDuration: .seconds(2))) { benchmark in
            let pool = realServers(servers)
            for _ in benchmark.scaledIterations { blackHole(MaglevScheduler(pool: pool, tableSize: 65537)) }
        }
    }

    // A whole new connection as the worker meets it: parse, service lookup, table miss, Maglev
    // pick, insert, DR rewrite. Each run starts from an empty table.
    Benchmark("New connection: SYN → Maglev → insert → rewrite", configuration: perOperation()) { benchmark in
        let services = ServiceTable(services: [VirtualService(address: virtualAddress, port: 80, transport: .tcp, pool: realServers(10), scheduler: .maglev)])
        var forwarder = Forwarder(table: ConnectionTable<IPv4Address>(capacity: 1 << 20)!, services: services,
                                  settings: ForwarderSettings(virtualMAC: virtualMAC, backMAC: MACAddress("02:18:00:00:02:01")!), changes: NoChanges())
        let syn = PacketBuilder().ethernet(from: MACAddress("02:18:00:00:01:01")!, to: virtualMAC).ipv4(from: IPv4Address(198, 19, 0, 1), to: virtualAddress)
            .tcp(sourcePort: 1024, destinationPort: 80, flags: .syn).build()
        var scratch = syn
        var n = 0
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            let client = key(n)
            n += 1
            scratch.withUnsafeMutableBytes { buffer in
                syn.withUnsafeBytes { buffer.copyMemory(from: $0) }
                var span = buffer.mutableBytes
                span.storeBigEndian(client.clientAddress.rawValue, at: 14 + IPv4Header.sourceOffset)
                span.storeBigEndian(client.clientPort, at: 34)
                blackHole(forwarder.process(&span, now: 1))
            }
        }
    }
}
