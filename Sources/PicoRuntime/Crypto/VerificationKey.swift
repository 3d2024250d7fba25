import COpenSSL
import PicoModel

/// One key that verifies token signatures: an HMAC secret, or a public key (RSA of at least
/// 2048 bits, ECDSA on P-256 or P-384, Ed25519) held by OpenSSL. Immutable once made, so loops
/// share it and verify with it at once (each check uses its own OpenSSL context).
public final class VerificationKey: @unchecked Sendable {
    /// What the key choice (`TokenKeys`) knows of it.
    public let info: TokenKeyInfo
    /// Names the key's material (not its `kid`): a tunnel remembers which key let it in, and
    /// closes when a fetched key set no longer holds it.
    public let fingerprint: String
    private let secret: [UInt8]
    private let publicKey: OpaquePointer?

    /// The smallest RSA modulus taken (NIST SP 800-131A; smaller keys can be factored).
    public static let minimumRSABits: Int32 = 2_048

    /// An HMAC secret (`*.auth.hmac_secret_key`); `keyID` when a key set named it.
    public init(hmacSecret: [UInt8], keyID: String? = nil, algorithm: JWTAlgorithm? = nil) {
        self.info = TokenKeyInfo(kind: .hmac, keyID: keyID, algorithm: algorithm)
        self.fingerprint = KeyFingerprint.of(bytes: [0] + hmacSecret)
        self.secret = hmacSecret
        self.publicKey = nil
    }

    /// Takes ownership of `key` (an `EVP_PKEY`), after checking its type and size.
    init(owning key: OpaquePointer, keyID: String?, algorithm: JWTAlgorithm?, material: [UInt8], describing what: String) throws(TLSError) {
        guard let kind = Self.kind(of: key) else {
            EVP_PKEY_free(key)
            throw TLSError("\(what): not an RSA, P-256, P-384 or Ed25519 public key")
        }
        if kind == .rsa, EVP_PKEY_get_bits(key) < Self.minimumRSABits {
            let bits = EVP_PKEY_get_bits(key)
            EVP_PKEY_free(key)
            throw TLSError("\(what): an RSA key of \(bits) bits (at least \(Self.minimumRSABits) are needed)")
        }
        if let weakness = Self.weakness(of: key, kind: kind) {
            EVP_PKEY_free(key)
            throw TLSError("\(what): \(weakness)")
        }
        self.info = TokenKeyInfo(kind: kind, keyID: keyID, algorithm: algorithm)
        self.fingerprint = KeyFingerprint.of(bytes: material)
        self.secret = []
        self.publicKey = key
    }

    /// A public key from PEM text (`-----BEGIN PUBLIC KEY-----`, as `openssl pkey -pubout`
    /// writes it), or an error naming `what` (the setting) and OpenSSL's reason.
    public convenience init(pem: String, describing what: String) throws(TLSError) {
        var text = Array(pem.utf8)
        let key: OpaquePointer? = text.withUnsafeMutableBytes { buffer in
            guard let bio = BIO_new_mem_buf(buffer.baseAddress, Int32(buffer.count)) else { return nil }
            defer { BIO_free(bio) }
            return PEM_read_bio_PUBKEY(bio, nil, nil, nil)
        }
        guard let key else { throw TLSError.fromQueue("\(what): not a PEM public key (-----BEGIN PUBLIC KEY-----)") }
        try self.init(owning: key, keyID: nil, algorithm: nil, material: Array(pem.utf8), describing: what)
    }

