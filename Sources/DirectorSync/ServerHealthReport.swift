import DirectorWire

/// One real server's health as the sender's own checks see it (the `health` message, kind 8).
/// The pair takes a server out when either side's checks say it is down: both build the same
/// scheduling table, so a flow that moves from one to the other keeps its server.
public struct ServerHealthReport: Equatable, Hashable, Sendable {
    public var virtualAddress: IPv4Address
    public var virtualPort: UInt16
    public var transport: TransportProtocol
    public var serverAddress: IPv4Address
    public var serverPort: UInt16
    public var isUp: Bool

    public init(virtualAddress: IPv4Address, virtualPort: UInt16, transport: TransportProtocol, serverAddress: IPv4Address,
                serverPort: UInt16, isUp: Bool) {
        self.virtualAddress = virtualAddress
        self.virtualPort = virtualPort
        self.transport = transport
        self.serverAddress = serverAddress
        self.serverPort = serverPort
        self.isUp = isUp
    }
}
