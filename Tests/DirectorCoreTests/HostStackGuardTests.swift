@testable import DirectorDaemon
import Testing

@Suite("Host-stack guard")
struct HostStackGuardTests {
    @Test("each family's virtual addresses get their own rules; a family without one gets none (nftables refuses an empty set)")
    func rulesByFamily() {
        let mixed = HostStackGuard(interface: "front", virtualAddresses: ["198.18.0.100", "198.18.0.101", "2001:2::100"]).ruleset
        #expect(mixed.contains("ip daddr { 198.18.0.100, 198.18.0.101 } counter drop"))
        #expect(mixed.contains("arp daddr ip { 198.18.0.100, 198.18.0.101 } counter drop"))
        #expect(mixed.contains("ip6 daddr { 2001:2::100 } counter drop"))
        let ipv6Only = HostStackGuard(interface: "front", virtualAddresses: ["2001:2::100"]).ruleset
        #expect(!ipv6Only.contains("ip daddr") && !ipv6Only.contains("arp daddr") && ipv6Only.contains("ip6 daddr { 2001:2::100 }"))
        let ipv4Only = HostStackGuard(interface: "front", virtualAddresses: ["198.18.0.100"]).ruleset
        #expect(!ipv4Only.contains("ip6 daddr"))
    }

    @Test("reports write an IPv6 endpoint in brackets, as ipvsadm does")
    func endpoints() {
        #expect(ServicesReport.endpoint("198.18.0.100", 80) == "198.18.0.100:80")
        #expect(ServicesReport.endpoint("2001:2::100", 80) == "[2001:2::100]:80")
    }
}
