import CDirectorShim
import DirectorCore

/// The packet filter in the dispatcher's kernel: a classic-BPF socket filter on every worker's
/// receive socket that accepts the frames of the buckets this dispatcher owns and drops the rest
/// before they are copied into the ring. Frames that are no flow's (ARP, Neighbor Discovery, …) are accepted:
/// the director decides about those itself.
///
/// Ownership is compiled into the program as ranges of buckets (`ClassicBPF.acceptOwnedBuckets`).
/// A change is a new program attached
/// with SO_ATTACH_FILTER, which the kernel swaps atomically per socket: the ring stays open and
/// the frames of buckets that stay owned keep flowing.
public enum OwnershipFilter {
    /// Accept: keep the whole frame (the filter's result is the number of bytes to keep).
    static let acceptAll: UInt32 = 0xFFFF_FFFF

    public static func instructions(for ownership: BucketOwnership) -> [sock_filter] {
        var program = ClassicBPF()
        program.loadClientBucket(bucketCount: ownership.bucketCount, notFlow: "not-flow")
        // Classic jumps reach 255 instructions: every target below is at most a few away.
        program.jump(BPF_JGE, 0, whenTrue: .label("range.0"), whenFalse: .next)   // always true: skip the next line
        program.label("not-flow")
        program.statement(BPF_RET | BPF_K, acceptAll)
        program.acceptOwnedBuckets(ownership, acceptAll: acceptAll)
        return program.assemble()
    }

    /// Attaches (or atomically replaces) the filter on a socket (setsockopt SO_ATTACH_FILTER).
    public static func attach(_ ownership: BucketOwnership, to socket: Int32) throws(SystemCallError) {
        let instructions = instructions(for: ownership)
        try instructions.withUnsafeBufferPointer { (buffer) throws(SystemCallError) in
            let program = sock_fprog(len: UInt16(buffer.count), filter: UnsafeMutablePointer(mutating: buffer.baseAddress))
            try SystemCall.setOption(socket, level: SOL_SOCKET, name: SO_ATTACH_FILTER, program,
                                     "attaching the ownership filter (\(ownership.ownedCount) of \(ownership.bucketCount) buckets)")
        }
    }
}
