import DirectorDaemon
import DirectorLab
import Foundation
import Testing

extension LabSuites {
    /// The .deb that scripts/package.sh builds (scripts/test.sh builds it before the tests).
    @Suite("Lab: the Debian package")
    struct PackageLabTests {
        static var package: String {
            "\(Lab.packageRoot)/.build/package/director_\(DirectorVersion.current)_amd64.deb"
        }

        @Test("a root holding only the package and the libraries its binary links (no Swift runtime) runs director --help, --version and check-config on the example config; lintian has nothing to say")
        func cleanRoot() throws {
            let package = PackageLabTests.package
            #expect(FileManager.default.fileExists(atPath: package), "bash scripts/package.sh builds it")
            let root = Lab.stateRoot + "/package-root"
            try? FileManager.default.removeItem(atPath: root)
            defer { try? FileManager.default.removeItem(atPath: root) }
            try Shell.run(["mkdir", "-p", root])
            try Shell.run(["dpkg-deb", "-x", package, root])
            let links = try Shell.run(["ldd", root + "/usr/sbin/director"]).output
            let libraries = links.split(separator: "\n").compactMap { line -> String? in
                let words = line.split(whereSeparator: \.isWhitespace)
                if let arrow = words.firstIndex(of: "=>"), arrow + 1 < words.count { return String(words[arrow + 1]) }
                return words.first.flatMap { $0.hasPrefix("/") ? String($0) : nil }
            }
            for library in libraries {
                try Shell.run(["mkdir", "-p", root + (library as NSString).deletingLastPathComponent])
                try Shell.run(["cp", "-L", library, root + library])
            }
            let files = try Shell.run(["find", root, "-type", "f"]).output.split(separator: "\n")
            print("package: \(package.split(separator: "/").last ?? ""), \(files.count) files in the clean root; the binary links \(libraries.map { ($0 as NSString).lastPathComponent })")
            #expect(!links.contains("libswift") && !links.contains("libFoundation"), "no Swift runtime needed: \(links)")
            // As a container or a fresh install has it: /proc mounted (Swift reads the arguments
            // there), in a mount namespace of its own that goes with the command.
            try Shell.run(["mkdir", "-p", root + "/proc"])
            func inRoot(_ arguments: [String]) throws -> Shell.Result {
                try Shell.run(["unshare", "--mount", "--pid", "--fork", "sh", "-c", "mount -t proc proc \"$0/proc\" && exec chroot \"$0\" \"$@\"", root]
                              + arguments, check: false)
            }
            let help = try inRoot(["/usr/sbin/director", "--help"])
            #expect(help.status == 0 && help.output.contains("SUBCOMMANDS:") && help.output.contains("connections"), "\(help.output)\(help.errorOutput)")
            let version = try inRoot(["/usr/sbin/director", "--version"])
            #expect(version.output.trimmingCharacters(in: .whitespacesAndNewlines) == DirectorVersion.current)
            let check = try inRoot(["/usr/sbin/director", "check-config", "/etc/director/director.yaml"])
            #expect(check.status == 0 && check.output.hasPrefix("/etc/director/director.yaml: ok"), "\(check.output)\(check.errorOutput)")
            for expected in ["/lib/systemd/system/director.service", "/usr/lib/director/director-tuning", "/usr/share/man/man8/director.8.gz",
                             "/usr/share/man/man8/director-services.8.gz", "/usr/share/bash-completion/completions/director",
                             "/usr/share/zsh/vendor-completions/_director", "/usr/share/doc/director/copyright"] {
                #expect(FileManager.default.fileExists(atPath: root + expected), "\(expected) is in the package")
            }
            if FileManager.default.isExecutableFile(atPath: "/usr/bin/lintian") {
                let lint = try Shell.run(["lintian", "--tag-display-limit", "0", package], check: false)
                let tags = (lint.output + lint.errorOutput).split(separator: "\n").filter { $0.hasPrefix("E:") || $0.hasPrefix("W:") }
                #expect(tags.isEmpty, "lintian: \(tags)")
            }
        }

        @Test("dpkg installs it on this machine: user director made, the unit passes systemd-analyze verify, the installed CLI checks the example config; purged, nothing of it stays but the user",
              .enabled(if: (try? Shell.run(["dpkg-query", "-W", "director"], check: false).status) != 0, "a director package is installed here: left alone"))
        func installs() throws {
            let package = PackageLabTests.package
            let userExisted = try Shell.run(["getent", "passwd", "director"], check: false).status == 0
            defer {
                _ = try? Shell.run(["dpkg", "--purge", "director"], check: false)
                if !userExisted { _ = try? Shell.run(["userdel", "director"], check: false) }
            }
            let install = try Shell.run(["dpkg", "-i", package], check: false)
            #expect(install.status == 0, "\(install.output)\(install.errorOutput)")
            #expect(try Shell.run(["getent", "passwd", "director"], check: false).status == 0, "the postinst made user director")
            let verify = try Shell.run(["systemd-analyze", "verify", "/lib/systemd/system/director.service"], check: false)
            #expect(verify.status == 0 && verify.errorOutput.isEmpty, "systemd-analyze verify: \(verify.output)\(verify.errorOutput)")
            let check = try Shell.run(["/usr/sbin/director", "check-config", "/etc/director/director.yaml"], check: false)
            #expect(check.status == 0, "\(check.output)\(check.errorOutput)")
            let manual = try Shell.run(["man", "-w", "director-services"], check: false)
            #expect(manual.output.contains("/usr/share/man/man8/director-services.8.gz"), "\(manual.output)\(manual.errorOutput)")
            let purge = try Shell.run(["dpkg", "--purge", "director"], check: false)
            #expect(purge.status == 0 && !FileManager.default.fileExists(atPath: "/usr/sbin/director") && !FileManager.default.fileExists(atPath: "/etc/director/director.yaml"))
            print("package: installed with dpkg, unit verified, purged (\(verify.output.isEmpty ? "no remarks" : verify.output))")
        }
    }
}
