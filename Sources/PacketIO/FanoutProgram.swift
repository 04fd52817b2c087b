import CDirectorShim
import DirectorCore

/// The classic-BPF program that picks a frame's worker in the PACKET_FANOUT group: the client
/// bucket (`ClientBucket`), computed in the kernel, so one flow always meets one worker and one
/// table shard. The kernel takes the program's result modulo the number of sockets in the group,
/// so worker = bucket % workers, the same rule `Worker` applies.
///
/// Loads are relative to the network header (SKF_NET_OFF): in the fan-out hook the skb's data
/// pointer may be at the network header or the MAC header, and this works for both.
/// Frames that are not IPv4 TCP/UDP (ARP above all) go to worker 0.
public enum FanoutProgram {
    static let networkOffset: UInt32 = UInt32(bitPattern: -0x100000)   // SKF_NET_OFF
    static let ancillaryProtocol: UInt32 = UInt32(bitPattern: -0x1000)  // SKF_AD_OFF + SKF_AD_PROTOCOL

    /// The instructions for `bucketCount` buckets (a power of two), client = source endpoint.
    public static func instructions(bucketCount: UInt32) -> [sock_filter] {
        precondition(bucketCount > 0 && bucketCount & (bucketCount - 1) == 0)
        let net = networkOffset
        var program: [sock_filter] = [
            statement(BPF_LD | BPF_H | BPF_ABS, ancillaryProtocol),            // A = EtherType
            jump(BPF_JMP | BPF_JEQ | BPF_K, 0x0800, 0, 0),                     // IPv4? (patched below)
            statement(BPF_LD | BPF_B | BPF_ABS, net &+ 9),                     // A = IP protocol
            jump(BPF_JMP | BPF_JEQ | BPF_K, 6, 1, 0),                          // TCP
            jump(BPF_JMP | BPF_JEQ | BPF_K, 17, 0, 0),                         // UDP (patched below)
            statement(BPF_LD | BPF_B | BPF_ABS, net),                          // A = version/IHL
            statement(BPF_ALU | BPF_AND | BPF_K, 0x0F),
            statement(BPF_ALU | BPF_LSH | BPF_K, 2),
            statement(BPF_MISC | BPF_TAX, 0),                                  // X = header length
            statement(BPF_LD | BPF_H | BPF_IND, net),                          // A = source port
            statement(BPF_ALU | BPF_MUL | BPF_K, ClientBucket.portMultiplier),
            statement(BPF_MISC | BPF_TAX, 0),
            statement(BPF_LD | BPF_W | BPF_ABS, net &+ 12),                    // A = source address
            statement(BPF_ALU | BPF_XOR | BPF_X, 0),                           // x = address ^ port*K
        ]
        program += xorShift(16) + [statement(BPF_ALU | BPF_MUL | BPF_K, ClientBucket.firstMultiplier)]
        program += xorShift(15) + [statement(BPF_ALU | BPF_MUL | BPF_K, ClientBucket.secondMultiplier)]
        program += xorShift(16)
        program += [
            statement(BPF_ALU | BPF_AND | BPF_K, bucketCount - 1),
            statement(BPF_RET | BPF_A, 0),
        ]
        let notFlow = program.count
        program.append(statement(BPF_RET | BPF_K, 0))
        program[1].jf = UInt8(notFlow - 2)
        program[4].jf = UInt8(notFlow - 5)
        return program
    }

    /// A ^= A >> shift, using X as scratch.
    private static func xorShift(_ shift: UInt32) -> [sock_filter] {
        [statement(BPF_MISC | BPF_TAX, 0), statement(BPF_ALU | BPF_RSH | BPF_K, shift), statement(BPF_ALU | BPF_XOR | BPF_X, 0)]
    }

    static func statement(_ code: Int32, _ k: UInt32) -> sock_filter {
        sock_filter(code: UInt16(code), jt: 0, jf: 0, k: k)
    }

    static func jump(_ code: Int32, _ k: UInt32, _ jt: UInt8, _ jf: UInt8) -> sock_filter {
        sock_filter(code: UInt16(code), jt: jt, jf: jf, k: k)
    }
}
