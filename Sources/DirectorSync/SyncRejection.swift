/// Why a datagram from the crossover link was not accepted. Each is a counter; none is a crash.
public enum SyncRejection: Int, Error, CaseIterable, Sendable {
    case truncated
    case oversized
    case badMagic
    case unsupportedVersion
    case unknownKind
    case lengthMismatch
    case badAuthenticator
    case malformedBody
    case unexpectedSender
    case replayed
    /// An incarnation of the peer this side does not believe (yet): one that has not answered
    /// this side's challenge, a capture of an earlier life, or a forgery.
    case unverifiedIncarnation
    case outsideReplayWindow
    /// A heartbeat on the sync channel, or another kind on the liveness channel.
    case wrongChannel

    public var name: String {
        switch self {
        case .truncated: "truncated"
        case .oversized: "oversized"
        case .badMagic: "bad_magic"
        case .unsupportedVersion: "unsupported_version"
        case .unknownKind: "unknown_kind"
        case .lengthMismatch: "length_mismatch"
        case .badAuthenticator: "bad_authenticator"
        case .malformedBody: "malformed_body"
        case .unexpectedSender: "unexpected_sender"
        case .replayed: "replayed"
        case .unverifiedIncarnation: "unverified_incarnation"
        case .outsideReplayWindow: "outside_replay_window"
        case .wrongChannel: "wrong_channel"
        }
    }
}
