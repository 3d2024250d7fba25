/// Why a request's credentials were refused. The reason is the metric label and the log's
/// word; `message` is what the client reads (Piko's JSON error texts, so Piko's clients and SDK
/// see the answers they know).
public struct AuthFailure: Error, Hashable, Sendable, CustomStringConvertible {
    /// Why, as a bounded set (one metric label each).
    public enum Reason: String, Hashable, Sendable, CaseIterable {
        /// No token header at all.
        case missingAuthorization = "missing_authorization"
        /// A token header that is not `<scheme> <credentials>`, or more than one of it.
        case invalidAuthorization = "invalid_authorization"
        /// A scheme other than `Bearer`.
        case unsupportedAuthType = "unsupported_auth_type"
        /// Not a compact JWS: wrong shape, bad base64url, bad JSON, too long, a `crit` header.
        case malformedToken = "malformed_token"
        /// An `alg` Pico does not verify (`none` included) or no configured key of its type.
        case unsupportedAlgorithm = "unsupported_algorithm"
        /// A `kid` no configured or fetched key carries.
        case unknownKey = "unknown_key"
        /// The signature does not verify with any key that may have made it.
        case badSignature = "bad_signature"
        /// `exp` passed (beyond the leeway).
        case expired
        /// `nbf` not reached yet (beyond the leeway).
        case notYetValid = "not_yet_valid"
        /// `aud` does not name the configured audience.
        case wrongAudience = "wrong_audience"
        /// `iss` is not the configured issuer.
        case wrongIssuer = "wrong_issuer"
        /// A claim Pico reads has the wrong type (`exp` a string, `pico.endpoints` not a list).
        case invalidClaims = "invalid_claims"
        /// The token's endpoint list does not name the endpoint asked for.
        case endpointNotPermitted = "endpoint_not_permitted"
        /// Tenants are configured and the request names none of them.
        case unknownTenant = "unknown_tenant"
    }

    public var reason: Reason
    /// A detail for the log (never sent to the client): which claim, which algorithm.
    public var detail: String

    public init(_ reason: Reason, _ detail: String = "") {
        self.reason = reason
        self.detail = detail
    }

    /// The `error` text of the 401 answer, as Piko words it: its middleware tells only a
    /// missing, unparsable or expired token and a refused endpoint apart; every other token
    /// problem is `invalid token`, so a prober learns nothing about the keys.
    public var message: String {
        switch self.reason {
        case .missingAuthorization: return "missing authorization"
        case .invalidAuthorization: return "invalid authorization"
        case .unsupportedAuthType: return "unsupported auth type"
        case .expired: return "expired token"
        case .endpointNotPermitted: return "endpoint not permitted"
        case .unknownTenant: return "unknown tenant"
        case .malformedToken, .unsupportedAlgorithm, .unknownKey, .badSignature, .notYetValid, .wrongAudience, .wrongIssuer, .invalidClaims:
            return "invalid token"
        }
    }

    public var description: String {
        self.detail.isEmpty ? self.reason.rawValue : "\(self.reason.rawValue): \(self.detail)"
    }
}
