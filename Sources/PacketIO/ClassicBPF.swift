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
    /// that are not IPv4 TCP/UDP. Loads are relative to the network header (SKF_NET_OFF), which
    /// works whether the skb's data starts there or at the MAC header.
    mutating func loadClientBucket(bucketCount: UInt32, client: ClientEndpoint = .source, notFlow: String) {
        let net = ClassicBPF.networkOffset
        statement(BPF_LD | BPF_H | BPF_ABS, ClassicBPF.ancillaryProtocol)         // A = EtherType
        jump(BPF_JEQ, 0x0800, whenTrue: .next, whenFalse: .label(notFlow))
        statement(BPF_LD | BPF_B | BPF_ABS, net &+ 9)                              // A = IP protocol
        jump(BPF_JEQ, 6, whenTrue: .label("bucket.transport"), whenFalse: .next)
        jump(BPF_JEQ, 17, whenTrue: .next, whenFalse: .label(notFlow))
        label("bucket.transport")
        statement(BPF_LD | BPF_B | BPF_ABS, net)                                   // A = version/IHL
        statement(BPF_ALU | BPF_AND | BPF_K, 0x0F)
        statement(BPF_ALU | BPF_LSH | BPF_K, 2)
        statement(BPF_MISC | BPF_TAX)                                              // X = header length
        statement(BPF_LD | BPF_H | BPF_IND, net &+ client.portOffset)              // A = client port
        statement(BPF_ALU | BPF_MUL | BPF_K, ClientBucket.portMultiplier)
        statement(BPF_MISC | BPF_TAX)
        statement(BPF_LD | BPF_W | BPF_ABS, net &+ client.addressOffset)           // A = client address
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

    /// A ^= A >> shift, with X as scratch.
    private mutating func xorShiftRight(_ shift: UInt32) {
        statement(BPF_MISC | BPF_TAX)
        statement(BPF_ALU | BPF_RSH | BPF_K, shift)
        statement(BPF_ALU | BPF_XOR | BPF_X)
    }
}
