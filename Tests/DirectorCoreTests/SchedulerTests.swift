import DirectorCore
import DirectorWire
import Testing

func pool(_ weights: [UInt32]) -> [RealServer] {
    weights.enumerated().map { index, weight in
        RealServer(id: UInt16(index + 1), address: IPv4Address(198, 18, 2, UInt8(11 + index)), port: 80, weight: weight,
                   mac: MACAddress(rawValue: 0x02_00_00_00_02_00 + UInt64(index)))
    }
}

func distribution(_ kind: SchedulerKind, weights: [UInt32], flows: Int) -> [Int] {
    let servers = pool(weights)
    let scheduler = Scheduler(kind: kind, pool: servers)
    var cursor = SchedulerCursor()
    let load = ConnectionLoad()
    var counts = [Int](repeating: 0, count: servers.count)
    for n in 0..<flows {
        if let index = scheduler.select(flowKey(n), pool: servers, cursor: &cursor, load: load) {
            counts[index] += 1
            load.connectionOpened(servers[index].id, state: .established)
        }
    }
    return counts
}

func withinShare(_ counts: [Int], weights: [UInt32], tolerance: Double) -> Bool {
    let total = Double(counts.reduce(0, +))
    let weightTotal = Double(weights.reduce(0, +))
    return zip(counts, weights).allSatisfy { count, weight in
        let expected = total * Double(weight) / weightTotal
        return abs(Double(count) - expected) <= expected * tolerance + 0.5
    }
}

@Suite("Schedulers")
struct SchedulerTests {
    @Test("rr takes servers in turn and skips weight 0")
    func roundRobin() {
        let servers = pool([1, 0, 1])
        let scheduler = Scheduler(kind: .roundRobin, pool: servers)
        var cursor = SchedulerCursor()
        let load = ConnectionLoad()
        let picks = (0..<6).compactMap { scheduler.select(flowKey($0), pool: servers, cursor: &cursor, load: load) }
        #expect(picks == [0, 2, 0, 2, 0, 2])
    }

    @Test("wrr follows weights within 5 % over 100 k flows")
    func weightedRoundRobin() {
        let weights: [UInt32] = [1, 2, 3, 4]
        #expect(withinShare(distribution(.weightedRoundRobin, weights: weights, flows: 100_000), weights: weights, tolerance: 0.05))
    }

    @Test("wrr interleaves as IPVS does for weights 4:3:2")
    func wrrSequence() {
        let servers = pool([4, 3, 2])
        let scheduler = Scheduler(kind: .weightedRoundRobin, pool: servers)
        var cursor = SchedulerCursor()
        let load = ConnectionLoad()
        let picks = (0..<9).compactMap { scheduler.select(flowKey($0), pool: servers, cursor: &cursor, load: load) }
        #expect(picks == [0, 0, 1, 0, 1, 2, 0, 1, 2])
    }

    @Test("lc spreads evenly; wlc follows weights", arguments: [SchedulerKind.leastConnection, .weightedLeastConnection])
    func leastConnection(_ kind: SchedulerKind) {
        let weights: [UInt32] = [1, 2, 3]
        let counts = distribution(kind, weights: weights, flows: 60_000)
        if kind == .leastConnection {
            #expect(counts.allSatisfy { abs($0 - 20_000) <= 1 })
        } else {
            #expect(withinShare(counts, weights: weights, tolerance: 0.01))
        }
    }

    @Test("lc counts active connections 256 times inactive ones")
    func overhead() {
        let servers = pool([1, 1])
        let scheduler = Scheduler(kind: .leastConnection, pool: servers)
        var cursor = SchedulerCursor()
        let load = ConnectionLoad()
        load.connectionOpened(servers[0].id, state: .established)
        for _ in 0..<255 { load.connectionOpened(servers[1].id, state: .synReceived) }
        #expect(scheduler.select(flowKey(1), pool: servers, cursor: &cursor, load: load) == 1)
        load.connectionOpened(servers[1].id, state: .synReceived)
        load.connectionOpened(servers[1].id, state: .synReceived)
        #expect(scheduler.select(flowKey(1), pool: servers, cursor: &cursor, load: load) == 0)
    }

    @Test("sh and mh follow weights and map a client consistently", arguments: [SchedulerKind.sourceHash, .maglev])
    func consistent(_ kind: SchedulerKind) {
        let weights: [UInt32] = [1, 2, 3]
        #expect(withinShare(distribution(kind, weights: weights, flows: 120_000), weights: weights, tolerance: 0.05))
        let servers = pool(weights)
        let a = Scheduler(kind: kind, pool: servers), b = Scheduler(kind: kind, pool: servers.reversed())
        var cursor = SchedulerCursor()
        let load = ConnectionLoad()
        for n in 0..<2_000 {
            let first = a.select(flowKey(n), pool: servers, cursor: &cursor, load: load).map { servers[$0].address }
            let second = b.select(flowKey(n), pool: servers.reversed(), cursor: &cursor, load: load).map { servers.reversed()[$0].address }
            if kind == .maglev { #expect(first == second, "two directors, pools listed in different orders") }
            #expect(first == a.select(flowKey(n), pool: servers, cursor: &cursor, load: load).map { servers[$0].address })
        }
    }

    @Test("mh: removing 1 of 10 servers remaps at most 1/10 of slots + 1 %; adding it back restores them")
    func maglevDisruption() {
        let ten = pool([UInt32](repeating: 1, count: 10))
        let nine = Array(ten.dropLast(4) + ten.suffix(3))   // server 7 (index 6) removed
        let full = MaglevScheduler(pool: ten), reduced = MaglevScheduler(pool: nine), restored = MaglevScheduler(pool: ten)
        #expect(full.lookup.count == 65537)
        var moved = 0
        for slot in 0..<full.tableSize where ten[Int(full.lookup[slot])].address != nine[Int(reduced.lookup[slot])].address { moved += 1 }
        let share = Double(moved) / Double(full.tableSize)
        #expect(share <= 0.1 + 0.01, "moved \(share)")
        #expect(full.lookup == restored.lookup)
        var perServer = [Int](repeating: 0, count: 10)
        for index in full.lookup { perServer[Int(index)] += 1 }
        #expect(perServer.allSatisfy { abs($0 - 6554) < 6554 / 20 }, "each server owns about M/N slots")
    }

    @Test("no server with weight: no choice", arguments: SchedulerKind.allCases)
    func allQuiesced(_ kind: SchedulerKind) {
        #expect(distribution(kind, weights: [0, 0], flows: 10) == [0, 0])
    }
}
