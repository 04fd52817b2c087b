import DirectorFuzzing
import Foundation
import Testing

/// The fuzzers' seeds and their checked-in corpus (Fuzz/Corpus), replayed through the same
/// harnesses the fuzzers run: what once found a bug stays found, without a fuzzer build.
@Suite struct CorpusReplayTests {
    static let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fuzz/Corpus")

    static func inputs(_ folder: String) throws -> [Data] {
        let directory = corpus.appendingPathComponent(folder)
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted()
        return try names.map { try Data(contentsOf: directory.appendingPathComponent($0)) }
    }

    @Test func forwarderSeedsAndCorpus() throws {
        for seed in ForwarderFuzzing.seeds() { seed.bytes.withUnsafeBytes { ForwarderFuzzing.run($0) } }
        let inputs = try Self.inputs("forwarder")
        #expect(inputs.count >= 20, "the forwarder corpus is checked in")
        for input in inputs { input.withUnsafeBytes { ForwarderFuzzing.run($0) } }
    }

    @Test func syncSeedsAndCorpus() throws {
        for seed in SyncFuzzing.seeds() { seed.bytes.withUnsafeBytes { SyncFuzzing.run($0) } }
        let inputs = try Self.inputs("sync")
        #expect(inputs.count >= 20, "the sync corpus is checked in")
        for input in inputs { input.withUnsafeBytes { SyncFuzzing.run($0) } }
    }
}
