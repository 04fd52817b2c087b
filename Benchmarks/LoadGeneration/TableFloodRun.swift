/// One run of `director-bench table-flood`, as its report and `--summary` JSON give it (the lab
/// test reads the JSON back).
public struct TableFloodRun: Codable, Sendable {
    public var pattern: String
    public var floodFrames: UInt64
    public var floodSeconds: Double
    /// Frames the director received per second during the flood (flood and clients).
    public var directorInputRate: Double
    public var receiveRingDrops: UInt64
    public var connectionsAttempted: Int
    public var connectionsSucceeded: Int
    /// Connections the clients attempted per second while the flood ran.
    public var connectionsPerSecond: Double
    public var downloadsStarted: Int
    public var downloadsIntact: Int
    public var connectionCapacity: UInt64
    public var connectionsAtEnd: UInt64
    public var connectionsReclaimed: UInt64
    public var tableFullDrops: UInt64
    public var connectionsProven: UInt64
    public var residentKilobytesBefore: UInt64
    public var residentKilobytesAfter: UInt64

    public init(pattern: String, floodFrames: UInt64, floodSeconds: Double, directorInputRate: Double, receiveRingDrops: UInt64,
                connectionsAttempted: Int, connectionsSucceeded: Int, connectionsPerSecond: Double, downloadsStarted: Int,
                downloadsIntact: Int, connectionCapacity: UInt64, connectionsAtEnd: UInt64, connectionsReclaimed: UInt64,
                tableFullDrops: UInt64, connectionsProven: UInt64, residentKilobytesBefore: UInt64, residentKilobytesAfter: UInt64) {
        self.pattern = pattern
        self.floodFrames = floodFrames
        self.floodSeconds = floodSeconds
        self.directorInputRate = directorInputRate
        self.receiveRingDrops = receiveRingDrops
        self.connectionsAttempted = connectionsAttempted
        self.connectionsSucceeded = connectionsSucceeded
        self.connectionsPerSecond = connectionsPerSecond
        self.downloadsStarted = downloadsStarted
        self.downloadsIntact = downloadsIntact
        self.connectionCapacity = connectionCapacity
        self.connectionsAtEnd = connectionsAtEnd
        self.connectionsReclaimed = connectionsReclaimed
        self.tableFullDrops = tableFullDrops
        self.connectionsProven = connectionsProven
        self.residentKilobytesBefore = residentKilobytesBefore
        self.residentKilobytesAfter = residentKilobytesAfter
    }
}
