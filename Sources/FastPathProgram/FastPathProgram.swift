/// The XDP fast path's compiled program (`fast_path.bpf.c`, built for the BPF target by the
/// CompileXDPProgram plugin, which adds `object`). The loader lives in PacketIO (`XDPFastPath`).
public enum FastPathProgram {
    /// The program's section and function name in the object.
    public static let programName = "director_fast_path"
}
