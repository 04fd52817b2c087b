import DirectorDaemon
import DirectorLab
import Foundation
import Testing

extension LabSuites {
    /// The control socket and the process against local users: one director per front interface,
    /// the operator group reads, only root or CAP_NET_ADMIN changes, others cannot connect, and a
    /// client that never finishes its request holds nothing up.
    @Suite("Lab: the control socket and the process")
    struct ControlSocketLabTests {
        static let nobody = "65534"

        @Test("a second director on the same front interface refuses and leaves the first alone")
        func oneDirectorPerInterface() throws {
            let lab = Lab(prefix: "tlk")
            defer { lab.tearDown() }
            try lab.setUp(largeFileMegabytes: 1)
            let first = try LabDirector(lab: lab)
            defer { first.stop() }
            try first.start()
            for socket in [first.controlSocket, first.controlSocket + ".second"] {
                let config = try String(contentsOfFile: first.configPath, encoding: .utf8)
                    .replacingOccurrences(of: first.controlSocket, with: socket)
                let path = first.configPath + ".second.yaml"
                try config.write(toFile: path, atomically: true, encoding: .utf8)
                let second = try Shell.run(["timeout", "20", "ip", "netns", "exec", first.namespace, LabDirector.binaryPath(), "run", "--config", path],
                                           check: false)
                #expect(second.status != 0 && second.status != 124, "the second director ran (status \(second.status))")
                #expect((second.output + second.errorOutput).contains("another director already runs on front interface front"),
                        "\(second.output)\(second.errorOutput)")
            }
            #expect(try first.stats()["frames_received"] != nil, "the first one still answers on its socket")
        }

        @Test("the director group reads stats but cannot move buckets; other users cannot connect; a stuck client holds up neither others nor the stop")
        func operatorAccess() throws {
            let lab = Lab(prefix: "tcs")
            defer { lab.tearDown() }
            try lab.setUp(largeFileMegabytes: 1)
            let createdGroup = try Shell.run(["getent", "group", "director"], check: false).status != 0
            if createdGroup { try Shell.run(["groupadd", "--system", "director"]) }
            defer { if createdGroup { _ = try? Shell.run(["groupdel", "director"], check: false) } }
            let gid = try #require(Shell.run(["getent", "group", "director"]).output.split(separator: ":").dropFirst(2).first.map(String.init))

            let director = try LabDirector(lab: lab)
            defer { director.stop() }
            try director.start()
            let attributes = try FileManager.default.attributesOfItem(atPath: director.controlSocket)
            #expect((attributes[.posixPermissions] as? Int) == 0o660, "socket mode \(String(attributes[.posixPermissions] as? Int ?? 0, radix: 8))")
            #expect((attributes[.groupOwnerAccountID] as? Int).map(String.init) == gid)

            // The binary where any user may run it (a checkout may sit under a private home).
            let binary = lab.stateDirectory + "/director-for-others"
            try? FileManager.default.removeItem(atPath: binary)
            try FileManager.default.copyItem(atPath: LabDirector.binaryPath(), toPath: binary)
            try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: binary)
            func asNobody(group: String, _ arguments: [String]) throws -> Shell.Result {
                try Shell.run(["setpriv", "--reuid=\(Self.nobody)", "--regid=\(group)", "--clear-groups", binary] + arguments + ["--socket", director.controlSocket],
                              check: false)
            }
            let stats = try asNobody(group: gid, ["stats"])
            #expect(stats.status == 0 && stats.output.contains("frames_received"), "the operator group reads the stats: \(stats.output)\(stats.errorOutput)")
            let move = try asNobody(group: gid, ["buckets", "release", "0-10"])
            #expect((move.output + move.errorOutput).contains("root or CAP_NET_ADMIN only"), "\(move.output)\(move.errorOutput)")
            #expect(try director.buckets("show").contains("owns 1024 of 1024"), "nothing moved")
            #expect(director.log().contains("refused \"buckets release 0-10\" from uid \(Self.nobody)"))
            let stranger = try asNobody(group: Self.nobody, ["stats"])
            #expect(stranger.status != 0 && (stranger.output + stranger.errorOutput).contains("Permission denied"), "\(stranger.output)\(stranger.errorOutput)")
            #expect(try director.buckets("release", "0-10").contains("owns 1013 of 1024"), "root may")

            // A client that connects and never sends a whole line: others are served after at most
            // its timeout, a request beyond the limit gets an error, and the stop is not held up.
            let stuck = try ControlSocketLabTests.connect(director.controlSocket)
            defer { close(stuck) }
            let started = Date()
            #expect(try director.stats()["frames_received"] != nil)
            #expect(Date().timeIntervalSince(started) < 3, "served \(Date().timeIntervalSince(started)) s after a stuck client")
            #expect(try ControlClient.send(String(repeating: "x", count: 5000), to: director.controlSocket).contains("at most 4096 bytes"))
            let holder = try ControlSocketLabTests.connect(director.controlSocket)
            defer { close(holder) }
            let stopping = Date()
            #expect(director.stop() == 0, "a clean stop")
            #expect(Date().timeIntervalSince(stopping) < 3, "the stop took \(Date().timeIntervalSince(stopping)) s with a client holding the socket")
        }

        static func connect(_ path: String) throws -> Int32 {
            let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            withUnsafeMutableBytes(of: &address.sun_path) { buffer in
                for (offset, byte) in path.utf8.prefix(buffer.count - 1).enumerated() { buffer[offset] = byte }
            }
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
            guard fd >= 0, connected == 0 else { throw LabDirector.LabError(description: "cannot connect to \(path)") }
            return fd
        }
    }
}
