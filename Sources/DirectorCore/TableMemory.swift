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

    /// Ordinary heap memory, aligned to 2 MiB so transparent huge pages can back it.
    public static let heap = TableMemory(
        allocate: { byteCount in
            var pointer: UnsafeMutableRawPointer?
            return posix_memalign(&pointer, 2 << 20, byteCount) == 0 ? pointer : nil
        },
        release: { pointer, _ in free(pointer) })
}
