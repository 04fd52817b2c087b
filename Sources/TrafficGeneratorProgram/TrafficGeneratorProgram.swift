/// The benchmark's XDP traffic generator (`traffic_generator.bpf.c`, built for the BPF target by
/// the CompileXDPProgram plugin, which adds `object`). director-bench runs it (`XDPTrafficSender`).
public enum TrafficGeneratorProgram {
    /// The program's function name in the object.
    public static let programName = "director_traffic_generator"
}
