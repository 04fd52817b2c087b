import DirectorLab
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

extension LabSuites {
    /// The director as systemd runs it: as user `director` with the unit's five capabilities,
    /// and speaking the notify protocol (ready, reloading, stopping, the watchdog).
    @Suite("Lab: run by the service manager")
    struct ServiceManagerLabTests {
        /// User `director` for the test (created like the package does when absent; removed after).
        static func withServiceUser(_ body: () throws -> Void) throws {
            let created = try Shell.run(["getent", "passwd", "director"], check: false).status != 0
            if created {
                try Shell.run(["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", "director"])
            }
            defer { if created { _ = try? Shell.run(["userdel", "director"], check: false) } }
            try body()
        }

        @Test("a pair runs as user director with CAP_NET_RAW, CAP_NET_ADMIN, CAP_SYS_NICE, CAP_IPC_LOCK and CAP_BPF only: 400 requests served, each process not root; without CAP_NET_ADMIN the director refuses to start, naming it")
        func runsWithoutRoot() throws {
            try ServiceManagerLabTests.withServiceUser {
                let lab = Lab(prefix: "tnr", directors: 2)
                defer { lab.tearDown() }
                try lab.setUp(largeFileMegabytes: 1)
                var settings = LabDirector.Settings()
                settings.user = "director"

                let lacking = try LabDirector(lab: lab, index: 0, settings: settings)
                lacking.capabilities = LabDirector.serviceCapabilities.filter { $0 != "net_admin" }
                #expect(throws: (any Error).self) { try lacking.start() }
                let refusal = lacking.log()
                #expect(refusal.contains("missing capability CAP_NET_ADMIN") && refusal.contains("AmbientCapabilities="), "\(refusal)")

                let directors = try lab.startPair(settings: settings)
                defer { for director in directors { director.stop() } }
                var answers = ""
                for client in Lab.clientAddresses.prefix(2) { answers += try lab.fetchMany(path: "/index.html", count: 200, from: client) }
                let statuses = try directors.map { director in
                    try String(contentsOfFile: "/proc/\(try #require(director.processID))/status", encoding: .utf8)
                }
                func field(_ status: String, _ name: String) -> String {
                    status.split(separator: "\n").first { $0.hasPrefix(name + ":") }.map { String($0.dropFirst(name.count + 1)).trimmingCharacters(in: .whitespaces) } ?? ""
                }
                let uid = try Shell.run(["id", "-u", "director"]).output.trimmingCharacters(in: .whitespacesAndNewlines)
                print("without root: \(answers.components(separatedBy: "code=200").count - 1) of 400 requests answered; directors' Uid \(statuses.map { field($0, "Uid") }), "
                      + "CapEff \(statuses.map { field($0, "CapEff") })")
                #expect(answers.components(separatedBy: "code=200").count - 1 == 400)
                for status in statuses {
                    #expect(field(status, "Uid").split(separator: "\t").allSatisfy { String($0) == uid }, "runs as director (uid \(uid))")
                    let effective = UInt64(field(status, "CapEff"), radix: 16) ?? 0
                    let unit: UInt64 = [12, 13, 14, 23, 39].reduce(0) { $0 | 1 << $1 }   // net_admin, net_raw, ipc_lock, sys_nice, bpf
                    #expect(effective == unit, "exactly the five capabilities: \(String(effective, radix: 16))")
                }
                #expect(directors.allSatisfy { $0.log().contains(" node \($0 === directors[0] ? 1 : 2) info: ready") })
            }
        }

        /// A notify socket of the test's own (a path: abstract sockets belong to one network namespace).
        final class NotifySocket {
            let path: String
            let descriptor: Int32
            private(set) var messages: [(at: Double, text: String)] = []

            init(path: String) throws {
                self.path = path
                unlink(path)
                descriptor = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
                var address = sockaddr_un()
                address.sun_family = sa_family_t(AF_UNIX)
                withUnsafeMutableBytes(of: &address.sun_path) { buffer in for (offset, byte) in path.utf8.enumerated() { buffer[offset] = byte } }
                let bound = withUnsafePointer(to: &address) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
                }
                guard bound == 0 else { throw LabDirector.LabError(description: "cannot bind \(path)") }
                chmod(path, 0o666)
            }

