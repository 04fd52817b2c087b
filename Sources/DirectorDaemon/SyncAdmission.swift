/// Admits the pair's datagrams (sync and liveness ports) only from the peer's address and ports
/// on the crossover interface, in an nftables table of its own that the director installs at
/// start and removes at stop.
///
/// The sockets alone already refuse other sources (they are connected to the peer and bound to
/// the crossover device); the rule drops the rest in the kernel's input hook, before a socket
/// buffer or the sync thread spends anything on them, and counts them where `nft list table`
/// shows it. What still arrives claims the peer's address on the crossover link, and is judged
/// by the codec's cheap checks and then the authenticator.
public struct SyncAdmission: Sendable {
    public let crossover: String
    public let local: String
    public let peer: String
    public let ports: [UInt16]

    public init(crossover: String, local: String, peer: String, ports: [UInt16]) {
        self.crossover = crossover
        self.local = local
        self.peer = peer
        self.ports = ports
    }

    /// One table per crossover interface and local address, so two directors on one host never
    /// touch each other's.
    public var tableName: String {
        "director_sync_" + HostStackGuard.nftablesIdentifier(crossover + "_" + local)
    }

    var ruleset: String {
        let portSet = "{ " + ports.map(String.init).joined(separator: ", ") + " }"
        return """
        table inet \(tableName)
        delete table inet \(tableName)
        table inet \(tableName) {
            chain input {
                type filter hook input priority -200; policy accept;
                ip daddr \(local) udp dport \(portSet) iifname != "\(crossover)" counter drop comment "the pair's ports only over the crossover link"
                ip daddr \(local) udp dport \(portSet) ip saddr != \(peer) counter drop comment "the pair's ports only from the peer"
                ip daddr \(local) udp dport \(portSet) udp sport != \(portSet) counter drop comment "the pair's ports only from the peer's sockets"
            }
        }

        """
    }

    public func install() throws {
        try HostStackGuard.runNft(input: ruleset, action: "installing the sync admission rule on \(crossover)")
    }

    public func remove() {
        try? HostStackGuard.runNft(input: "table inet \(tableName)\ndelete table inet \(tableName)\n", action: "removing the sync admission rule")
    }
}
