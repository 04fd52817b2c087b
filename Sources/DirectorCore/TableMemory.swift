#if canImport(Glibc)
import Glibc
#endif

/// Where a table's slots live. The core does not know about NUMA nodes; the daemon passes an
/// allocator that places a worker's shard on the worker's node (`NUMAMemory` in PacketIO).
public struct TableMemory: Sendable {
    public var allocate: @Sendable (_ byteCount: Int) -> UnsafeMutableRawPointer?
    public var release: @Sendable (_ pointer: UnsafeMutableRawPointer, _ byteCount: Int) -> Void

    public init(allocate: @escaping @Sendable (Int) -> UnsafeMutableRawPointer?,
                release: @escaping @Sendable (UnsafeMutableRawPointer, Int) -> Void) {
        self.allocate = allocate
        self.release = release
    }

    /// Tables at least this large ask for transparent huge pages (see `ConnectionTable`).
    public static let hugePageThreshold = 4 << 20

    /// Ordinary heap memory: aligned to 2 MiB where transparent huge pages will be asked to back
    /// it, to a cache line otherwise (a 2 MiB alignment costs a small table a large reservation).
    public static let heap = TableMemory(
        allocate: { byteCount in
            var pointer: UnsafeMutableRawPointer?
            let alignment = byteCount >= hugePageThreshold ? 2 << 20 : 64
            return posix_memalign(&pointer, alignment, byteCount) == 0 ? pointer : nil
        },
        release: { pointer, _ in free(pointer) })
}
