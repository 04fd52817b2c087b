import DirectorLab
import Foundation
import Testing

extension LabSuites {
    /// The load-generator benchmark end to end, seconds long: the generator, the checking sink
    /// and the comparison of the director with nftables' fwd and conntrack DNAT, each device at a
    /// fixed rate (every frame checked) and flat out, a report written. The figures of so short
    /// a run mean nothing; that every part works does.
    @Suite("Benchmark smoke run")
    struct BenchmarkSmokeTests {
        static let binary = Lab.packageRoot + "/.build/debug/director-bench"

        @Test("compare: every device forwards, the sink finds no broken rewrite, the report is written")
        func compare() throws {
            let results = "/tmp/director-lab/bsmoke-results"
            try? FileManager.default.removeItem(atPath: results)
            defer { try? FileManager.default.removeItem(atPath: results) }
            let run = try Shell.run([BenchmarkSmokeTests.binary, "compare", "--rates", "20000", "--repeats", "1", "--seconds", "1",
                                     "--flows", "500", "--no-profile", "--prefix", "bsmoke", "--results", results], check: false)
            #expect(run.status == 0, "director-bench compare failed:\n\(run.output)\n\(run.errorOutput)")
            let report = try String(contentsOfFile: results + "/compare.md", encoding: .utf8)
            for device in ["director (DR, mh, TPACKET_V3 ring)", "director (DR, mh, TPACKET_V2 ring)", "nftables netdev fwd (DR)", "nftables conntrack DNAT"] {
                #expect(report.contains("| 20k pps | \(device) |"), "no 20k pps row for \(device)")
                #expect(report.contains("| flat out | \(device) |"), "no flat-out row for \(device)")
            }
            #expect(report.contains(" 0 misrouted, 0 flows moved to another real server, 0 duplicates"))
            #expect(FileManager.default.fileExists(atPath: results + "/compare.svg"))
            // Nothing of the benchmark's lab is left behind.
            let namespaces = try Shell.run(["ip", "netns", "list"]).output
            #expect(!namespaces.contains("bsmoke-"))
        }

        @Test("rings: every receive ring reads every frame offered at a fixed rate, the report is written")
        func rings() throws {
            let results = "/tmp/director-lab/brsmoke-results"
            try? FileManager.default.removeItem(atPath: results)
            defer { try? FileManager.default.removeItem(atPath: results) }
            let run = try Shell.run([BenchmarkSmokeTests.binary, "rings", "--rates", "20000", "--repeats", "1", "--seconds", "1",
                                     "--flows", "500", "--prefix", "brsmk", "--results", results], check: false)
            #expect(run.status == 0, "director-bench rings failed:\n\(run.output)\n\(run.errorOutput)")
            let report = try String(contentsOfFile: results + "/rings.md", encoding: .utf8)
            for ring in ["TPACKET_V3 ring", "TPACKET_V2 ring", "TPACKET_V3 ring behind an XDP program (XDP_PASS)", "AF_XDP socket, copy mode"] {
                // Every frame offered at 20 k/s read: a loss of 0.00 %.
                #expect(report.contains("| 20 k/s | \(ring) | "), "no 20 k/s row for \(ring)")
                #expect(report.contains("| flat out | \(ring) | "), "no flat-out row for \(ring)")
            }
            let fixedRateRows = report.split(separator: "\n").filter { $0.hasPrefix("| 20 k/s |") }
            #expect(fixedRateRows.count == 4 && fixedRateRows.allSatisfy { $0.contains("| 0.00 (0.00–0.00) |") }, "frames lost at 20 k/s:\n\(report)")
            #expect(!(try Shell.run(["ip", "netns", "list"]).output.contains("brsmk-")))
        }
    }
}
