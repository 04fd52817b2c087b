import CDirectorShim
import DirectorCore
import DirectorWire

/// A small assembler for classic BPF with named jump targets, so programs read top to bottom
/// and jump offsets are computed, not counted by hand. Classic jumps reach at most 255
/// instructions forward; `assemble` checks that.
struct ClassicBPF {
    enum Target: Hashable { case next, label(String) }

    private var instructions: [sock_filter] = []
    private var pendingJumps: [(index: Int, whenTrue: Target, whenFalse: Target)] = []
    private var pendingLongJumps: [(index: Int, target: String)] = []
    private var labels: [String: Int] = [:]

    mutating func statement(_ code: Int32, _ k: UInt32 = 0) {
        instructions.append(sock_filter(code: UInt16(code), jt: 0, jf: 0, k: k))
    }

    /// A conditional jump on A compared with `k`.
    mutating func jump(_ code: Int32, _ k: UInt32, whenTrue: Target, whenFalse: Target) {
        pendingJumps.append((instructions.count, whenTrue, whenFalse))
        instructions.append(sock_filter(code: UInt16(BPF_JMP | code | BPF_K), jt: 0, jf: 0, k: k))
    }

    /// An unconditional jump (BPF_JA): its 32-bit offset reaches anywhere forward.
    mutating func jumpAlways(to name: String) {
        pendingLongJumps.append((instructions.count, name))
        instructions.append(sock_filter(code: UInt16(BPF_JMP | BPF_JA), jt: 0, jf: 0, k: 0))
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
        for jump in pendingLongJumps {
            guard let destination = labels[jump.target] else { preconditionFailure("undefined label \(jump.target)") }
            precondition(destination > jump.index, "classic BPF jumps only forward")
            program[jump.index].k = UInt32(destination - jump.index - 1)
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
        var ipv6AddressOffset: UInt32 { self == .source ? 8 : 24 }
        var portOffset: UInt32 { self == .source ? 0 : 2 }
        var opposite: ClientEndpoint { self == .source ? .destination : .source }
    }

    /// Leaves the flow's client bucket (`ClientBucket`) in A, or jumps to `notFlow` for frames
    /// that are not IPv4 or IPv6 TCP/UDP or an ICMP error about such a packet. Loads are relative
    /// to the network header (SKF_NET_OFF), which works whether the skb's data starts there or at
    /// the MAC header; a load beyond the frame ends the program with 0.
    ///
    /// An ICMP error belongs to the flow of the packet it quotes, whose client is at the other
    /// end: a packet to the client (quoted destination) when the error comes from the clients'
    /// side, a packet from it (quoted source) when it comes from the real servers' side.
    ///
    /// Each family's code ends with the client address (IPv6: folded) in A and the client port
    /// times the port multiplier in X, and jumps to the shared mix. Exits and joins are BPF_JA,
    /// whose reach is unbounded, so the conditional jumps stay short.
    mutating func loadClientBucket(bucketCount: UInt32, client: ClientEndpoint = .source, notFlow: String) {
        let net = ClassicBPF.networkOffset
        let quotedClient = client.opposite
        statement(BPF_LD | BPF_H | BPF_ABS, ClassicBPF.ancillaryProtocol)         // A = EtherType
        jump(BPF_JEQ, UInt32(EtherType.ipv4), whenTrue: .next, whenFalse: .label("bucket.not-ipv4"))
        statement(BPF_LD | BPF_B | BPF_ABS, net &+ 9)                              // A = IP protocol
        jump(BPF_JEQ, 6, whenTrue: .label("bucket.transport"), whenFalse: .next)
        jump(BPF_JEQ, 17, whenTrue: .label("bucket.transport"), whenFalse: .next)
        jump(BPF_JEQ, 1, whenTrue: .next, whenFalse: .label("v4.none"))
        // ICMP: an error (destination unreachable, time exceeded) quoting TCP or UDP.
        loadHeaderLengthIntoX(at: net)                                             // X = outer header length
        statement(BPF_LD | BPF_B | BPF_IND, net)                                   // A = ICMP type
        jump(BPF_JEQ, 3, whenTrue: .label("bucket.error"), whenFalse: .next)
        jump(BPF_JEQ, 11, whenTrue: .next, whenFalse: .label("v4.none"))
        label("bucket.error")
        statement(BPF_LD | BPF_B | BPF_IND, net &+ 8 &+ 9)                         // A = quoted protocol
        jump(BPF_JEQ, 6, whenTrue: .label("bucket.quoted"), whenFalse: .next)
        jump(BPF_JEQ, 17, whenTrue: .next, whenFalse: .label("v4.none"))
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
        jumpAlways(to: "bucket.mix")
        label("bucket.transport")
        loadHeaderLengthIntoX(at: net)                                             // X = header length
        statement(BPF_LD | BPF_H | BPF_IND, net &+ client.portOffset)              // A = client port
        statement(BPF_ALU | BPF_MUL | BPF_K, ClientBucket.portMultiplier)
        statement(BPF_MISC | BPF_TAX)
        statement(BPF_LD | BPF_W | BPF_ABS, net &+ client.addressOffset)           // A = client address
        jumpAlways(to: "bucket.mix")
        label("v4.none")
        jumpAlways(to: "bucket.none")
        label("bucket.not-ipv4")
        jump(BPF_JEQ, UInt32(EtherType.ipv6), whenTrue: .label("bucket.ipv6"), whenFalse: .next)
        jumpAlways(to: "bucket.none")
        label("bucket.ipv6")
        loadIPv6ClientEndpoint(client: client, done: "bucket.mix", none: "bucket.none")
        label("bucket.none")
        jumpAlways(to: notFlow)
        label("bucket.mix")
        statement(BPF_ALU | BPF_XOR | BPF_X)                                       // x = address ^ port*K
        xorShiftRight(16)
        statement(BPF_ALU | BPF_MUL | BPF_K, ClientBucket.firstMultiplier)
        xorShiftRight(15)
        statement(BPF_ALU | BPF_MUL | BPF_K, ClientBucket.secondMultiplier)
        xorShiftRight(16)
        statement(BPF_ALU | BPF_AND | BPF_K, bucketCount - 1)
    }

    /// IPv6: leaves the client address folded (`ClientBucket.fold`) in A and the client port
    /// times the port multiplier in X, then jumps to `done` (the shared mix); or jumps to `none`.
    ///
    /// The extension headers are walked as `FrameParser` walks them, unrolled (classic BPF only
    /// jumps forward), to the same bound: a frame with more is no flow's, here as there. Scratch:
    /// M[1] the folded address, M[2] a next-header number, M[3] a header's offset.
    private mutating func loadIPv6ClientEndpoint(client: ClientEndpoint, done: String, none: String) {
        let net = ClassicBPF.networkOffset
        let limit = IPv6Header.extensionHeaderLimit
        statement(BPF_LDX | BPF_IMM, 0)
        foldIPv6Address(at: net &+ client.ipv6AddressOffset)                        // M[1] = folded client address
        statement(BPF_LDX | BPF_IMM, UInt32(IPv6Header.length))                      // X = offset of the next header
        statement(BPF_LD | BPF_B | BPF_ABS, net &+ UInt32(IPv6Header.nextHeaderOffset)) // A = its number
        for step in 0...limit {
            label("v6.step.\(step)")
            jump(BPF_JEQ, UInt32(TransportProtocol.tcp.rawValue), whenTrue: .label("v6.transport.\(step)"), whenFalse: .next)
            jump(BPF_JEQ, UInt32(TransportProtocol.udp.rawValue), whenTrue: .label("v6.transport.\(step)"), whenFalse: .next)
            jump(BPF_JEQ, UInt32(ICMPv6Header.protocolNumber), whenTrue: .label("v6.icmp.\(step)"), whenFalse: .next)
            guard step < limit else {
                jumpAlways(to: none)    // still an extension header, or any other protocol
                label("v6.transport.\(step)")
                jumpAlways(to: "v6.transport")
                label("v6.icmp.\(step)")
                jumpAlways(to: "v6.icmp")
                break
            }
            jump(BPF_JEQ, UInt32(IPv6Header.fragment), whenTrue: .label("v6.fragment.\(step)"), whenFalse: .next)
            jump(BPF_JEQ, UInt32(IPv6Header.hopByHopOptions), whenTrue: .label("v6.extension.\(step)"), whenFalse: .next)
            jump(BPF_JEQ, UInt32(IPv6Header.routing), whenTrue: .label("v6.extension.\(step)"), whenFalse: .next)
            jump(BPF_JEQ, UInt32(IPv6Header.destinationOptions), whenTrue: .label("v6.extension.\(step)"), whenFalse: .next)
            jumpAlways(to: none)
            label("v6.transport.\(step)")
            jumpAlways(to: "v6.transport")
            label("v6.icmp.\(step)")
            jumpAlways(to: "v6.icmp")
            label("v6.extension.\(step)")                                           // (length field + 1) × 8 bytes
            statement(BPF_LD | BPF_B | BPF_IND, net)
            statement(BPF_ST, 2)                                                     // M[2] = its next header
            statement(BPF_LD | BPF_B | BPF_IND, net &+ 1)
            statement(BPF_ALU | BPF_ADD | BPF_K, 1)
            statement(BPF_ALU | BPF_LSH | BPF_K, 3)
            statement(BPF_ALU | BPF_ADD | BPF_X)
            statement(BPF_MISC | BPF_TAX)                                            // X = past it
            statement(BPF_LD | BPF_MEM, 2)
            jumpAlways(to: "v6.step.\(step + 1)")
            label("v6.fragment.\(step)")                                            // 8 bytes
            statement(BPF_LD | BPF_B | BPF_IND, net)
            statement(BPF_ST, 2)
            statement(BPF_MISC | BPF_TXA)
            statement(BPF_ALU | BPF_ADD | BPF_K, 8)
            statement(BPF_MISC | BPF_TAX)
            statement(BPF_LD | BPF_MEM, 2)
        }
        // TCP or UDP at X: the client port. (A later fragment has no ports here; what its bytes
        // give does not matter, since the director drops it wherever it lands.)
        label("v6.transport")
        statement(BPF_LD | BPF_H | BPF_IND, net &+ client.portOffset)
        statement(BPF_ALU | BPF_MUL | BPF_K, ClientBucket.portMultiplier)
        statement(BPF_MISC | BPF_TAX)
        statement(BPF_LD | BPF_MEM, 1)
        jumpAlways(to: done)
        // ICMPv6 at X: an error quoting a TCP or UDP packet whose transport header follows its
        // fixed header; its client is the quoted packet's other end.
        label("v6.icmp")
        statement(BPF_LD | BPF_B | BPF_IND, net)                                     // A = ICMPv6 type
        jump(BPF_JEQ, UInt32(ICMPv6Header.destinationUnreachable), whenTrue: .label("v6.error"), whenFalse: .next)
        jump(BPF_JEQ, UInt32(ICMPv6Header.packetTooBig), whenTrue: .label("v6.error"), whenFalse: .next)
        jump(BPF_JEQ, UInt32(ICMPv6Header.timeExceeded), whenTrue: .label("v6.error"), whenFalse: .next)
        jumpAlways(to: none)
        label("v6.error")
        let quoted = net &+ UInt32(ICMPv6Header.length)
        statement(BPF_LD | BPF_B | BPF_IND, quoted &+ UInt32(IPv6Header.nextHeaderOffset))
        jump(BPF_JEQ, UInt32(TransportProtocol.tcp.rawValue), whenTrue: .label("v6.quoted"), whenFalse: .next)
        jump(BPF_JEQ, UInt32(TransportProtocol.udp.rawValue), whenTrue: .label("v6.quoted"), whenFalse: .next)
        jumpAlways(to: none)
        label("v6.quoted")
        foldIPv6Address(at: quoted &+ client.opposite.ipv6AddressOffset)
        statement(BPF_LDX | BPF_MEM, 3)
        statement(BPF_LD | BPF_H | BPF_IND, quoted &+ UInt32(IPv6Header.length) &+ client.opposite.portOffset)
        statement(BPF_ALU | BPF_MUL | BPF_K, ClientBucket.portMultiplier)
        statement(BPF_MISC | BPF_TAX)
        statement(BPF_LD | BPF_MEM, 1)
        jumpAlways(to: done)
    }

    /// M[1] = `ClientBucket.fold` of the IPv6 address at X + `offset`; M[3] = X, which the
    /// multiply-and-xor chain needs as scratch.
    private mutating func foldIPv6Address(at offset: UInt32) {
        statement(BPF_STX, 3)
        for word in 0..<UInt32(4) {
            statement(BPF_LDX | BPF_MEM, 3)
            statement(BPF_LD | BPF_W | BPF_IND, offset &+ 4 * word)
            if word > 0 {
                statement(BPF_LDX | BPF_MEM, 1)
                statement(BPF_ALU | BPF_XOR | BPF_X)
            }
            if word < 3 { statement(BPF_ALU | BPF_MUL | BPF_K, ClientBucket.portMultiplier) }
            statement(BPF_ST, 1)
        }
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
