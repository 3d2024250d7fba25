/// One public key of a JSON Web Key Set (RFC 7517), as read, before OpenSSL makes a key of it.
public struct JSONWebKey: Hashable, Sendable {
    /// The key's numbers.
    public enum Material: Hashable, Sendable {
        /// `kty: RSA`: the modulus and the public exponent, big-endian.
        case rsa(modulus: [UInt8], exponent: [UInt8])
        /// `kty: EC`: a point on P-256 or P-384 (`kind` says which).
        case ec(kind: JWTKeyKind, x: [UInt8], y: [UInt8])
        /// `kty: OKP`, `crv: Ed25519`: the 32-byte public key.
        case ed25519([UInt8])
    }

    /// `kid`.
    public var keyID: String?
    /// `alg`, when the key is for one algorithm only.
    public var algorithm: JWTAlgorithm?
    public var material: Material

    /// The kind of key it is (what `TokenKeys` matches algorithms against).
    public var kind: JWTKeyKind {
        switch self.material {
        case .rsa: return .rsa
        case .ec(let kind, _, _): return kind
        case .ed25519: return .ed25519
        }
    }
}

/// Reads a JSON Web Key Set (`{"keys": [...]}`) of signature-verification keys. Keys Pico cannot
/// use are skipped, each with a reason for the log: `use` other than `sig`, a symmetric (`oct`)
/// or unknown key type or curve, an `alg` Pico does not verify or that does not fit the key,
/// numbers of the wrong length, a repeated `kid`. The set itself is refused when it is larger
/// than `maxBytes`, is not such an object, or holds more than `maxKeys` entries.
public enum JWKSet {
    /// The largest key set read (identity providers publish a few KiB).
    public static let maxBytes = 256 * 1_024
    /// The most entries a set may hold.
    public static let maxKeys = 64
    /// The smallest RSA modulus taken, in bytes (2048 bits).
    static let minimumModulusBytes = 256

    /// What was read: the usable keys, and why others were skipped.
    public struct Contents: Hashable, Sendable {
        public var keys: [JSONWebKey]
        public var skipped: [String]
    }

    /// Why a whole set was refused.
    public struct Refusal: Error, Hashable, Sendable, CustomStringConvertible {
        public var message: String
        public var description: String { self.message }
    }

    public static func parse(_ bytes: [UInt8]) -> Result<Contents, Refusal> {
        guard bytes.count <= Self.maxBytes else { return .failure(Refusal(message: "larger than \(Self.maxBytes) bytes")) }
        let document: JSONValue
        do { document = try JSONValue.parse(bytes: bytes, maxDepth: 8) } catch { return .failure(Refusal(message: error.description)) }
        guard case .object(let top) = document, let entry = top.first(where: { $0.0 == "keys" }), case .array(let items) = entry.1 else {
            return .failure(Refusal(message: "not a JSON Web Key Set (an object with a \"keys\" list)"))
        }
        guard items.count <= Self.maxKeys else { return .failure(Refusal(message: "\(items.count) keys; at most \(Self.maxKeys)")) }
        var contents = Contents(keys: [], skipped: [])
        for (index, item) in items.enumerated() {
            switch Self.key(item) {
            case .success(let key):
                if let id = key.keyID, contents.keys.contains(where: { $0.keyID == id }) {
                    contents.skipped.append("key \(index): kid \(TokenText.printable(id)) repeats an earlier key's")
                } else {
                    contents.keys.append(key)
                }
            case .failure(let reason):
                contents.skipped.append("key \(index)\(Self.kid(of: item).map { " (kid \(TokenText.printable($0)))" } ?? ""): \(reason.message)")
            }
        }
        return .success(contents)
    }

    /// The y coordinates (little-endian, sign bit cleared) of Ed25519's small-order points: 1
    /// (the identity), p - 1, 0, and the two of order 8. A public key there verifies forged
    /// signatures.
    static let smallOrderY: [[UInt8]] = [
        [1] + [UInt8](repeating: 0, count: 31),
        [0xEC] + [UInt8](repeating: 0xFF, count: 30) + [0x7F],
        [UInt8](repeating: 0, count: 32),
        [0xC7, 0x17, 0x6A, 0x70, 0x3D, 0x4D, 0xD8, 0x4F, 0xBA, 0x3C, 0x0B, 0x76, 0x0D, 0x10, 0x67, 0x0F,
         0x2A, 0x20, 0x53, 0xFA, 0x2C, 0x39, 0xCC, 0xC6, 0x4E, 0xC7, 0xFD, 0x77, 0x92, 0xAC, 0x03, 0x7A],
        [0x26, 0xE8, 0x95, 0x8F, 0xC2, 0xB2, 0x27, 0xB0, 0x45, 0xC3, 0xF4, 0x89, 0xF2, 0xEF, 0x98, 0xF0,
         0xD5, 0xDF, 0xAC, 0x05, 0xD3, 0xC6, 0x33, 0x39, 0xB1, 0x38, 0x02, 0x88, 0x6D, 0x53, 0xFC, 0x05],
    ]

