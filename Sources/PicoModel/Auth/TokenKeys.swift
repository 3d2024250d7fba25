/// What the key choice knows of one verification key: its kind, its `kid` (keys from a JWKS
/// have one, keys from configuration do not) and the one algorithm it is for, when its JWK says.
public struct TokenKeyInfo: Hashable, Sendable {
    public var kind: JWTKeyKind
    public var keyID: String?
    public var algorithm: JWTAlgorithm?

    public init(kind: JWTKeyKind, keyID: String? = nil, algorithm: JWTAlgorithm? = nil) {
        self.kind = kind
        self.keyID = keyID
        self.algorithm = algorithm
    }
}

/// Which keys may verify a token: the algorithm decides the kind of key (never the other way
/// round, so an RSA public key is never used as an HMAC secret), and a `kid` narrows the choice
/// to the keys that carry it.
public enum TokenKeys {
    /// The indices of `keys` to try, in order, for a token signed with `algorithm` naming
    /// `keyID`; or why none may: no key of the algorithm's kind (`unsupportedAlgorithm`), or a
    /// `kid` that no such key carries while some carry one (`unknownKey`: a key set may have
    /// rotated, so the shell may fetch it again). A `kid` is ignored when no key of the kind has
    /// one (keys from configuration).
    public static func candidates(algorithm: JWTAlgorithm, keyID: String?, among keys: [TokenKeyInfo]) -> Result<[Int], AuthFailure> {
        let ofKind = keys.indices.filter { keys[$0].kind == algorithm.keyKind && (keys[$0].algorithm ?? algorithm) == algorithm }
        guard !ofKind.isEmpty else {
            return .failure(AuthFailure(.unsupportedAlgorithm, "no configured key verifies \(algorithm.rawValue)"))
        }
        guard let keyID, ofKind.contains(where: { keys[$0].keyID != nil }) else { return .success(ofKind) }
        let named = ofKind.filter { keys[$0].keyID == keyID }
        guard !named.isEmpty else { return .failure(AuthFailure(.unknownKey, "kid \(TokenText.printable(keyID))")) }
        return .success(named)
    }
}