    /// A key from a key set's entry (`JWKSet`), built from its numbers by OpenSSL.
    public convenience init(jwk: JSONWebKey, describing what: String) throws(TLSError) {
        let made: OpaquePointer?
        switch jwk.material {
        case .ed25519(let x):
            made = EVP_PKEY_new_raw_public_key_ex(nil, "ED25519", nil, x, x.count)
        case .rsa(let modulus, let exponent):
            let n = BN_bin2bn(modulus, Int32(modulus.count), nil)
            let e = BN_bin2bn(exponent, Int32(exponent.count), nil)
            // The builder refers to the numbers until its parameters are made: freed after.
            defer {
                BN_free(n)
                BN_free(e)
            }
            made = n == nil || e == nil ? nil : Self.fromData("RSA") { builder in
                OSSL_PARAM_BLD_push_BN(builder, Self.cString("n"), n) == 1 && OSSL_PARAM_BLD_push_BN(builder, Self.cString("e"), e) == 1
            }
        case .ec(let kind, let x, let y):
            let point: [UInt8] = [0x04] + x + y
            made = point.withUnsafeBytes { bytes in
                Self.fromData("EC") { builder in
                    OSSL_PARAM_BLD_push_utf8_string(builder, Self.cString("group"), Self.cString(kind == .ecP256 ? "P-256" : "P-384"), 0) == 1
                        && OSSL_PARAM_BLD_push_octet_string(builder, Self.cString("pub"), bytes.baseAddress, bytes.count) == 1
                }
            }
        }
        guard let made else { throw TLSError.fromQueue("\(what): a key OpenSSL does not take") }
        let material: [UInt8]
        switch jwk.material {
        case .rsa(let modulus, let exponent): material = [1] + modulus + [0] + exponent
        case .ec(let kind, let x, let y): material = [kind == .ecP256 ? 2 : 3] + x + y
        case .ed25519(let x): material = [4] + x
        }
        try self.init(owning: made, keyID: jwk.keyID, algorithm: jwk.algorithm, material: material, describing: what)
    }

    /// A C string that lives as long as the program: a parameter builder keeps the names (and
    /// strings) it is given by reference until it makes its parameters, so a temporary bridged
    /// Swift string would dangle.
    private static func cString(_ text: StaticString) -> UnsafePointer<CChar> {
        UnsafeRawPointer(text.utf8Start).assumingMemoryBound(to: CChar.self)
    }

    /// An `EVP_PKEY` of type `type` (a public key) from the parameters `push` adds to a builder;
    /// nil when OpenSSL refuses them (a point not on the curve, for one).
    private static func fromData(_ type: String, push: (OpaquePointer?) -> Bool) -> OpaquePointer? {
        guard let builder = OSSL_PARAM_BLD_new() else { return nil }
        defer { OSSL_PARAM_BLD_free(builder) }
        guard push(builder), let parameters = OSSL_PARAM_BLD_to_param(builder) else { return nil }
        defer { OSSL_PARAM_free(parameters) }
        guard let context = EVP_PKEY_CTX_new_from_name(nil, type, nil) else { return nil }
        defer { EVP_PKEY_CTX_free(context) }
        var key: OpaquePointer?
        guard EVP_PKEY_fromdata_init(context) == 1, EVP_PKEY_fromdata(context, &key, pico_EVP_PKEY_PUBLIC_KEY, parameters) == 1 else { return nil }
        if type == "EC", let candidate = key {
            // fromdata does not check that the point is on the curve: a check context does.
            guard let check = EVP_PKEY_CTX_new_from_pkey(nil, candidate, nil) else {
                EVP_PKEY_free(candidate)
                return nil
            }
            defer { EVP_PKEY_CTX_free(check) }
            guard EVP_PKEY_public_check(check) == 1 else {
                EVP_PKEY_free(candidate)
                return nil
            }
        }
        return key
    }

    deinit {
        if let publicKey = self.publicKey { EVP_PKEY_free(publicKey) }
    }

    /// Why a public key would verify forged signatures, if it would: an RSA exponent that is
    /// even or 1, an Ed25519 point of small order or in a non-canonical form.
    private static func weakness(of key: OpaquePointer, kind: JWTKeyKind) -> String? {
        switch kind {
        case .rsa:
            var exponent: OpaquePointer?
            guard EVP_PKEY_get_bn_param(key, "e", &exponent) == 1, let exponent else { return "an RSA key without a readable exponent" }
            defer { BN_free(exponent) }
            return BN_is_odd(exponent) == 1 && BN_get_word(exponent) >= 3 ? nil : "an RSA exponent that is even or 1"
        case .ed25519:
            var raw = [UInt8](repeating: 0, count: 32)
            var length = raw.count
            guard EVP_PKEY_get_raw_public_key(key, &raw, &length) == 1, length == 32 else { return "an Ed25519 key without a readable point" }
            return JWKSet.isWeakEd25519(raw) ? "an Ed25519 key of small order or not in canonical form" : nil
        case .hmac, .ecP256, .ecP384:
            return nil
        }
    }

