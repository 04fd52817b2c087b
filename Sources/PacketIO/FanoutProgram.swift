import CDirectorShim

/// The classic-BPF program that picks a frame's worker in the PACKET_FANOUT group: the client
/// bucket, computed in the kernel, so one flow always meets one worker and one table shard. The
/// kernel takes the result modulo the number of sockets in the group, so worker = bucket mod
/// workers. Frames that are no flow's (ARP and Neighbor Discovery above all) go to worker 0.
public enum FanoutProgram {
    public static func instructions(bucketCount: UInt32) -> [sock_filter] {
        var program = ClassicBPF()
        program.loadClientBucket(bucketCount: bucketCount, notFlow: "not-flow")
        program.statement(BPF_RET | BPF_A)
        program.label("not-flow")
        program.statement(BPF_RET | BPF_K, 0)
        return program.assemble()
    }
}
