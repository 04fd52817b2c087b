import DirectorLab
import Foundation
import Testing

extension LabSuites {
    /// The tuning script, run for real inside a network namespace of the test's own (per-namespace
    /// sysctls; host-wide ones are skipped there by design).
    @Suite("Tuning script")
    struct TuningScriptTests {
        let namespace = "ttune"
        let state = "/tmp/director-lab/ttune-state"

        func script(_ arguments: [String]) throws -> Shell.Result {
            try Shell.run(["ip", "netns", "exec", namespace, Lab.tuningScript] + arguments, check: false)
        }

        func sysctl(_ name: String) throws -> String {
            try Shell.run(["ip", "netns", "exec", namespace, "cat", "/proc/sys/" + name.replacingOccurrences(of: ".", with: "/")])
                .output.trimmingCharacters(in: .whitespacesAndNewlines)
        }

        func withNamespace(_ body: () throws -> Void) throws {
            _ = try? Shell.run(["ip", "netns", "del", namespace], check: false)
            try Shell.run(["ip", "netns", "add", namespace])
            defer {
                _ = try? Shell.run(["ip", "netns", "del", namespace], check: false)
                try? FileManager.default.removeItem(atPath: state)
            }
            try Shell.run(["ip", "-n", namespace, "link", "add", "t0", "type", "veth", "peer", "name", "t1"])
            try body()
        }

        @Test("check fails, apply fixes, a second apply changes nothing, revert restores", arguments: ["realserver", "director"])
        func cycle(role: String) throws {
            try withNamespace {
                let arguments = ["--role", role, "--interface", "t0", "--vip", "198.18.0.100", "--state-dir", state]
                let watched = ["net.ipv4.conf.all.arp_ignore", "net.ipv4.conf.t0.arp_announce", "net.ipv4.conf.t0.rp_filter"]
                let original = try watched.map(sysctl)
                let first = try script(["check"] + arguments)
                #expect(first.status == 1 && first.output.contains("[DIFFERS]"), "\(first.output)")
                #expect(try script(["apply"] + arguments).status == 0)
                #expect(try script(["check"] + arguments).status == 0)
                #expect(try watched.map(sysctl) == ["1", "2", "2"])
                let again = try script(["apply"] + arguments)
                #expect(again.status == 0 && again.output.contains("nothing to change"), "\(again.output)")
                #expect(try script(["revert"] + arguments).status == 0)
                #expect(try watched.map(sysctl) == original)
                #expect(try script(["check"] + arguments).status == 1)
            }
        }

        @Test("bad arguments are refused with a clear message and change nothing", arguments: [
            (["apply", "--role", "realservr", "--vip", "198.18.0.100"], "unknown role 'realservr'"),
            (["apply", "--role", "realserver", "--vip", "198.18.0.300"], "'198.18.0.300' is not an IPv4 address"),
            (["apply", "--role", "realserver", "--vip", "198.18.0.100", "--interface", "nosuch0"], "interface 'nosuch0' does not exist"),
            (["apply", "--role", "realserver", "--vip", "198.18.0.100", "--interface", "bad/name"], "interface name 'bad/name' is not valid"),
            (["apply", "--role", "director", "--worker-cpus", "1,x"], "--worker-cpus must be a list"),
            (["apply", "--role", "director", "--fast"], "unknown option '--fast'"),
            (["tune", "--role", "director"], "unknown mode 'tune'"),
            (["apply", "--role", "realserver"], "needs at least one --vip"),
        ])
        func badArguments(_ arguments: [String], message: String) throws {
            try withNamespace {
                let before = try sysctl("net.ipv4.conf.all.arp_ignore")
                let result = try script(arguments + ["--state-dir", state])
                #expect(result.status == 2)
                #expect(result.errorOutput.contains(message), "\(result.errorOutput)")
                #expect(try sysctl("net.ipv4.conf.all.arp_ignore") == before)
                #expect(!FileManager.default.fileExists(atPath: state))
            }
        }
    }
}
