/// The registered and Pico claims of a token (RFC 7519 §4.1), read but not yet judged (see
/// `TokenRules`). Times are Unix milliseconds; other claims are ignored.
public struct TokenClaims: Hashable, Sendable {
    /// `exp`: the token is refused from this moment (nil: it never expires).
    public var expiresAt: Int64?
    /// `nbf`: the token is refused before this moment.
    public var notBefore: Int64?
    /// `aud`, as a list (a single string is a list of one); nil when absent.
    public var audiences: [String]?
    /// `iss`.
    public var issuer: String?
    /// `pico.endpoints` or Piko's `piko.endpoints` (`{"piko": {"endpoints": [...]}}`, as Piko's
    /// issuers write it): the endpoints the token may serve or reach; nil or empty means any.
    public var endpoints: [String]?

    public init(expiresAt: Int64? = nil, notBefore: Int64? = nil, audiences: [String]? = nil, issuer: String? = nil, endpoints: [String]? = nil) {
        self.expiresAt = expiresAt
        self.notBefore = notBefore
        self.audiences = audiences
        self.issuer = issuer
        self.endpoints = endpoints
    }

    /// The claim objects whose `endpoints` member lists endpoints: Pico's `pico`, and Piko's
    /// `piko` (so Piko's tokens work unchanged).
    public static let endpointObjects = ["pico", "piko"]
    /// The same lists written as one flat member name. Not what Piko writes, but a token that
    /// carries one is limited by it: an endpoint list must never be ignored.
    public static let endpointClaims = ["pico.endpoints", "piko.endpoints"]

    /// The largest NumericDate taken, in seconds (year 2286 and a margin: anything larger is
    /// not a time a token means, and in milliseconds it would still fit `Int64` many times).
    static let maxSeconds = 1e11

    /// Reads the claims Pico uses from a JSON object's fields. A repeated claim Pico reads is
    /// refused (a verifier that takes the first and a library that took the last would disagree);
    /// a claim of the wrong type is refused; endpoint lists given in several places (`pico` and
    /// `piko` objects, flat names) must name the same list.
    static func read(_ fields: [(String, JSONValue)]) -> Result<TokenClaims, AuthFailure> {
        var claims = TokenClaims()
        var seen: [String] = []
        for (name, value) in fields where Self.endpointObjects.contains(name) {
            guard !seen.contains(name) else { return .failure(AuthFailure(.malformedToken, "\(name) given twice")) }
            seen.append(name)
            guard case .object(let members) = value else { return .failure(AuthFailure(.invalidClaims, "\(name) is not an object")) }
            let lists = members.filter { $0.0 == "endpoints" }
            guard lists.count <= 1 else { return .failure(AuthFailure(.malformedToken, "\(name).endpoints given twice")) }
            guard let list = lists.first else { continue }
            guard case .array(let items) = list.1, let endpoints = Self.strings(items) else {
                return .failure(AuthFailure(.invalidClaims, "\(name).endpoints is not a list of strings"))
            }
            if let earlier = claims.endpoints, earlier != endpoints {
                return .failure(AuthFailure(.invalidClaims, "the token's endpoint lists differ"))
            }
            claims.endpoints = endpoints
        }
        for (name, value) in fields {
            guard ["exp", "nbf", "aud", "iss"].contains(name) || Self.endpointClaims.contains(name) else { continue }
            guard !seen.contains(name) else { return .failure(AuthFailure(.malformedToken, "\(name) given twice")) }
            seen.append(name)
            switch name {
            case "exp", "nbf":
                guard let milliseconds = Self.numericDate(value) else { return .failure(AuthFailure(.invalidClaims, "\(name) is not a NumericDate")) }
                if name == "exp" { claims.expiresAt = milliseconds } else { claims.notBefore = milliseconds }
            case "aud":
                switch value {
                case .string(let audience): claims.audiences = [audience]
                case .array(let items):
                    guard let audiences = Self.strings(items) else { return .failure(AuthFailure(.invalidClaims, "aud is not a string or a list of strings")) }
                    claims.audiences = audiences
                default: return .failure(AuthFailure(.invalidClaims, "aud is not a string or a list of strings"))
                }
            case "iss":
                guard case .string(let issuer) = value else { return .failure(AuthFailure(.invalidClaims, "iss is not a string")) }
                claims.issuer = issuer
            default:
                guard case .array(let items) = value, let endpoints = Self.strings(items) else {
                    return .failure(AuthFailure(.invalidClaims, "\(name) is not a list of strings"))
                }
                if let earlier = claims.endpoints, earlier != endpoints {
                    return .failure(AuthFailure(.invalidClaims, "the token's endpoint lists differ"))
                }
                claims.endpoints = endpoints
            }
        }
        return .success(claims)
    }

    /// A NumericDate (seconds since the epoch, fractions allowed) in milliseconds, rounded down;
    /// nil when it is not a number or not a plausible time.
    static func numericDate(_ value: JSONValue) -> Int64? {
        guard case .number(let text) = value, let seconds = Double(text), seconds.isFinite,
              seconds >= -Self.maxSeconds, seconds <= Self.maxSeconds else { return nil }
        return Int64((seconds * 1_000).rounded(.down))
    }

    private static func strings(_ items: [JSONValue]) -> [String]? {
        var strings: [String] = []
        for item in items {
            guard case .string(let text) = item else { return nil }
            strings.append(text)
        }
        return strings
    }
}
