import PicoModel

/// One port's token settings (`<port>.auth.*`, Piko's auth block plus `ed25519_public_key` and
/// `leeway`): the keys a token may be signed with and the claim rules. Auth is on when any key
/// is set. Key texts are never echoed in errors or logs.
public struct PortAuthSettings: Hashable, Sendable {
    /// `hmac_secret_key`: a shared secret for HS256/384/512.
    public var hmacSecretKey: String?
    /// `rsa_public_key`: a PEM public key (at least 2048 bits) for RS256/384/512 and PS256/384/512.
    public var rsaPublicKey: String?
    /// `ecdsa_public_key`: a PEM P-256 (ES256) or P-384 (ES384) public key.
    public var ecdsaPublicKey: String?
    /// `ed25519_public_key`: a PEM Ed25519 public key for EdDSA.
    public var ed25519PublicKey: String?
    /// `audience`: when set, a token's `aud` must name it.
    public var audience: String?
    /// `issuer`: when set, a token's `iss` must be it.
    public var issuer: String?
    /// `leeway`: how far `exp` and `nbf` may be missed (clock skew); at most a day.
    public var leeway: Duration = .zero
    /// `disable_disconnect_on_expiry`: on the upstream port, a tunnel outlives its token.
    public var disableDisconnectOnExpiry = false
    /// `jwks.endpoint`: where the key set is (`https://…`, `file:///…` or a path); not with
    /// any other key.
    public var jwksEndpoint: JWKSLocation?
    /// `jwks.cache_ttl`: how long a fetched key set is used before it is fetched again.
    public var jwksCacheTTL: Duration = .seconds(3_600)
    /// `jwks.timeout`: how long one fetch may take.
    public var jwksTimeout: Duration = .seconds(10)
    /// `jwks.root_cas`: the CAs an `https` key set's server is checked against (default: the
    /// system's roots).
    public var jwksRootCAs: String?

    public init() {}

    /// True when any key or a key set is set: the port then needs a token.
    public var isEnabled: Bool {
        self.hasStaticKey || self.jwksEndpoint != nil
    }

    var hasStaticKey: Bool {
        self.hmacSecretKey != nil || self.rsaPublicKey != nil || self.ecdsaPublicKey != nil || self.ed25519PublicKey != nil
    }

    /// The claim rules.
    public var rules: TokenRules { TokenRules(audience: self.audience, issuer: self.issuer, leeway: self.leeway) }

    /// The port's verifier with its keys loaded, or nil when auth is off; a key that does not
    /// load, or of the wrong type for its setting, is an error naming the setting.
    public func verifier(port: String) throws(ConfigError) -> TokenVerifier? {
        if self.jwksEndpoint != nil {
            guard !self.hasStaticKey else { throw ConfigError("\(port).auth.jwks.endpoint cannot be combined with another key (as in Piko)") }
            return nil
        }
        if self.jwksRootCAs != nil { throw ConfigError("\(port).auth.jwks.root_cas needs \(port).auth.jwks.endpoint") }
        guard self.isEnabled else {
            // Rules without a key would leave the port open while the operator thinks it guarded.
            let rules = [("audience", self.audience != nil), ("issuer", self.issuer != nil), ("leeway", self.leeway != .zero),
                         ("disable_disconnect_on_expiry", self.disableDisconnectOnExpiry)].filter(\.1).map { "\(port).auth.\($0.0)" }
            if !rules.isEmpty {
                throw ConfigError("\(rules.joined(separator: ", ")) set, but no key: set \(port).auth.hmac_secret_key, rsa_public_key, ecdsa_public_key or ed25519_public_key (auth is off without one)")
            }
            return nil
        }
        var keys: [VerificationKey] = []
        if let secret = self.hmacSecretKey {
            guard !secret.isEmpty else { throw ConfigError("\(port).auth.hmac_secret_key is empty") }
            keys.append(VerificationKey(hmacSecret: Array(secret.utf8)))
        }
        let publicKeys: [(String, String?, Set<JWTKeyKind>)] = [
            ("rsa_public_key", self.rsaPublicKey, [.rsa]),
            ("ecdsa_public_key", self.ecdsaPublicKey, [.ecP256, .ecP384]),
            ("ed25519_public_key", self.ed25519PublicKey, [.ed25519]),
        ]
        for (name, pem, kinds) in publicKeys {
            guard let pem else { continue }
            let key: VerificationKey
            do {
                key = try VerificationKey(pem: pem, describing: "\(port).auth.\(name)")
            } catch {
                throw ConfigError("\(error)")
            }
            guard kinds.contains(key.info.kind) else {
                throw ConfigError("\(port).auth.\(name) holds a key of type \(key.info.kind.rawValue)")
            }
            keys.append(key)
        }
        return TokenVerifier(keys: keys, rules: self.rules)
    }

    /// A short HMAC secret is weak against offline guessing: RFC 7518 §3.2 asks for at least
    /// the digest's length (32 bytes for HS256). Returns the warning to log, if any.
    public func weakSecretWarning(port: String) -> String? {
        guard let secret = self.hmacSecretKey, secret.utf8.count < 32 else { return nil }
        return "\(port).auth.hmac_secret_key has \(secret.utf8.count) bytes; RFC 7518 asks for at least 32 (HS256), 48 (HS384) or 64 (HS512)"
    }
}

/// Where a key set is fetched from.
public enum JWKSLocation: Hashable, Sendable, CustomStringConvertible {
    /// A file (`file:///etc/pico/jwks.json` or a path), read again every `cache_ttl`.
    case file(String)
    /// An `https` URL: host, port, and the path with its query.
    case https(Address, path: String)

    /// The location `text` names; nil for anything else (`http://` included: a key set fetched
    /// in plain text could be replaced on the way, and with it every key).
    public init?(_ text: String) {
        if text.hasPrefix("file://") {
            let path = String(text.dropFirst("file://".count))
            guard path.hasPrefix("/"), ServerOptions.isFilePath(path) else { return nil }
            self = .file(path)
        } else if text.hasPrefix("/") {
            guard ServerOptions.isFilePath(text) else { return nil }
            self = .file(text)
        } else if text.hasPrefix("https://") {
            let rest = text.dropFirst("https://".count)
            let slash = rest.firstIndex(of: "/") ?? rest.endIndex
            guard let address = AgentSettings.authority(rest[..<slash], defaultPort: 443),
                  !rest[slash...].utf8.contains(where: { $0 <= 0x20 || $0 == 0x7F }) else { return nil }
            self = .https(address, path: slash == rest.endIndex ? "/" : String(rest[slash...]))
        } else {
            return nil
        }
    }

    public var description: String {
        switch self {
        case .file(let path): return "file://\(path)"
        case .https(let address, let path): return "https://\(address)\(path)"
        }
    }
}