    private static func kind(of key: OpaquePointer) -> JWTKeyKind? {
        if EVP_PKEY_is_a(key, "RSA") == 1 { return .rsa }
        if EVP_PKEY_is_a(key, "ED25519") == 1 { return .ed25519 }
        guard EVP_PKEY_is_a(key, "EC") == 1 else { return nil }
        var name = [CChar](repeating: 0, count: 64)
        var length = 0
        guard EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, &name, name.count, &length) == 1 else { return nil }
        switch String(decoding: name.prefix(min(length, name.count)).map { UInt8(bitPattern: $0) }, as: UTF8.self) {
        case "prime256v1", "P-256", "secp256r1": return .ecP256
        case "secp384r1", "P-384": return .ecP384
        default: return nil
        }
    }

    /// True when `signature` is this key's signature of `input` under `algorithm` (whose kind
    /// the caller matched to the key). Never throws: anything OpenSSL refuses is a bad signature.
    public func verifies(_ signature: [UInt8], of input: [UInt8], algorithm: JWTAlgorithm) -> Bool {
        defer { ERR_clear_error() }
        guard algorithm.keyKind == self.info.kind else { return false }
        if algorithm.keyKind == .hmac { return self.verifiesHMAC(signature, of: input, algorithm: algorithm) }
        guard let publicKey = self.publicKey else { return false }
        var encoded = signature
        if algorithm.ecdsaSignatureLength != nil {
            guard let der = Self.derECDSASignature(raw: signature) else { return false }
            encoded = der
        }
        guard let context = EVP_MD_CTX_new() else { return false }
        defer { EVP_MD_CTX_free(context) }
        let digest = algorithm.digestName.flatMap { EVP_get_digestbyname($0) }
        var keyContext: OpaquePointer?
        guard EVP_DigestVerifyInit(context, &keyContext, digest, nil, publicKey) == 1 else { return false }
        if algorithm.usesPSS {
            // RFC 7518 signs with a salt as long as the digest; verification takes any salt length
            // (as golang-jwt, which Piko uses, does), so issuers that use the longest salt work.
            guard EVP_PKEY_CTX_set_rsa_padding(keyContext, RSA_PKCS1_PSS_PADDING) == 1,
                  EVP_PKEY_CTX_set_rsa_pss_saltlen(keyContext, RSA_PSS_SALTLEN_AUTO) == 1 else { return false }
        } else if algorithm.keyKind == .rsa {
            guard EVP_PKEY_CTX_set_rsa_padding(keyContext, RSA_PKCS1_PADDING) == 1 else { return false }
        }
        return EVP_DigestVerify(context, encoded, encoded.count, input, input.count) == 1
    }

    private func verifiesHMAC(_ signature: [UInt8], of input: [UInt8], algorithm: JWTAlgorithm) -> Bool {
        guard let name = algorithm.digestName, let digest = EVP_get_digestbyname(name) else { return false }
        var mac = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        guard self.secret.count <= Int(Int32.max),
              HMAC(digest, self.secret, Int32(self.secret.count), input, input.count, &mac, &length) != nil,
              Int(length) == signature.count else { return false }
        return CRYPTO_memcmp(mac, signature, signature.count) == 0
    }

    /// A JWS ECDSA signature (r then s, big-endian, each half the length) as the DER
    /// `ECDSA-Sig-Value` OpenSSL verifies.
    static func derECDSASignature(raw: [UInt8]) -> [UInt8]? {
        guard !raw.isEmpty, raw.count % 2 == 0, let signature = ECDSA_SIG_new() else { return nil }
        defer { ECDSA_SIG_free(signature) }
        let half = raw.count / 2
        guard let r = BN_bin2bn(raw, Int32(half), nil) else { return nil }
        let s: OpaquePointer? = raw.withUnsafeBufferPointer { BN_bin2bn($0.baseAddress! + half, Int32(half), nil) }
        guard let s else {
            BN_free(r)
            return nil
        }
        guard ECDSA_SIG_set0(signature, r, s) == 1 else {
            BN_free(r)
            BN_free(s)
            return nil
        }
        let length = i2d_ECDSA_SIG(signature, nil)
        guard length > 0 else { return nil }
        var der = [UInt8](repeating: 0, count: Int(length))
        let written: Int32 = der.withUnsafeMutableBufferPointer { buffer in
            var cursor: UnsafeMutablePointer<UInt8>? = buffer.baseAddress
            return i2d_ECDSA_SIG(signature, &cursor)
        }
        return written == length ? der : nil
    }
}
