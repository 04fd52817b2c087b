import Foundation

extension Lab {
    /// Starts the dispatcher pair's two directors and waits until they have split the buckets
    /// as configured (director 1: 0-511, director 2: 512-1023). Stops both if that fails.
    public func startPair(settings: LabDirector.Settings, binary: String = LabDirector.binaryPath()) throws -> [LabDirector] {
        precondition(directorCount == 2)
        let directors = try (0..<2).map { try LabDirector(lab: self, index: $0, settings: settings) }
        do {
            for director in directors { try director.start(binary: binary) }
            try Lab.waitUntil(seconds: 5, "the pair splits the buckets as configured") {
                try directors[0].buckets("show", binary: binary).contains("owns 512 of 1024 buckets: 0-511")
                    && directors[1].buckets("show", binary: binary).contains("owns 512 of 1024 buckets: 512-1023")
            }
        } catch {
            for director in directors { director.stop() }
            throw error
        }
        return directors
    }

    /// Polls `condition` every 20 ms until it holds; throws naming `what` after `seconds`.
    public static func waitUntil(seconds: Double, _ what: String, _ condition: () throws -> Bool) throws {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if try condition() { return }
            usleep(20_000)
        }
        throw LabDirector.LabError(description: "waited \(seconds) s for: \(what)")
    }
}
