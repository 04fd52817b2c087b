import DirectorCore
import DirectorWire
import Testing

func flowKey(_ n: Int, port: UInt16 = 80) -> FlowKey<IPv4Address> {
    FlowKey(clientAddress: IPv4Address(rawValue: 0xC612_0000 | UInt32(n & 0xFFFF)), clientPort: UInt16(truncatingIfNeeded: 1024 + (n >> 16)),
            virtualAddress: IPv4Address(198, 18, 0, 100), virtualPort: port, transport: .tcp)
}

func entry(_ key: FlowKey<IPv4Address>, state: ConnectionState = .established, expiresAt: UInt64 = 1_000, server: UInt16 = 1, proven: Bool = false) -> ConnectionEntry<IPv4Address> {
    var entry = ConnectionEntry(key: key, keyHash: key.tableHash, state: state, realServerID: server, expiresAt: expiresAt)
    entry.isProven = proven
    return entry
}

@Suite("Connection table")
struct ConnectionTableTests {
    @Test("an entry is 32 bytes for IPv4 (56 for IPv6); the table holds at most 48 bytes per IPv4 connection (84 per IPv6 one)")
    func layout() {
        #expect(MemoryLayout<ConnectionEntry<IPv4Address>>.size == 32 && MemoryLayout<ConnectionEntry<IPv4Address>>.stride == 32)
        #expect(MemoryLayout<ConnectionEntry<IPv6Address>>.stride == 56)
        let table = ConnectionTable<IPv4Address>(capacity: 100_000)!
        #expect(Double(table.memoryFootprint) / 100_000 <= 48.01)
        let table6 = ConnectionTable<IPv6Address>(capacity: 100_000)!
        #expect(Double(table6.memoryFootprint) / 100_000 <= 84.01)
    }

    @Test("matches a dictionary model under random insert, lookup and delete (IPv4, then IPv6 clients in one /64)")
    func modelCheck() {
        check { flowKey($0) }
        // Clients that differ only in their interface identifier, as one /64's do.
        check { n in
            FlowKey(clientAddress: IPv6Address(high: 0x2001_0002_0000_0001, low: UInt64(n & 0xFFFF) << 7), clientPort: UInt16(truncatingIfNeeded: 1024 + (n >> 16)),
                    virtualAddress: IPv6Address("2001:2::100")!, virtualPort: 80, transport: .tcp)
        }
    }

    private func check<Address>(_ flowKey: (Int) -> FlowKey<Address>) {
        var table = ConnectionTable<Address>(capacity: 2_000)!
        var model: [FlowKey<Address>: UInt16] = [:]
        var generator = SystemRandomNumberGenerator()
        for step in 0..<60_000 {
            let key = flowKey(Int.random(in: 0..<3_000, using: &generator))
            let slot = table.find(key, hash: key.tableHash)
            #expect((slot != nil) == (model[key] != nil), "step \(step)")
            if let slot {
                #expect(table[slot].realServerID == model[key])
                if Bool.random(using: &generator) { table.remove(at: slot); model[key] = nil }
            } else if model.count < table.capacity {
                let server = UInt16.random(in: 1...9, using: &generator)
                guard case .inserted = table.insert(ConnectionEntry(key: key, keyHash: key.tableHash, state: .established, realServerID: server,
                                                                    expiresAt: 1_000)) else { Issue.record("insert failed"); return }
                model[key] = server
            }
            #expect(table.count == model.count)
        }
        for (key, server) in model {
            guard let slot = table.find(key, hash: key.tableHash) else { Issue.record("lost \(key)"); continue }
            #expect(table[slot].realServerID == server)
        }
    }

