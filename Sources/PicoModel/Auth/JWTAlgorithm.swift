/// The kinds of verification key a JWS algorithm may be checked with.
public enum JWTKeyKind: String, Hashable, Sendable {
    /// A shared secret (HS*).
    case hmac
    /// An RSA public key (RS*, PS*), at least 2048 bits.
    case rsa
    /// An ECDSA public key on P-256 (ES256).
    case ecP256 = "ec-p256"
    /// An ECDSA public key on P-384 (ES384).
    case ecP384 = "ec-p384"
    /// An Ed25519 public key (EdDSA).
    case ed25519
}

/// A JWS algorithm Pico verifies (RFC 7518 §3, RFC 8037 for EdDSA). `none` is not one.
public enum JWTAlgorithm: String, Hashable, Sendable, CaseIterable {
    case hs256 = "HS256", hs384 = "HS384", hs512 = "HS512"
    case rs256 = "RS256", rs384 = "RS384", rs512 = "RS512"
    case ps256 = "PS256", ps384 = "PS384", ps512 = "PS512"
    case es256 = "ES256", es384 = "ES384"
    case edDSA = "EdDSA"

    /// The only kind of key this algorithm may be verified with: the algorithm must match the
    /// key (no HMAC keyed with an RSA public key, no ES384 with a P-256 key).
    public var keyKind: JWTKeyKind {
        switch self {
        case .hs256, .hs384, .hs512: return .hmac
        case .rs256, .rs384, .rs512, .ps256, .ps384, .ps512: return .rsa
        case .es256: return .ecP256
        case .es384: return .ecP384
        case .edDSA: return .ed25519
        }
    }

    /// The digest, by OpenSSL's name (nil for EdDSA, which hashes inside the signature).
    public var digestName: String? {
        switch self {
        case .hs256, .rs256, .ps256, .es256: return "SHA256"
        case .hs384, .rs384, .ps384, .es384: return "SHA384"
        case .hs512, .rs512, .ps512: return "SHA512"
        case .edDSA: return nil
        }
    }

    /// RSASSA-PSS (salt as long as the digest, MGF1 with the same digest) rather than PKCS #1 v1.5.
    public var usesPSS: Bool {
        switch self {
        case .ps256, .ps384, .ps512: return true
        default: return false
        }
    }

    /// The length of an ECDSA signature (r and s, each as long as the curve's order), else nil.
    public var ecdsaSignatureLength: Int? {
        switch self {
        case .es256: return 64
        case .es384: return 96
        default: return nil
        }
    }
}
