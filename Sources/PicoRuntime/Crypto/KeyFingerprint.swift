import COpenSSL
import PicoModel

/// Short names for secret keys, safe to log and show: the first 8 bytes of the key's SHA-256,
/// in hex (they identify a key; they do not help find it).
public enum KeyFingerprint {
    public static func of(_ key: GossipKey) -> String { Self.of(bytes: key.bytes) }

    /// The fingerprint of any key material.
    public static func of(bytes: [UInt8]) -> String {
        var digest = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        guard EVP_Digest(bytes, bytes.count, &digest, &length, EVP_sha256(), nil) == 1 else { return "unknown" }
        return digest.prefix(8).map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
    }
}
