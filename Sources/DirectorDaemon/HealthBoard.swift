import DirectorCore
import DirectorSync

/// What the pair's health checks say of every checked real server: this director's own view,
/// the peer's, and the pair's verdict. A server is out of service when either side's checks say
/// it is down: both directors then build the same table (with `mh`, a flow that moves between
/// them keeps its server), and no new connection goes to a server one of them cannot reach.
/// A server neither side checks is always in service.
struct HealthBoard: Sendable {
    /// Servers this director's checks say are down.
    private(set) var ownDown: Set<HealthKey> = []
    /// The peer's latest view, by server, with the version of the message that said it.
    private(set) var peer: [HealthKey: (version: UInt64, isUp: Bool)] = [:]

    /// The servers out of service.
    var down: Set<HealthKey> { ownDown.union(peer.filter { !$0.value.isUp }.keys) }

    mutating func setOwn(_ key: HealthKey, isUp: Bool) {
        if isUp { ownDown.remove(key) } else { ownDown.insert(key) }
    }

    /// Takes a part of the peer's view; a report older than what the peer said since is ignored
    /// (a reordered datagram must not bring back a state the peer has left).
    mutating func takePeer(version: UInt64, reports: [ServerHealthReport]) {
        for report in reports {
            let key = report.server
            if let known = peer[key], known.version > version { continue }
            peer[key] = (version, report.isUp)
        }
    }

    /// The peer died or restarted: only this director's checks count until it reports again.
    mutating func forgetPeer() { peer = [:] }

    /// Verdicts on servers no longer checked here (`own`) or no longer served (`peer`) are
    /// forgotten (a reload or a live change removed them).
    mutating func keep(own: Set<HealthKey>, peer served: Set<HealthKey>) {
        ownDown = ownDown.intersection(own)
        peer = peer.filter { served.contains($0.key) }
    }

    /// How the pair sees `key`, for `director services`: nil when nobody checks it.
    func describe(_ key: HealthKey, ownIsUp: Bool?) -> String {
        let peerIsUp = peer[key]?.isUp
        guard ownIsUp != nil || peerIsUp != nil else { return "unchecked" }
        func word(_ isUp: Bool?) -> String { isUp.map { $0 ? "up" : "down" } ?? "-" }
        return (down.contains(key) ? "down" : "up") + " (here \(word(ownIsUp)), peer \(word(peerIsUp)))"
    }
}

extension HealthKey {
    /// The key of `server` in `service`.
    init(_ service: VirtualService, _ server: RealServer) {
        self.init(virtualAddress: service.address, virtualPort: service.port, transport: service.transport,
                  serverAddress: server.address, serverPort: server.port)
    }

    init(_ service: Configuration.ServiceConfig, _ server: Configuration.RealServerConfig) {
        self.init(virtualAddress: service.address, virtualPort: service.port, transport: service.transport,
                  serverAddress: server.address, serverPort: server.port)
    }
}
