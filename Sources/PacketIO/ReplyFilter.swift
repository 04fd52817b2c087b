import CDirectorShim
import DirectorCore
import DirectorWire

/// The packet filter on each worker's receive socket on the back interface, where NAT real
/// servers' replies arrive (sent to the gateway MAC). It accepts a reply when this dispatcher
/// owns its bucket and this worker holds its table shard; ARP, the Neighbor Solicitations for
/// the IPv6 gateway (to its solicited-node group) and whatever else comes to the gateway MAC
/// that is no flow's go to worker 0 only. Everything else on the back segment (health-check
/// answers, the host's own traffic) is never copied into a ring.
///
/// The bucket is the *client's*: on a reply, the destination endpoint. So a flow meets the same
/// dispatcher, and the same worker, in both directions.
///
/// The back sockets form no fan-out group: each worker's filter selects its own share, bucket
/// mod workers, the share the front's fan-out (`FanoutProgram`) gives it. A fan-out group
/// orders its sockets by when they joined, and the kernel reorders them when a link goes down
/// and up; the filters keep the back side's share fixed whatever happens to the group. The cost
/// is one filter run per worker for each frame to the gateway MAC.
public enum ReplyFilter {
    static let acceptAll: UInt32 = 0xFFFF_FFFF

    public static func instructions(for ownership: BucketOwnership, gatewayMAC: MACAddress, gatewayAddress6: IPv6Address? = nil,
                                    worker: Int, workers: Int) -> [sock_filter] {
        var program = ClassicBPF()
        // The exits past the bucket code are BPF_JA: a conditional jump reaches only 255
        // instructions, and the bucket code is most of that.
        program.statement(BPF_LD | BPF_H | BPF_ABS, ClassicBPF.ancillaryProtocol)      // A = EtherType
        program.jump(BPF_JEQ, UInt32(EtherType.arp), whenTrue: .next, whenFalse: .label("not-arp"))
        program.jumpAlways(to: "arp")
        program.label("not-arp")
        // The destination MAC: the gateway's, its IPv6 address's solicited-node group, or not a reply.
        program.statement(BPF_LD | BPF_W | BPF_ABS, ClassicBPF.linkLayerOffset)
        program.jump(BPF_JEQ, UInt32(truncatingIfNeeded: gatewayMAC.rawValue >> 16), whenTrue: .next, whenFalse: .label("other-mac"))
        program.statement(BPF_LD | BPF_H | BPF_ABS, ClassicBPF.linkLayerOffset &+ 4)
        program.jump(BPF_JEQ, UInt32(truncatingIfNeeded: gatewayMAC.rawValue & 0xFFFF), whenTrue: .label("gateway-mac"), whenFalse: .label("drop-near"))
        program.label("other-mac")
        if let gatewayAddress6 {
            let group = gatewayAddress6.solicitedNodeMulticast.multicastMAC
            program.jump(BPF_JEQ, UInt32(truncatingIfNeeded: group.rawValue >> 16), whenTrue: .next, whenFalse: .label("drop-near"))
            program.statement(BPF_LD | BPF_H | BPF_ABS, ClassicBPF.linkLayerOffset &+ 4)
            program.jump(BPF_JEQ, UInt32(truncatingIfNeeded: group.rawValue & 0xFFFF), whenTrue: .next, whenFalse: .label("drop-near"))
            program.jumpAlways(to: "arp")
        }
        program.label("drop-near")
        program.jumpAlways(to: "drop")
        program.label("gateway-mac")
        program.loadClientBucket(bucketCount: ownership.bucketCount, client: .destination, notFlow: "arp")
        program.statement(BPF_ST, 0)                                                    // M[0] = bucket
        program.statement(BPF_ALU | BPF_MOD | BPF_K, UInt32(workers))
        program.jump(BPF_JEQ, UInt32(worker), whenTrue: .next, whenFalse: .label("drop"))
        program.statement(BPF_LD | BPF_MEM, 0)                                          // A = bucket
        program.jump(BPF_JGE, 0, whenTrue: .label("range.0"), whenFalse: .next)         // always: over the two exits
        // Address resolution for the gateway, and what comes to its MAC that is no flow's
        // (unicast solicitations checking that it is still there among them): worker 0's.
        program.label("arp")
        program.statement(BPF_RET | BPF_K, worker == 0 ? acceptAll : 0)
        program.label("drop")
        program.statement(BPF_RET | BPF_K, 0)
        program.acceptOwnedBuckets(ownership, acceptAll: acceptAll)
        return program.assemble()
    }

    /// Attaches (or atomically replaces) the filter on a back socket.
    public static func attach(_ ownership: BucketOwnership, gatewayMAC: MACAddress, gatewayAddress6: IPv6Address? = nil, worker: Int, workers: Int,
                              to socket: Int32) throws(SystemCallError) {
        let instructions = instructions(for: ownership, gatewayMAC: gatewayMAC, gatewayAddress6: gatewayAddress6, worker: worker, workers: workers)
        try instructions.withUnsafeBufferPointer { (buffer) throws(SystemCallError) in
            let program = sock_fprog(len: UInt16(buffer.count), filter: UnsafeMutablePointer(mutating: buffer.baseAddress))
            try SystemCall.setOption(socket, level: SOL_SOCKET, name: SO_ATTACH_FILTER, program,
                                     "attaching the reply filter of worker \(worker) (\(ownership.ownedCount) of \(ownership.bucketCount) buckets)")
        }
    }
}
