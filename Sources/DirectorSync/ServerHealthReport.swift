import DirectorWire

/// A real server's place in the health checks: the service it serves and the server (the same
/// server in two services is checked, and judged, once in each).
public struct HealthKey: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var virtualAddress: IPAddress
    public var virtualPort: UInt16
    public var transport: TransportProtocol
    public var serverAddress: IPAddress
    public var serverPort: UInt16

    public init(virtualAddress: IPAddress, virtualPort: UInt16, transport: TransportProtocol, serverAddress: IPAddress, serverPort: UInt16) {
        self.virtualAddress = virtualAddress
        self.virtualPort = virtualPort
        self.transport = transport
        self.serverAddress = serverAddress
        self.serverPort = serverPort
    }

    public init(virtualAddress: IPv4Address, virtualPort: UInt16, transport: TransportProtocol, serverAddress: IPv4Address, serverPort: UInt16) {
        self.init(virtualAddress: .v4(virtualAddress), virtualPort: virtualPort, transport: transport,
                  serverAddress: .v4(serverAddress), serverPort: serverPort)
    }

    /// "tcp:198.18.0.100:80" or "tcp:[2001:2::100]:80", as notifications name it.
    public var serviceName: String { "\(transport):" + virtualAddress.description(port: virtualPort) }
    public var serverName: String { serverAddress.description(port: serverPort) }
    public var description: String { "\(serverName) in \(serviceName)" }

    public static func < (left: HealthKey, right: HealthKey) -> Bool {
        if left.virtualAddress != right.virtualAddress { return left.virtualAddress < right.virtualAddress }
        if left.virtualPort != right.virtualPort { return left.virtualPort < right.virtualPort }
        if left.transport != right.transport { return left.transport.rawValue < right.transport.rawValue }
        if left.serverAddress != right.serverAddress { return left.serverAddress < right.serverAddress }
        return left.serverPort < right.serverPort
    }
}

/// One real server's health as the sender's own checks see it (the `health` message, kind 8).
/// The pair takes a server out when either side's checks say it is down: both build the same
/// scheduling table, so a flow that moves from one to the other keeps its server.
public struct ServerHealthReport: Equatable, Hashable, Sendable {
    public var server: HealthKey
    public var isUp: Bool

    public init(_ server: HealthKey, isUp: Bool) {
        self.server = server
        self.isUp = isUp
    }
}
