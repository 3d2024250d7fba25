/// What a token is allowed to do once its signature verified and its claims held.
public struct TokenGrant: Hashable, Sendable {
    /// The endpoints it may serve (upstream port) or reach (proxy port); nil means any.
    public var endpoints: [String]?
    /// From this moment (Unix milliseconds, leeway included) the token no longer verifies: a
    /// tunnel it opened is closed then (nil: never).
    public var validUntil: Int64?
    /// The fingerprint of the key that verified it (set by the shell's verifier): a tunnel it
    /// opened is closed when a fetched key set no longer holds that key.
    public var keyFingerprint: String?

    public init(endpoints: [String]?, validUntil: Int64?, keyFingerprint: String? = nil) {
        self.endpoints = endpoints
        self.validUntil = validUntil
        self.keyFingerprint = keyFingerprint
    }

    /// True when the token may be used for `endpoint` (an empty or absent list allows any).
    public func permits(_ endpoint: String) -> Bool {
        guard let endpoints, !endpoints.isEmpty else { return true }
        return endpoints.contains(endpoint)
    }
}

/// The claim rules one port applies (`<port>.auth.audience`, `.issuer`, `.leeway`), with time
/// as an input: pure, so every boundary is tested by driving it.
public struct TokenRules: Hashable, Sendable {
    /// When set, `aud` must name it.
    public var audience: String?
    /// When set, `iss` must be it.
    public var issuer: String?
    /// How far `exp` and `nbf` may be missed, for clocks that disagree.
    public var leeway: Duration
    /// The largest leeway taken (a day; more would make `exp` meaningless).
    public static let maxLeeway: Duration = .seconds(86_400)

    public init(audience: String? = nil, issuer: String? = nil, leeway: Duration = .zero) {
        self.audience = audience
        self.issuer = issuer
        self.leeway = min(max(leeway, .zero), Self.maxLeeway)
    }

    private var leewayMilliseconds: Int64 {
        let (seconds, attoseconds) = self.leeway.components
        return seconds * 1_000 + attoseconds / 1_000_000_000_000_000
    }

    /// Judges `claims` at `now` (Unix milliseconds): valid while `now < exp + leeway` and
    /// `now >= nbf - leeway`; `aud` must name the audience and `iss` be the issuer when those
    /// are configured (a token without them is refused then).
    public func check(_ claims: TokenClaims, now: Int64) -> Result<TokenGrant, AuthFailure> {
        let leeway = self.leewayMilliseconds
        var validUntil: Int64?
        if let expiresAt = claims.expiresAt {
            let until = expiresAt.addingReportingOverflow(leeway).overflow ? Int64.max : expiresAt + leeway
            guard now < until else { return .failure(AuthFailure(.expired, "exp \(expiresAt / 1_000)")) }
            validUntil = until
        }
        if let notBefore = claims.notBefore {
            let from = notBefore.subtractingReportingOverflow(leeway).overflow ? Int64.min : notBefore - leeway
            guard now >= from else { return .failure(AuthFailure(.notYetValid, "nbf \(notBefore / 1_000)")) }
        }
        if let audience = self.audience, claims.audiences?.contains(audience) != true {
            return .failure(AuthFailure(.wrongAudience, claims.audiences.map { "aud \(TokenText.printable($0.joined(separator: ",")))" } ?? "no aud"))
        }
        if let issuer = self.issuer, claims.issuer != issuer {
            return .failure(AuthFailure(.wrongIssuer, claims.issuer.map { "iss \(TokenText.printable($0))" } ?? "no iss"))
        }
        return .success(TokenGrant(endpoints: claims.endpoints, validUntil: validUntil))
    }
}
