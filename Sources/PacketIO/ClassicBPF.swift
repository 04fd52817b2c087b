import CDirectorShim
import DirectorCore

/// A small assembler for classic BPF with named jump targets, so programs read top to bottom
/// and jump offsets are computed, not counted by hand. Classic jumps reach at most 255
/// instructions forward; `assemble` checks that.
struct ClassicBPF {
    enum Target: Hashable { case next, label(String) }

    private var instructions: [sock_filter] = []
    private var pendingJumps: [(index: Int, whenTrue: Target, whenFalse: Target)] = []
    private var labels: [String: Int] = [:]

    mutating func statement(_ code: Int32, _ k: UInt32 = 0) {
        instructions.append(sock_filter(code: UInt16(code), jt: 0, jf: 0, k: k))
    }

    /// A conditional jump on A compared with `k`.
    mutating func jump(_ code: Int32, _ k: UInt32, whenTrue: Target, whenFalse: Target) {
        pendingJumps.append((instructions.count, whenTrue, whenFalse))
        instructions.append(sock_filter(code: UInt16(BPF_JMP | code | BPF_K), jt: 0, jf: 0, k: k))
    }

    mutating func label(_ name: String) { labels[name] = instructions.count }

    func assemble() -> [sock_filter] {
        var program = instructions
        for jump in pendingJumps {
            func offset(_ target: Target) -> UInt8 {
                guard case .label(let name) = target else { return 0 }
                guard let destination = labels[name] else { preconditionFailure("undefined label \(name)") }
                let distance = destination - jump.index - 1
                precondition(distance >= 0 && distance <= 255, "jump to \(name) out of classic BPF's reach")
                return UInt8(distance)
            }
            program[jump.index].jt = offset(jump.whenTrue)
            program[jump.index].jf = offset(jump.whenFalse)
        }
        return program
    }

    // MARK: - The client bucket, shared by the fan-out program and the ownership filter

    static let networkOffset: UInt32 = UInt32(bitPattern: -0x100000)   // SKF_NET_OFF
    static let linkLayerOffset: UInt32 = UInt32(bitPattern: -0x200000) // SKF_LL_OFF
    static let ancillaryProtocol: UInt32 = UInt32(bitPattern: -0x1000)  // SKF_AD_OFF + SKF_AD_PROTOCOL

    /// Which end of a frame is the client: the source of a frame from a client, the destination
    /// of a NAT reply.
    enum ClientEndpoint {
        case source, destination
        var addressOffset: UInt32 { self == .source ? 12 : 16 }
        var portOffset: UInt32 { self == .source ? 0 : 2 }
    }

