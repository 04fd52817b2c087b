#if canImport(Glibc)
import Glibc
#endif

/// The pair's sync key signs every record and heartbeat: whoever reads it can forge a takeover.
/// Like ssh with a private key, the director refuses a key file that other users can read or
/// change, or that belongs to someone other than root or the user it runs as.
enum SecretFile {
    /// What is wrong with `path` as a key file, or nil.
    static func problem(_ path: String) -> String? {
        var status = stat()
        guard stat(path, &status) == 0 else { return "cannot read \"\(path)\"" }
        let mode = status.st_mode & 0o777
        let shown = "mode 0" + String(mode, radix: 8)
        if mode & 0o007 != 0 {
            return "\"\(path)\" is open to every user (\(shown)); the key must be secret: chmod 600 \(path)"
        }
        if mode & 0o020 != 0 {
            return "\"\(path)\" is writable by its group (\(shown)): chmod 600 \(path)"
        }
        if status.st_uid != 0 && status.st_uid != geteuid() {
            return "\"\(path)\" belongs to uid \(status.st_uid), not to root or the user the director runs as (uid \(geteuid()))"
        }
        return nil
    }
}
