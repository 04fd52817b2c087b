import DirectorWire

/// mh: Maglev consistent hashing (Eisenbud et al., "Maglev: A Fast and Reliable Software Network
/// Load Balancer", NSDI 2016, §3.4), with weights as IPVS's `ip_vs_mh` honours them.
///
/// Every real server walks its own permutation of the M slots (offset and skip derived from its
/// address and port only) and claims the next free one, in turns, until all M slots are taken.
/// A server of weight w takes w/gcd turns per round. Because the table depends only on the pool,
/// two directors with the same pool build the same table and send a flow to the same real server
/// without talking; removing one of N servers moves only about 1/N of the slots.
public struct MaglevScheduler: RealServerScheduler {
    /// A prime well above 100 × the largest pool, as the paper advises (IPVS's default too).
    public static let defaultTableSize = 65537
    public static let unassigned = UInt16.max

    public let tableSize: Int
    /// Pool index per slot, or `unassigned` when no server has weight.
    public let lookup: [UInt16]

    public init(pool: [RealServer], tableSize: Int = MaglevScheduler.defaultTableSize) {
        precondition(tableSize > 1 && pool.count < Int(MaglevScheduler.unassigned))
        self.tableSize = tableSize
        self.lookup = MaglevScheduler.populate(pool: pool, tableSize: tableSize)
    }

    static func populate(pool: [RealServer], tableSize: Int) -> [UInt16] {
        var table = [UInt16](repeating: unassigned, count: tableSize)
        // Servers take their turns in address order, not config order: contested slots then go
        // the same way on every director whatever order its config lists the pool in.
        let members = pool.indices.filter { pool[$0].weight > 0 }
            .sorted { (pool[$0].address, pool[$0].port) < (pool[$1].address, pool[$1].port) }
        guard !members.isEmpty else { return table }
        let step = members.map { Int(pool[$0].weight) }.reduce(0, greatestCommonDivisor)
        let offsets = members.map { Int(permutationSeed(pool[$0], salt: 0x6D61_676C_6576_3031) % UInt64(tableSize)) }
        let skips = members.map { Int(permutationSeed(pool[$0], salt: 0x736B_6970_7365_6564) % UInt64(tableSize - 1)) + 1 }
        let turns = members.map { Int(pool[$0].weight) / step }
        var nextIndex = [Int](repeating: 0, count: members.count)
        var filled = 0
        while true {
            for member in members.indices {
                for _ in 0..<turns[member] {
                    var slot = (offsets[member] + nextIndex[member] * skips[member]) % tableSize
                    while table[slot] != unassigned {
                        nextIndex[member] += 1
                        slot = (offsets[member] + nextIndex[member] * skips[member]) % tableSize
                    }
                    table[slot] = UInt16(members[member])
                    nextIndex[member] += 1
                    filled += 1
                    if filled == tableSize { return table }
                }
            }
        }
    }

    /// A server's permutation depends only on its address and port (not on its place in the
    /// pool), so reordering a pool in the config changes nothing.
    static func permutationSeed(_ server: RealServer, salt: UInt64) -> UInt64 {
        let addressWord = switch server.address {
        case .v4(let address): UInt64(address.rawValue)
        case .v6(let address): address.high &* 0x9E37_79B9_7F4A_7C15 ^ address.low
        }
        var x = (addressWord << 16 | UInt64(server.port)) ^ salt
        x = (x ^ (x >> 30)) &* 0xBF58_476D_1CE4_E5B9
        x = (x ^ (x >> 27)) &* 0x94D0_49BB_1331_11EB
        return x ^ (x >> 31)
    }

    @inlinable
    public func slot<Address>(for flow: FlowKey<Address>) -> Int { Int(flow.tableHash % UInt32(tableSize)) }

    @inlinable
    public func select<Address>(_ flow: FlowKey<Address>, pool: [RealServer], cursor: inout SchedulerCursor, load: borrowing ConnectionLoad) -> Int? {
        let index = lookup[slot(for: flow)]
        return index == MaglevScheduler.unassigned ? nil : Int(index)
    }
}
