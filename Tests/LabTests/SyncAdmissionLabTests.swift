import DirectorLab
import Foundation
import Testing

extension LabSuites {
    /// The pair's ports take datagrams only from the peer's sockets on the crossover link: the
    /// director's own nftables table drops the rest before any socket sees it, and goes with it.
    @Suite("Lab: sync admission")
    struct SyncAdmissionLabTests {
        @Test("datagrams to the sync port from a local process or from the peer host's other ports are dropped and counted; the table goes at stop")
        func onlyThePeerSocketsGetIn() throws {
            let (lab, a, b) = try startPair(prefix: "tad", scheduler: "mh")
            defer { a.stop(); b.stop(); lab.tearDown() }
            let rules = try lab.inNamespace(a.namespace, ["nft", "list", "ruleset"]).output
            #expect(rules.contains("table inet director_sync_"), "\(rules)")
            let syncPort = 7439
            let target = "/dev/udp/\(Lab.crossoverAddress(0))/\(syncPort)"
            // From director 1's own host (arrives on lo), and from the peer host on another port.
            for namespace in [a.namespace, b.namespace] {
                for _ in 0..<20 {
                    try lab.inNamespace(namespace, ["bash", "-c", "echo forged > \(target)"], check: false)
                }
            }
            let counted = try lab.inNamespace(a.namespace, ["nft", "list", "ruleset"]).output
            let drops = counted.split(separator: "\n").filter { $0.contains("counter packets") && $0.contains("drop") }
                .compactMap { line -> Int? in
                    let words = line.split(separator: " ")
                    return words.firstIndex(of: "packets").flatMap { Int(words[$0 + 1]) }
                }
            print("sync admission: drops per rule \(drops)")
            #expect(drops.reduce(0, +) >= 40, "every forged datagram is dropped by a rule: \(counted)")
            let rejected = try a.stats().filter { $0.key.contains("sync_rejected") }.values.reduce(0, +)
            #expect(rejected == 0, "none reached the sync socket")
            #expect(try a.buckets("show").contains("owns 512 of 1024 buckets: 0-511"), "the pair stays split")
            a.stop()
            let after = try lab.inNamespace(a.namespace, ["nft", "list", "ruleset"]).output
            #expect(!after.contains("director_sync_"), "the table goes with the director")
        }
    }
}
