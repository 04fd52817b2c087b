import Foundation

/// Keeps the host's own network stack away from the frames the director handles.
///
/// A packet socket receives a copy of each frame; the stack still gets the original. Left alone,
/// a host holding the VIP answers a client's SYN with a RST, and with forwarding on it forwards a
/// duplicate. A netdev-family nftables rule on the front interface's ingress hook drops those
/// frames before the stack sees them, while packet sockets bound to ETH_P_ALL (taps run before
/// the netdev ingress hook) still receive them. It also saves the CPU the stack would spend on
/// them. Only frames for the virtual addresses are dropped; the host's own traffic is untouched.
///
/// With NAT, the back interface gets a chain too: the real servers' replies to the gateway MAC
/// and ARP for the gateway address are the director's, never the host's (a host that forwards
/// would route the replies to the clients untranslated).
public struct HostStackGuard: Sendable {
    public let interface: String
    public let virtualAddresses: [String]
    /// NAT: the back interface and the gateway the director answers for there.
    public let gateway: (interface: String, address: String, mac: String)?

    public init(interface: String, virtualAddresses: [String], gateway: (interface: String, address: String, mac: String)? = nil) {
        self.interface = interface
        self.virtualAddresses = virtualAddresses
        self.gateway = gateway
    }

    /// One table per front interface, so two directors on one host never touch each other's.
    public var tableName: String { "director_" + Self.nftablesIdentifier(interface) }

    /// `text` with every character nftables does not take in a name replaced by "_".
    static func nftablesIdentifier(_ text: String) -> String {
        text.map { $0.isLetter || $0.isNumber ? String($0) : "_" }.joined()
    }

    var ruleset: String {
        // The colons of IPv6 text tell the families apart; a family without an address gets no
        // rule (nftables refuses an empty set).
        let ipv4 = virtualAddresses.filter { !$0.contains(":") }.joined(separator: ", ")
        let ipv6 = virtualAddresses.filter { $0.contains(":") }.joined(separator: ", ")
        var rules: [String] = []
        if !ipv4.isEmpty {
            rules.append(#"ip daddr { \#(ipv4) } counter drop comment "IPv4 for the virtual addresses: the director forwards it""#)
            rules.append(#"arp daddr ip { \#(ipv4) } counter drop comment "ARP for the virtual addresses: the director answers it""#)
        }
        // Neighbor Solicitations go to solicited-node addresses, which this rule leaves alone:
        // the host answers none for an address it does not hold, and the workers see them all.
        if !ipv6.isEmpty {
            rules.append(#"ip6 daddr { \#(ipv6) } counter drop comment "IPv6 for the virtual addresses: the director forwards it""#)
        }
        return """
        table netdev \(tableName)
        delete table netdev \(tableName)
        table netdev \(tableName) {
            chain ingress {
                type filter hook ingress device "\(interface)" priority -500; policy accept;
        \(rules.map { "        " + $0 }.joined(separator: "\n"))
            }\(gatewayChain)
        }

        """
    }

    private var gatewayChain: String {
        guard let gateway else { return "" }
        return """

            chain back_ingress {
                type filter hook ingress device "\(gateway.interface)" priority -500; policy accept;
                ether daddr \(gateway.mac) counter drop comment "NAT replies to the gateway MAC: the director translates them"
                arp daddr ip \(gateway.address) counter drop comment "ARP for the NAT gateway: the director answers it"
            }
        """
    }

    public func install() throws {
        try Self.runNft(input: ruleset, action: "installing the host-stack guard on \(interface)")
    }

    public func remove() {
        try? Self.runNft(input: "table netdev \(tableName)\ndelete table netdev \(tableName)\n", action: "removing the host-stack guard")
    }

    static func runNft(input: String, action: String) throws {
        let result = try HelperProgram.run(nftPath, ["-f", "-"], input: input)
        guard result.status == 0 else {
            throw GuardError(description: "\(action): nft exited with \(result.status): \(result.output.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
    }

    static var nftPath: String {
        ["/usr/sbin/nft", "/sbin/nft", "/usr/bin/nft"].first { FileManager.default.isExecutableFile(atPath: $0) } ?? "/usr/sbin/nft"
    }

    struct GuardError: Error, CustomStringConvertible { let description: String }
}