    @Test("a full shard refuses a new flow when every entry is proven")
    func fullOfProven() {
        var table = ConnectionTable<IPv4Address>(capacity: 64)!
        for n in 0..<64 {
            guard case .inserted(let slot) = table.insert(entry(flowKey(n), proven: true)) else { Issue.record("insert \(n) refused below capacity"); return }
            #expect(table.find(flowKey(n), hash: flowKey(n).tableHash) == slot)
        }
        #expect(table.count == 64)
        #expect(table.insert(entry(flowKey(999))) == .full)
        for n in 0..<64 { #expect(table.find(flowKey(n), hash: flowKey(n).tableHash) != nil) }
    }

    @Test("a full shard reclaims the unproven entry nearest its expiry, never a proven one")
    func reclaim() {
        var table = ConnectionTable<IPv4Address>(capacity: 32)!
        for n in 0..<32 {
            let state: ConnectionState = n % 4 == 0 ? .synReceived : .established
            // The proven ones expire first: proof, not age, is what protects an entry.
            _ = table.insert(entry(flowKey(n), state: state, expiresAt: n % 4 == 0 ? 10_000 + UInt64(n) : 5_000, proven: n % 4 != 0))
        }
        let outcome = table.insert(entry(flowKey(500), state: .synReceived, expiresAt: 20_000))
        guard case .insertedByReclaiming(_, let reclaimed) = outcome else { Issue.record("expected reclaim, got \(outcome)"); return }
        #expect(reclaimed.state == .synReceived)
        #expect(reclaimed.key == flowKey(0), "the half-open entry with the earliest expiry")
        #expect(table.count == 32 && table.find(flowKey(500), hash: flowKey(500).tableHash) != nil)
    }

    @Test("expiry is incremental and removes only what is due")
    func expiry() {
        var table = ConnectionTable<IPv4Address>(capacity: 1_000)!
        for n in 0..<1_000 { _ = table.insert(entry(flowKey(n), expiresAt: n < 600 ? 100 : 10_000)) }
        var removed = 0
        let first = table.expire(now: 500, budget: 100) { _ in removed += 1 }
        #expect(first < 600, "one call examines at most its budget of slots")
        for _ in 0..<40 { table.expire(now: 500, budget: 100) { _ in removed += 1 } }
        #expect(removed == 600 && table.count == 400)
        for n in 600..<1_000 { #expect(table.find(flowKey(n), hash: flowKey(n).tableHash) != nil) }
    }
}

@Suite("TCP states (client side, as IPVS DR)")
struct ConnectionStateTests {
    struct Step: Sendable, CustomTestStringConvertible {
        let from: ConnectionState, flags: TCPFlags, to: ConnectionState
        var testDescription: String { "\(from) +\(flags.rawValue) -> \(to)" }
    }

    @Test("transitions", arguments: [
        Step(from: .none, flags: .syn, to: .synReceived),
        Step(from: .synReceived, flags: .ack, to: .established),
        Step(from: .established, flags: [.ack, .psh], to: .established),
        Step(from: .established, flags: [.fin, .ack], to: .finWait),
        Step(from: .finWait, flags: .ack, to: .finWait),
        Step(from: .synReceived, flags: .fin, to: .timeWait),
        Step(from: .established, flags: .rst, to: .close),
        Step(from: .synReceived, flags: .rst, to: .synReceived),
        Step(from: .timeWait, flags: .syn, to: .synReceived),
        Step(from: .close, flags: .ack, to: .close),
        Step(from: .established, flags: [], to: .established),
    ])
    func transition(_ step: Step) {
        #expect(step.from.next(afterClientSegment: step.flags) == step.to)
    }

    @Test("default timeouts are IPVS's")
    func timeouts() {
        let t = ConnectionTimeouts()
        #expect(t.timeout(for: .established) == 900_000 && t.timeout(for: .synReceived) == 60_000)
        #expect(t.timeout(for: .finWait) == 120_000 && t.timeout(for: .close) == 10_000)
        #expect(t.timeout(for: .timeWait) == 120_000 && t.timeout(for: .udp) == 300_000)
    }
}

@Suite("Client bucket")
struct ClientBucketTests {
    /// Test vectors of the bucket function; the kernel's fan-out program must give the same.
    static let vectors: [(address: IPv4Address, port: UInt16, hash: UInt32)] = [
        (IPv4Address(198, 18, 1, 10), 40000, 0x4622_E88D),
        (IPv4Address(198, 18, 1, 11), 80, 0x76AE_F772),
        (IPv4Address(0, 0, 0, 0), 0, 0x0000_0000),
        (IPv4Address(255, 255, 255, 255), 65535, 0xC7C5_3A88),
        (IPv4Address(203, 0, 113, 7), 1, 0xBB28_4DEB),
        (IPv4Address(198, 19, 255, 254), 33333, 0x59BD_EB7E),
    ]

    /// IPv6 test vectors: the address folded to 32 bits, then the same function.
    static let vectors6: [(address: String, port: UInt16, fold: UInt32, hash: UInt32)] = [
        ("2001:2::1:10", 40000, 0xE018_5032, 0x713E_E4B4),
        ("2001:2::1:11", 80, 0xE018_5033, 0x9B7F_6422),
        ("::", 0, 0x0000_0000, 0x0000_0000),
        ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535, 0x6A54_D560, 0x72EE_DB86),
        ("2001:db8::7", 1, 0x2116_A93F, 0x0CC4_D32A),
        ("2001:2:0:ffff::fffe", 33333, 0x97DE_1C83, 0x135A_0E4A),
        ("::198.18.1.10", 40000, 0xC612_010A, 0x4622_E88D),
        ("fe80::1", 546, 0xE680_0001, 0x9169_7A5F),
    ]

    @Test("matches the published test vectors (computed independently)")
    func vectorsMatch() throws {
        for vector in ClientBucketTests.vectors {
            #expect(ClientBucket.hash(address: vector.address, port: vector.port) == vector.hash, "\(vector.address):\(vector.port)")
        }
        for vector in ClientBucketTests.vectors6 {
            let address = try #require(IPv6Address(vector.address))
            #expect(ClientBucket.fold(address) == vector.fold, "fold of \(vector.address)")
            #expect(ClientBucket.hash(address: address, port: vector.port) == vector.hash, "[\(vector.address)]:\(vector.port)")
        }
    }

    @Test("spreads client ports, and client addresses, evenly over 1024 buckets (chi-square)")
    func spread() {
        for vary in ["port", "address"] {
            var counts = [Double](repeating: 0, count: 1024)
            for n in 0..<65536 {
                let address = IPv4Address(rawValue: IPv4Address(198, 18, 1, 10).rawValue &+ (vary == "address" ? UInt32(n) : 0))
                let port = vary == "port" ? UInt16(n) : 80
                counts[Int(ClientBucket.bucket(address: address, port: port, bucketCount: 1024))] += 1
            }
            let chiSquare = counts.reduce(0) { $0 + ($1 - 64) * ($1 - 64) / 64 }
            // 1023 degrees of freedom: mean 1023, standard deviation 45; allow five of them.
            #expect(chiSquare < 1023 + 5 * 45, "varying \(vary): chi-square \(chiSquare)")
        }
        // IPv6: clients numbered in the last word (one /64), and in the network's words.
        for vary in ["interface identifier", "prefix"] {
            var counts = [Double](repeating: 0, count: 1024)
            let base = IPv6Address("2001:2::1:10")!
            for n in 0..<65536 {
                let address = vary == "prefix" ? IPv6Address(high: base.high &+ UInt64(n) << 16, low: base.low)
                                               : IPv6Address(high: base.high, low: base.low &+ UInt64(n))
                counts[Int(ClientBucket.bucket(address: address, port: 443, bucketCount: 1024))] += 1
            }
            let chiSquare = counts.reduce(0) { $0 + ($1 - 64) * ($1 - 64) / 64 }
            #expect(chiSquare < 1023 + 5 * 45, "IPv6, varying the \(vary): chi-square \(chiSquare)")
        }
    }
}
