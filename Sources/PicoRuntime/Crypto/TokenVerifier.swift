import PicoModel

/// One port's token check: the keys that may have signed a token and the claim rules it must
/// meet. Immutable and shared by every loop; each loop keeps its own `TokenCache`.
public final class TokenVerifier: Sendable {
    /// The keys, in the order they are tried.
    public let keys: [VerificationKey]
    /// The claim rules (`TokenRules`: audience, issuer, leeway).
    public let rules: TokenRules
    private let keyInfos: [TokenKeyInfo]

    public init(keys: [VerificationKey], rules: TokenRules) {
        self.keys = keys
        self.rules = rules
        self.keyInfos = keys.map(\.info)
    }

    /// What `token` may do at `now` (Unix milliseconds), or why it may do nothing. A token
    /// whose signature verified before is found in `cache` and only its claims are judged again
    /// (so it expires on time); a new one is parsed, its keys chosen by its `alg` and `kid`, its
    /// signature checked, and then its claims, in that order (a forged token is `invalid`, never
    /// `expired`).
    public func verify(_ token: Substring, now: Int64, cache: TokenCache?) -> Result<TokenGrant, AuthFailure> {
        if let claims = cache?.claims(of: token) { return self.rules.check(claims, now: now) }
        let parsed: CompactToken
        switch CompactToken.parse(token.utf8) {
        case .success(let token): parsed = token
        case .failure(let failure): return .failure(failure)
        }
        let candidates: [Int]
        switch TokenKeys.candidates(algorithm: parsed.algorithm, keyID: parsed.keyID, among: self.keyInfos) {
        case .success(let indices): candidates = indices
        case .failure(let failure): return .failure(failure)
        }
        guard candidates.contains(where: { self.keys[$0].verifies(parsed.signature, of: parsed.signingInput, algorithm: parsed.algorithm) }) else {
            return .failure(AuthFailure(.badSignature, "\(parsed.algorithm.rawValue) signature"))
        }
        cache?.remember(token, claims: parsed.claims)
        return self.rules.check(parsed.claims, now: now)
    }
}

/// One loop's memory of tokens whose signatures verified, so a client that sends the same token
/// with every request pays for one signature check. Keyed by the token's exact bytes (never by
/// `String` equality, which is Unicode equivalence: a byte-different look-alike must be verified
/// on its own). Bounded: at `capacity` the oldest entry goes. Entries are judged again at every
/// use, so an expired token is refused on time; a verifier with new keys gets a new cache.
public final class TokenCache {
    /// Entries one loop keeps per port by default (a token is at most `CompactToken.maxBytes`).
    public static let defaultCapacity = 1_024

    private let capacity: Int
    private var entries: [[UInt8]: TokenClaims] = [:]
    private var order: [[UInt8]] = []
    private var oldest = 0

    public init(capacity: Int = TokenCache.defaultCapacity) {
        self.capacity = max(1, capacity)
    }

    /// Tokens held.
    public var count: Int { self.entries.count }

    func claims(of token: Substring) -> TokenClaims? { self.entries[Array(token.utf8)] }

    func remember(_ token: Substring, claims: TokenClaims) {
        let key = Array(token.utf8)
        guard self.entries[key] == nil else { return }
        if self.order.count < self.capacity {
            self.order.append(key)
        } else {
            self.entries[self.order[self.oldest]] = nil
            self.order[self.oldest] = key
            self.oldest = (self.oldest + 1) % self.capacity
        }
        self.entries[key] = claims
    }
}
