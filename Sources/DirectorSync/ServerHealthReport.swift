import DirectorWire

/// A real server's place in the health checks: the service it serves and the server (the same
/// server in two services is checked, and judged, once in each).
public struct HealthKey: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var virtualAddress: IPv4Address
    public var virtualPort: UInt16
    public var transport: TransportProtocol
    public var serverAddress: IPv4Address
    public var serverPort: UInt16

    public init(virtualAddress: IPv4Address, virtualPort: UInt16, transport: TransportProtocol, serverAddress: IPv4Address, serverPort: UInt16) {
        self.virtualAddress = virtualAddress
        self.virtualPort = virtualPort
        self.transport = transport
        self.serverAddress = serverAddress
        self.serverPort = serverPort
    }

    /// "tcp:198.18.0.100:80", as notifications name it.
    public var serviceName: String { "\(transport):\(virtualAddress):\(virtualPort)" }
    public var serverName: String { "\(serverAddress):\(serverPort)" }
    public var description: String { "\(serverName) in \(serviceName)" }

    public static func < (left: HealthKey, right: HealthKey) -> Bool {
        (left.virtualAddress.rawValue, left.virtualPort, left.transport.rawValue, left.serverAddress.rawValue, left.serverPort)
            < (right.virtualAddress.rawValue, right.virtualPort, right.transport.rawValue, right.serverAddress.rawValue, right.serverPort)
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
