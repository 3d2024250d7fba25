/// A JWT in JWS compact serialization (RFC 7515 §7.1), split and decoded but not verified:
/// the shell checks `signature` over `signingInput` with a key `TokenKeys` chose, and only
/// then are the claims believed.
public struct CompactToken: Hashable, Sendable {
    /// The longest token read: larger ones are refused unread (identity providers' tokens are
    /// a few KiB; a 1 MiB one is an attack).
    public static let maxBytes = 16 * 1_024
    /// The deepest JSON nesting read in the header or the claims (Pico's claims are one level).
    public static let maxJSONDepth = 8
    /// The longest `kid` taken.
    public static let maxKeyIDBytes = 256

    /// `alg`, known to Pico.
    public var algorithm: JWTAlgorithm
    /// `kid`, when the header names the key.
    public var keyID: String?
    /// The claims Pico reads.
    public var claims: TokenClaims
    /// `header.payload` as sent: what the signature covers.
    public var signingInput: [UInt8]
    /// The signature's bytes.
    public var signature: [UInt8]

    /// Splits and decodes `token`, or says why it is not a token Pico can verify: not three
    /// base64url parts, JSON that does not parse or repeats a field Pico reads, a `crit`
    /// header (no extension is understood), an `alg` outside `JWTAlgorithm` (`none` included),
    /// or a claim of the wrong type.
    public static func parse(_ token: some Collection<UInt8>) -> Result<CompactToken, AuthFailure> {
        guard token.count <= Self.maxBytes else { return .failure(AuthFailure(.malformedToken, "longer than \(Self.maxBytes) bytes")) }
        let bytes = Array(token)
        let parts = bytes.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        guard parts.count == 3 else { return .failure(AuthFailure(.malformedToken, "\(parts.count) parts, not 3")) }
        guard let headerBytes = Base64URL.decode(parts[0]), let payloadBytes = Base64URL.decode(parts[1]),
              let signature = Base64URL.decode(parts[2]) else {
            return .failure(AuthFailure(.malformedToken, "not base64url"))
        }
        let header: [(String, JSONValue)]
        let payload: [(String, JSONValue)]
        do {
            guard case .object(let headerFields) = try JSONValue.parse(bytes: headerBytes, maxDepth: Self.maxJSONDepth) else {
                return .failure(AuthFailure(.malformedToken, "the header is not a JSON object"))
            }
            guard case .object(let claimFields) = try JSONValue.parse(bytes: payloadBytes, maxDepth: Self.maxJSONDepth) else {
                return .failure(AuthFailure(.malformedToken, "the claims are not a JSON object"))
            }
            header = headerFields
            payload = claimFields
        } catch {
            return .failure(AuthFailure(.malformedToken, error.description))
        }
        let fields: HeaderFields
        switch HeaderFields.read(header) {
        case .success(let read): fields = read
        case .failure(let failure): return .failure(failure)
        }
        let claims: TokenClaims
        switch TokenClaims.read(payload) {
        case .success(let read): claims = read
        case .failure(let failure): return .failure(failure)
        }
        if let length = fields.algorithm.ecdsaSignatureLength, signature.count != length {
            return .failure(AuthFailure(.badSignature, "an \(fields.algorithm.rawValue) signature of \(signature.count) bytes"))
        }
        let signingInput = Array(bytes[..<parts[1].endIndex])
        return .success(CompactToken(algorithm: fields.algorithm, keyID: fields.keyID, claims: claims, signingInput: signingInput, signature: signature))
    }

    /// The JOSE header's fields Pico reads.
    struct HeaderFields {
        var algorithm: JWTAlgorithm
        var keyID: String?

        static func read(_ fields: [(String, JSONValue)]) -> Result<HeaderFields, AuthFailure> {
            var algorithm: JWTAlgorithm?
            var keyID: String?
            var seen: [String] = []
            for (name, value) in fields {
                switch name {
                case "crit":
                    return .failure(AuthFailure(.malformedToken, "a crit header (no extension is understood)"))
                case "alg", "kid":
                    guard !seen.contains(name) else { return .failure(AuthFailure(.malformedToken, "\(name) given twice")) }
                    seen.append(name)
                    guard case .string(let text) = value else { return .failure(AuthFailure(.malformedToken, "\(name) is not a string")) }
                    if name == "alg" {
                        guard let known = JWTAlgorithm(rawValue: text) else {
                            return .failure(AuthFailure(.unsupportedAlgorithm, "alg \(TokenText.printable(text))"))
                        }
                        algorithm = known
                    } else {
                        guard text.utf8.count <= CompactToken.maxKeyIDBytes else { return .failure(AuthFailure(.malformedToken, "kid longer than \(CompactToken.maxKeyIDBytes) bytes")) }
                        keyID = text
                    }
                default:
                    continue
                }
            }
            guard let algorithm else { return .failure(AuthFailure(.malformedToken, "no alg")) }
            return .success(HeaderFields(algorithm: algorithm, keyID: keyID))
        }
    }
}

/// Text from a token or a key set, made safe for a log line.
public enum TokenText {
    /// `text` cut to 64 characters, with anything outside printable ASCII as `?`.
    public static func printable(_ text: String) -> String {
        String(String.UnicodeScalarView(text.unicodeScalars.prefix(64).map { (0x20..<0x7F).contains($0.value) ? $0 : "?" }))
    }
}
