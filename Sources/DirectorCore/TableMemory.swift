#if canImport(Glibc)
import Glibc
#endif

/// Where a table's slots live. The core does not know about NUMA nodes; the daemon passes an
/// allocator that places a worker's shard on the worker's node (`NUMAMemory` in PacketIO).
public struct TableMemory: Sendable {
    public var allocate: @Sendable (_ byteCount: Int) -> UnsafeMutableRawPointer?
    public var release: @Sendable (_ pointer: UnsafeMutableRawPointer, _ byteCount: Int) -> Void
    /// The memory comes zeroed and untouched (a fresh anonymous mapping): the table does not
    /// write its zeros itself, so its pages become resident as entries are written. An IPv6
    /// shard that never sees an IPv6 flow then costs address space, not RAM.
    public var comesZeroed: Bool

    public init(allocate: @escaping @Sendable (Int) -> UnsafeMutableRawPointer?,
                release: @escaping @Sendable (UnsafeMutableRawPointer, Int) -> Void, comesZeroed: Bool = false) {
        self.allocate = allocate
        self.release = release
        self.comesZeroed = comesZeroed
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

    /// A private anonymous mapping of its own: zero pages until written.
    public static let anonymousMapping = TableMemory(
        allocate: { byteCount in
            let pointer = mmap(nil, byteCount, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
            return pointer == MAP_FAILED ? nil : pointer
        },
        release: { pointer, byteCount in munmap(pointer, byteCount) },
        comesZeroed: true)
}
