import PicoModel
import Synchronization

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
        if let (claims, fingerprint) = cache?.entry(of: token) { return Self.signed(self.rules.check(claims, now: now), by: fingerprint) }
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
        guard let signer = candidates.first(where: { self.keys[$0].verifies(parsed.signature, of: parsed.signingInput, algorithm: parsed.algorithm) }) else {
            return .failure(AuthFailure(.badSignature, "\(parsed.algorithm.rawValue) signature"))
        }
        let fingerprint = self.keys[signer].fingerprint
        cache?.remember(token, claims: parsed.claims, fingerprint: fingerprint)
        return Self.signed(self.rules.check(parsed.claims, now: now), by: fingerprint)
    }

    private static func signed(_ result: Result<TokenGrant, AuthFailure>, by fingerprint: String) -> Result<TokenGrant, AuthFailure> {
        result.map { grant in
            var signed = grant
            signed.keyFingerprint = fingerprint
            return signed
        }
    }

    /// True when key `fingerprint` is one of this verifier's.
    public func holds(_ fingerprint: String) -> Bool { self.keys.contains { $0.fingerprint == fingerprint } }
}

/// One loop's memory of tokens whose signatures verified, so a client that sends the same token
/// with every request pays for one signature check. Keyed by the token's exact bytes (never by
/// `String` equality, which is Unicode equivalence: a byte-different look-alike must be verified
/// on its own). Bounded: at `capacity` the oldest entry goes. Entries are judged again at every
/// use, so an expired token is refused on time; a verifier with new keys gets a new cache.
public final class TokenCache {
    /// Entries one loop keeps per port by default (a token is at most `CompactToken.maxBytes`).
    public static let defaultCapacity = 1_024

    private struct Entry {
        var token: [UInt8]
        var claims: TokenClaims
        var fingerprint: String
    }

    private let capacity: Int
    /// Entries by an FNV-1a hash of the token's bytes; a hit is confirmed byte for byte, so a
    /// lookup allocates nothing.
    private var entries: [UInt64: [Entry]] = [:]
    private var order: [(hash: UInt64, token: [UInt8])] = []
    private var oldest = 0
    public private(set) var count = 0

    public init(capacity: Int = TokenCache.defaultCapacity) {
        self.capacity = max(1, capacity)
    }

    private static func hash(_ bytes: some Sequence<UInt8>) -> UInt64 {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3 }
        return hash
    }

    func claims(of token: Substring) -> TokenClaims? { self.entry(of: token)?.claims }

    func entry(of token: Substring) -> (claims: TokenClaims, fingerprint: String)? {
        guard let bucket = self.entries[Self.hash(token.utf8)], let entry = bucket.first(where: { $0.token.elementsEqual(token.utf8) }) else { return nil }
        return (entry.claims, entry.fingerprint)
    }

    func remember(_ token: Substring, claims: TokenClaims, fingerprint: String = "") {
        let hash = Self.hash(token.utf8)
        guard self.entries[hash]?.contains(where: { $0.token.elementsEqual(token.utf8) }) != true else { return }
        let bytes = Array(token.utf8)
        if self.order.count < self.capacity {
            self.order.append((hash, bytes))
        } else {
            let evicted = self.order[self.oldest]
            self.entries[evicted.hash]?.removeAll { $0.token == evicted.token }
            if self.entries[evicted.hash]?.isEmpty == true { self.entries[evicted.hash] = nil }
            self.count -= 1
            self.order[self.oldest] = (hash, bytes)
            self.oldest = (self.oldest + 1) % self.capacity
        }
        self.entries[hash, default: []].append(Entry(token: bytes, claims: claims, fingerprint: fingerprint))
        self.count += 1
    }
}

/// A port's current verifier, replaced whole when its key set is fetched again; every loop
/// reads it per request (a loop's cache starts over when it sees a new one, so a token verified
/// by a key that is gone is verified again, and refused).
public final class VerifierHolder: Sendable {
    private let verifier: Mutex<TokenVerifier>

    public init(_ verifier: TokenVerifier) {
        self.verifier = Mutex(verifier)
    }

    /// The verifier in use.
    public var current: TokenVerifier { self.verifier.withLock { $0 } }

    /// Uses `verifier` from now on.
    public func replace(with verifier: TokenVerifier) {
        self.verifier.withLock { $0 = verifier }
    }
}
