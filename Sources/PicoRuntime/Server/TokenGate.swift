import PicoModel

/// One port's token check on one loop: finds the bearer token in a request's head, verifies it
/// with the port's `TokenVerifier` through this loop's cache, and says what the request may do.
/// Loop-confined (its cache is this loop's).
final class TokenGate {
    /// Which port it guards (the metric's and the log's label).
    let port: AuthFailureCounts.Port
    let holder: VerifierHolder
    /// The verifier the cache's entries were verified by.
    private var verifier: TokenVerifier
    private var cache = TokenCache()
    /// Called when a token names a key the verifier lacks (a key set may have rotated).
    var onUnknownKey: (() -> Void)?
    /// On the upstream port: tunnels outlive their tokens (`disable_disconnect_on_expiry`).
    var tunnelsOutliveTokens = false

    init(port: AuthFailureCounts.Port, holder: VerifierHolder) {
        self.port = port
        self.holder = holder
        self.verifier = holder.current
    }

    /// What the request with `headers` may do at wall-clock `now` (Unix milliseconds).
    func access(_ headers: HTTPHeaders, now: Int64) -> RequestAccess {
        switch BearerCredentials.find(in: headers) {
        case .failure(let failure):
            return .refused(failure)
        case .success(let credentials):
            let current = self.holder.current
            if current !== self.verifier {
                self.verifier = current
                self.cache = TokenCache()
            }
            switch current.verify(credentials.token, now: now, cache: self.cache) {
            case .success(let grant): return .granted(grant, header: credentials.headerName)
            case .failure(let failure):
                if failure.reason == .unknownKey { self.onUnknownKey?() }
                return .refused(failure)
            }
        }
    }
}

/// Refused credentials by port and reason (`pico_auth_failures_total`): a fixed table, so the
/// label set is bounded whatever clients send.
struct AuthFailureCounts: Sendable {
    enum Port: String, CaseIterable, Sendable {
        case proxy, upstream, admin
    }

    private static let reasons = AuthFailure.Reason.allCases
    private var counts = [UInt64](repeating: 0, count: Port.allCases.count * AuthFailureCounts.reasons.count)

    mutating func record(_ port: Port, _ reason: AuthFailure.Reason) {
        guard let portIndex = Port.allCases.firstIndex(of: port), let reasonIndex = Self.reasons.firstIndex(of: reason) else { return }
        self.counts[portIndex * Self.reasons.count + reasonIndex] &+= 1
    }

    mutating func add(_ other: AuthFailureCounts) {
        for index in self.counts.indices { self.counts[index] &+= other.counts[index] }
    }

    /// The counts above zero, by port then reason.
    var nonZero: [(port: String, reason: String, count: UInt64)] {
        self.counts.indices.compactMap { index in
            guard self.counts[index] > 0 else { return nil }
            return (Port.allCases[index / Self.reasons.count].rawValue, Self.reasons[index % Self.reasons.count].rawValue, self.counts[index])
        }
    }
}