    /// True for an Ed25519 key whose y is a small-order point's, or not below p = 2^255 - 19
    /// (a second encoding of a smaller y).
    public static func isWeakEd25519(_ x: [UInt8]) -> Bool {
        var y = x
        y[31] &= 0x7F
        if Self.smallOrderY.contains(y) { return true }
        // y >= p, compared from the most significant byte: p is 7F FF … FF ED.
        let p: [UInt8] = [0xED] + [UInt8](repeating: 0xFF, count: 30) + [0x7F]
        for index in stride(from: 31, through: 0, by: -1) where y[index] != p[index] {
            return y[index] > p[index]
        }
        return true
    }

    private static func kid(of item: JSONValue) -> String? {
        guard case .object(let fields) = item, let kid = fields.first(where: { $0.0 == "kid" }), case .string(let text) = kid.1 else { return nil }
        return text
    }

    private static func key(_ item: JSONValue) -> Result<JSONWebKey, Refusal> {
        guard case .object(let fields) = item else { return .failure(Refusal(message: "not an object")) }
        func string(_ name: String) -> String? {
            guard let field = fields.first(where: { $0.0 == name }), case .string(let text) = field.1 else { return nil }
            return text
        }
        func bytes(_ name: String) -> [UInt8]? { string(name).flatMap { Base64URL.decode($0.utf8) } }
        if let use = string("use"), use != "sig" { return .failure(Refusal(message: "use \(TokenText.printable(use)), not sig")) }
        let keyID = string("kid")
        if let keyID, keyID.utf8.count > CompactToken.maxKeyIDBytes { return .failure(Refusal(message: "kid longer than \(CompactToken.maxKeyIDBytes) bytes")) }
        var algorithm: JWTAlgorithm?
        if let name = string("alg") {
            guard let known = JWTAlgorithm(rawValue: name) else { return .failure(Refusal(message: "alg \(TokenText.printable(name)) is not one Pico verifies")) }
            algorithm = known
        }
        let material: JSONWebKey.Material
        switch string("kty") {
        case "RSA":
            guard let modulus = bytes("n"), let exponent = bytes("e"), !exponent.isEmpty, exponent.count <= 8 else {
                return .failure(Refusal(message: "an RSA key needs base64url n and e"))
            }
            let significant = modulus.drop { $0 == 0 }
            guard significant.count >= Self.minimumModulusBytes, significant.count <= 2_048 else {
                return .failure(Refusal(message: "an RSA modulus of \(significant.count * 8) bits (2048 to 16384 are taken)"))
            }
            // An even exponent, or 1, is no RSA key (with e = 1 the signature is the padded
            // message itself: anyone could make one).
            let exponentValue = exponent.reduce(UInt64(0)) { ($0 << 8) | UInt64($1) }
            guard exponentValue >= 3, exponentValue % 2 == 1 else { return .failure(Refusal(message: "an RSA exponent of \(exponentValue) (an odd number of at least 3 is needed)")) }
            material = .rsa(modulus: Array(significant), exponent: exponent)
        case "EC":
            let kinds: [String: (JWTKeyKind, Int)] = ["P-256": (.ecP256, 32), "P-384": (.ecP384, 48)]
            guard let curve = string("crv"), let (kind, length) = kinds[curve] else { return .failure(Refusal(message: "an EC key on a curve Pico does not take (P-256 and P-384 are)")) }
            guard let x = bytes("x"), let y = bytes("y"), x.count == length, y.count == length else {
                return .failure(Refusal(message: "a \(curve) key needs base64url x and y of \(length) bytes"))
            }
            material = .ec(kind: kind, x: x, y: y)
        case "OKP":
            guard string("crv") == "Ed25519", let x = bytes("x"), x.count == 32 else { return .failure(Refusal(message: "an OKP key must be Ed25519 with a 32-byte x")) }
            guard !Self.isWeakEd25519(x) else { return .failure(Refusal(message: "an Ed25519 key of small order or not in canonical form (signatures under it can be forged)")) }
            material = .ed25519(x)
        case "oct":
            return .failure(Refusal(message: "a symmetric key; a key set provides public keys only"))
        case let other:
            return .failure(Refusal(message: "kty \(other.map(TokenText.printable) ?? "missing") is not RSA, EC or OKP"))
        }
        let key = JSONWebKey(keyID: keyID, algorithm: algorithm, material: material)
        if let algorithm, algorithm.keyKind != key.kind {
            return .failure(Refusal(message: "alg \(algorithm.rawValue) does not fit a key of type \(key.kind.rawValue)"))
        }
        return .success(key)
    }
}
