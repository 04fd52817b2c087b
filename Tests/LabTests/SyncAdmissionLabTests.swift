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
            let tables = try lab.inNamespace(a.namespace, ["nft", "list", "tables"]).output
            let table = try #require(tables.split(separator: "\n").first { $0.hasPrefix("table inet director_sync_") }
                .map { String($0.dropFirst("table inet ".count)) }, "the admission table is installed: \(tables)")
            /// Packets dropped by each rule of the admission table, by the words of its comment.
            func drops() throws -> [String: Int] {
                let listing = try lab.inNamespace(a.namespace, ["nft", "list", "table", "inet", table]).output
                var counts: [String: Int] = [:]
                for line in listing.split(separator: "\n") where line.contains("counter packets") {
                    let words = line.split(separator: " ")
                    guard let packets = words.firstIndex(of: "packets").flatMap({ Int(words[$0 + 1]) }) else { continue }
                    for reason in ["crossover link", "from the peer\"", "peer's sockets"] where line.contains(reason) { counts[reason] = packets }
                }
                return counts
            }
            let before = try drops()
            #expect(before.count == 3, "three rules with counters: \(before)")
            let target = "/dev/udp/\(Lab.crossoverAddress(0))/7439"
            // 20 from director 1's own host (they arrive on lo), 20 from the peer host's address
            // but not from its sync or liveness socket.
            for namespace in [a.namespace, b.namespace] {
                for _ in 0..<20 {
                    try lab.inNamespace(namespace, ["bash", "-c", "echo forged > \(target)"], check: false)
                }
            }
            let after = try drops()
            print("sync admission: drops per rule \(after)")
            #expect((after["crossover link"] ?? 0) - (before["crossover link"] ?? 0) == 20, "the local ones, by the interface rule")
            #expect((after["peer's sockets"] ?? 0) - (before["peer's sockets"] ?? 0) == 20, "the peer host's other ports, by the port rule")
            #expect(try a.buckets("show").contains("owns 512 of 1024 buckets: 0-511"), "the pair stays split")
            a.stop()
            let remaining = try lab.inNamespace(a.namespace, ["nft", "list", "tables"]).output
            #expect(!remaining.contains("director_sync_"), "the table goes with the director")
        }
    }
}
