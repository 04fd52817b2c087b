#if canImport(Glibc)
import Glibc
#endif

/// Writes a harness's seeds into a folder (`seed-<name>` files) when `DIRECTOR_FUZZ_SEEDS` names
/// one: the fuzzers call it at start, so a run begins from every kind of valid input.
public enum FuzzSeeds {
    public static func writeIfAsked(_ seeds: [(name: String, bytes: [UInt8])]) {
        guard let folder = getenv("DIRECTOR_FUZZ_SEEDS").map({ String(cString: $0) }) else { return }
        for seed in seeds {
            guard let file = fopen(folder + "/seed-" + seed.name, "w") else { continue }
            _ = seed.bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, file) }
            fclose(file)
        }
    }
}
