/// How far a failed upstream got with its request (a forward to another node reports this when
/// its connection fails).
public enum UpstreamProgress: Hashable, Sendable {
    /// Nothing reached the other side (the connection never opened).
    case unsent
    /// The request went out on an open connection but not one byte of an answer came back.
    case unanswered
    /// Part of an answer came back (or the upstream cannot tell).
    case answered
}

/// When a forward that failed may go to another holder of the endpoint instead of failing the
/// request: only while the client has heard nothing and the request cannot take effect twice.
public enum ForwardRetry {
    /// Further holders one request may be sent to after failed forwards (a crashed holder
    /// refuses dials until gossip declares it dead; two more tries cover two such holders).
    public static let maxRetries = 2

    /// True when the request may go elsewhere: nothing was sent to the client, the request has
    /// no body (its bytes may be gone with the failed connection), fewer than `maxRetries`
    /// retries happened, and the failed node either never saw the request or saw an idempotent
    /// GET, HEAD or OPTIONS and answered nothing.
    public static func mayRetry(method: String, framing: HTTPBodyFraming, progress: UpstreamProgress, clientAnswered: Bool, retries: Int) -> Bool {
        guard !clientAnswered, framing == .none, retries < Self.maxRetries else { return false }
        switch progress {
        case .unsent: return true
        case .unanswered: return method == "GET" || method == "HEAD" || method == "OPTIONS"
        case .answered: return false
        }
    }
}