    /// Leaves the flow's client bucket (`ClientBucket`) in A, or jumps to `notFlow` for frames
    /// that are not IPv4 TCP/UDP or an ICMP error about such a packet. Loads are relative to the
    /// network header (SKF_NET_OFF), which works whether the skb's data starts there or at the
    /// MAC header; a load beyond the frame ends the program with 0.
    ///
    /// An ICMP error belongs to the flow of the packet it quotes, whose client is at the other
    /// end: a packet to the client (quoted destination) when the error comes from the clients'
    /// side, a packet from it (quoted source) when it comes from the real servers' side.
    mutating func loadClientBucket(bucketCount: UInt32, client: ClientEndpoint = .source, notFlow: String) {
        let net = ClassicBPF.networkOffset
        let quotedClient: ClientEndpoint = client == .source ? .destination : .source
        statement(BPF_LD | BPF_H | BPF_ABS, ClassicBPF.ancillaryProtocol)         // A = EtherType
        jump(BPF_JEQ, 0x0800, whenTrue: .next, whenFalse: .label(notFlow))
        statement(BPF_LD | BPF_B | BPF_ABS, net &+ 9)                              // A = IP protocol
        jump(BPF_JEQ, 6, whenTrue: .label("bucket.transport"), whenFalse: .next)
        jump(BPF_JEQ, 17, whenTrue: .label("bucket.transport"), whenFalse: .next)
        jump(BPF_JEQ, 1, whenTrue: .next, whenFalse: .label(notFlow))
        // ICMP: an error (destination unreachable, time exceeded) quoting TCP or UDP.
        loadHeaderLengthIntoX(at: net)                                             // X = outer header length
        statement(BPF_LD | BPF_B | BPF_IND, net)                                   // A = ICMP type
        jump(BPF_JEQ, 3, whenTrue: .label("bucket.error"), whenFalse: .next)
        jump(BPF_JEQ, 11, whenTrue: .next, whenFalse: .label(notFlow))
        label("bucket.error")
        statement(BPF_LD | BPF_B | BPF_IND, net &+ 8 &+ 9)                         // A = quoted protocol
        jump(BPF_JEQ, 6, whenTrue: .label("bucket.quoted"), whenFalse: .next)
        jump(BPF_JEQ, 17, whenTrue: .next, whenFalse: .label(notFlow))
        label("bucket.quoted")
        statement(BPF_LD | BPF_W | BPF_IND, net &+ 8 &+ quotedClient.addressOffset) // A = client address (quoted)
        statement(BPF_ST, 1)                                                        // M[1] = it
        statement(BPF_LD | BPF_B | BPF_IND, net &+ 8)                              // A = quoted version/IHL
        statement(BPF_ALU | BPF_AND | BPF_K, 0x0F)
        statement(BPF_ALU | BPF_LSH | BPF_K, 2)
        statement(BPF_ALU | BPF_ADD | BPF_X)
        statement(BPF_MISC | BPF_TAX)                                              // X = both header lengths
        statement(BPF_LD | BPF_H | BPF_IND, net &+ 8 &+ quotedClient.portOffset)   // A = client port (quoted)
        statement(BPF_ALU | BPF_MUL | BPF_K, ClientBucket.portMultiplier)
        statement(BPF_MISC | BPF_TAX)
        statement(BPF_LD | BPF_MEM, 1)                                             // A = client address
        jump(BPF_JGE, 0, whenTrue: .label("bucket.mix"), whenFalse: .next)         // always
        label("bucket.transport")
        loadHeaderLengthIntoX(at: net)                                             // X = header length
        statement(BPF_LD | BPF_H | BPF_IND, net &+ client.portOffset)              // A = client port
        statement(BPF_ALU | BPF_MUL | BPF_K, ClientBucket.portMultiplier)
        statement(BPF_MISC | BPF_TAX)
        statement(BPF_LD | BPF_W | BPF_ABS, net &+ client.addressOffset)           // A = client address
        label("bucket.mix")
        statement(BPF_ALU | BPF_XOR | BPF_X)                                       // x = address ^ port*K
        xorShiftRight(16)
        statement(BPF_ALU | BPF_MUL | BPF_K, ClientBucket.firstMultiplier)
        xorShiftRight(15)
        statement(BPF_ALU | BPF_MUL | BPF_K, ClientBucket.secondMultiplier)
        xorShiftRight(16)
        statement(BPF_ALU | BPF_AND | BPF_K, bucketCount - 1)
    }

    /// With the bucket in A: accepts the frame (returns `acceptAll`) if `ownership` has the
    /// bucket, else drops it. Ownership is compiled in as ranges of buckets, 3 instructions a
    /// range: at most 512 ranges for 1,024 buckets, well inside the kernel's 4,096-instruction
    /// limit, and every jump is at most a few instructions long.
    mutating func acceptOwnedBuckets(_ ownership: BucketOwnership, acceptAll: UInt32) {
        let ranges = ownership.ownedRanges
        for (index, range) in ranges.enumerated() {
            let next = "range.\(index + 1)"
            label("range.\(index)")
            jump(BPF_JGT, range.upperBound, whenTrue: .label(next), whenFalse: .next)
            jump(BPF_JGE, range.lowerBound, whenTrue: .next, whenFalse: .label(next))
            statement(BPF_RET | BPF_K, acceptAll)
        }
        label("range.\(ranges.count)")
        statement(BPF_RET | BPF_K, 0)
    }

    /// X = the IPv4 header length at `offset` (its IHL × 4).
    private mutating func loadHeaderLengthIntoX(at offset: UInt32) {
        statement(BPF_LD | BPF_B | BPF_ABS, offset)
        statement(BPF_ALU | BPF_AND | BPF_K, 0x0F)
        statement(BPF_ALU | BPF_LSH | BPF_K, 2)
        statement(BPF_MISC | BPF_TAX)
    }

    /// A ^= A >> shift, with X as scratch.
    private mutating func xorShiftRight(_ shift: UInt32) {
        statement(BPF_MISC | BPF_TAX)
        statement(BPF_ALU | BPF_RSH | BPF_K, shift)
        statement(BPF_ALU | BPF_XOR | BPF_X)
    }
}
