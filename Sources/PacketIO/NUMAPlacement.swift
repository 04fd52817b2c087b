import CDirectorShim
import DirectorCore
#if canImport(Glibc)
import Glibc
#endif

/// Where a worker's memory goes: the NUMA node of the CPU it is pinned to, through libnuma.
/// On a machine or kernel without NUMA support (`numa_available() < 0`) it falls back to the
/// ordinary heap, which on such a machine is the same memory anyway.
public struct NUMAPlacement: Sendable {
    public let cpu: Int
    /// The CPU's node, or nil when NUMA is unavailable.
    public let node: Int32?

    public init(cpu: Int) {
        self.cpu = cpu
        if numa_available() >= 0 {
            let node = numa_node_of_cpu(Int32(cpu))
            self.node = node >= 0 ? node : nil
        } else {
            node = nil
        }
    }

    public static var isAvailable: Bool { numa_available() >= 0 }

    /// Allocation on this node (numa_alloc_onnode / numa_free), or the heap. The table writes
    /// its zeros at start: every page is resident (and a node out of memory shows) before the
    /// first frame, not as page faults under traffic.
    public var tableMemory: TableMemory {
        guard let node else { return .heap }
        return TableMemory(
            allocate: { byteCount in numa_alloc_onnode(byteCount, node) },
            release: { pointer, byteCount in numa_free(pointer, byteCount) })
    }

    /// The same placement, left untouched until written (numa_alloc_onnode maps anonymous
    /// memory, which reads as zero): for the IPv6 shard, which costs no RAM where no IPv6
    /// service runs, and pays its page faults as its first flows arrive where one does.
    public var untouchedTableMemory: TableMemory {
        guard let node else { return .anonymousMapping }
        return TableMemory(
            allocate: { byteCount in numa_alloc_onnode(byteCount, node) },
            release: { pointer, byteCount in numa_free(pointer, byteCount) },
            comesZeroed: true)
    }

    /// Pins the calling thread to `cpu` and prefers its node for the kernel memory it allocates
    /// next (the packet rings are allocated by the kernel in the context of the calling thread).
    public func pinCurrentThread() throws(SystemCallError) {
        let result = director_pin_current_thread(Int32(cpu))
        guard result == 0 else {
            throw SystemCallError(call: "pthread_setaffinity_np", context: "pinning a worker to CPU \(cpu)", errno: result)
        }
        if let node { numa_set_preferred(node) }
    }
}