            deinit {
                close(descriptor)
                unlink(path)
            }

            /// Collects what arrives for `seconds`.
            func collect(for seconds: Double) {
                let deadline = Double(Lab.monotonicNanoseconds()) / 1e9 + seconds
                var buffer = [UInt8](repeating: 0, count: 4096)
                while true {
                    let left = deadline - Double(Lab.monotonicNanoseconds()) / 1e9
                    guard left > 0 else { return }
                    var poller = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
                    guard poll(&poller, 1, Int32(left * 1000) + 1) > 0 else { continue }
                    let count = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
                    if count > 0 { messages.append((Double(Lab.monotonicNanoseconds()) / 1e9, String(decoding: buffer[..<count], as: UTF8.self))) }
                }
            }

            func times(_ text: String, after: Double = 0) -> [Double] {
                messages.filter { $0.text.split(separator: "\n").contains(Substring(text)) && $0.at >= after }.map(\.at)
            }
        }

        @Test("Type=notify: READY=1 once started, RELOADING=1 then READY=1 around a SIGHUP, WATCHDOG=1 every half WATCHDOG_USEC and none while a worker hangs, STOPPING=1 on SIGTERM")
        func notifyProtocol() throws {
            let lab = Lab(prefix: "tsd")
            defer { lab.tearDown() }
            try lab.setUp(largeFileMegabytes: 1)
            let socket = try NotifySocket(path: lab.stateDirectory + "/notify.sock")
            var settings = LabDirector.Settings()
            settings.allowsFaultInjection = true
            let director = try LabDirector(lab: lab, settings: settings)
            defer { director.stop() }
            director.environment = ["NOTIFY_SOCKET": socket.path, "WATCHDOG_USEC": "400000"]
            try director.start()
            socket.collect(for: 2)
            let pid = try #require(director.processID)
            let reloadAt = Double(Lab.monotonicNanoseconds()) / 1e9
            kill(pid, SIGHUP)
            socket.collect(for: 1)
            let stallAt = Double(Lab.monotonicNanoseconds()) / 1e9
            try director.fault(["stall-worker", "0", "2000"])
            socket.collect(for: 3.5)
            let stopAt = Double(Lab.monotonicNanoseconds()) / 1e9
            director.stop()
            socket.collect(for: 0.5)

            let ready = socket.times("READY=1"), watchdog = socket.times("WATCHDOG=1")
            let duringStall = watchdog.filter { $0 > stallAt + 0.5 && $0 < stallAt + 2.0 }
            let afterStall = watchdog.filter { $0 > stallAt + 2.3 && $0 < stopAt }
            let beforeStall = watchdog.filter { $0 < reloadAt }
            let gaps = zip(beforeStall.dropFirst(), beforeStall).map { $0 - $1 }
            print("notify: \(socket.messages.count) messages; READY=1 ×\(ready.count), WATCHDOG=1 ×\(watchdog.count) "
                  + "(\(beforeStall.count) in the first 2 s, gaps \(gaps.map { String(format: "%.2f", $0) }.prefix(6)) s; \(duringStall.count) while worker 0 hung, "
                  + "\(afterStall.count) after), RELOADING=1 ×\(socket.times("RELOADING=1").count), STOPPING=1 ×\(socket.times("STOPPING=1").count)")
            #expect(ready.first.map { $0 < reloadAt } == true, "ready once started")
            #expect(socket.times("RELOADING=1", after: reloadAt).count == 1 && socket.times("READY=1", after: reloadAt).filter { $0 < stallAt }.count == 1)
            #expect(beforeStall.count >= 6 && gaps.allSatisfy { $0 < 0.4 }, "fed every 200 ms")
            #expect(duringStall.isEmpty, "withheld while a worker hangs")
            #expect(afterStall.count >= 3, "fed again once it works")
            #expect(director.log().contains("withholding systemd's watchdog"))
            #expect(socket.times("STOPPING=1", after: stopAt).count == 1)
        }
    }
}
