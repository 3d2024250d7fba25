import COpenSSL
import PicoModel
import Synchronization

/// Makes and checks `ForwardProof`s with keys derived from the gossip key ring (HMAC-SHA256 of
/// a fixed label under each gossip key, so the gossip keys themselves seal only gossip). Shared
/// by every loop; the ring is replaced whole when the key file changes.
public final class ForwardSigner: Sendable {
    private let keys: Mutex<[[UInt8]]>

    public init(keyring: GossipKeyring) {
        self.keys = Mutex(Self.derive(keyring))
    }

    /// Uses `keyring` from now on.
    public func update(_ keyring: GossipKeyring) {
        let derived = Self.derive(keyring)
        self.keys.withLock { $0 = derived }
    }

    private static func derive(_ keyring: GossipKeyring) -> [[UInt8]] {
        keyring.keys.map { Self.hmac(key: $0.bytes, Array("pico-forward-proof key v1".utf8)) ?? [] }
    }

    static func hmac(key: [UInt8], _ message: [UInt8]) -> [UInt8]? {
        var mac = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        guard HMAC(EVP_sha256(), key, Int32(key.count), message, message.count, &mac, &length) != nil, length == 32 else { return nil }
        return Array(mac.prefix(32))
    }

    /// The proof's field value for a forward of this request at `now` (Unix seconds), made
    /// with the ring's first key; nil if OpenSSL failed.
    public func proof(method: String, target: String, endpoint: String?, now: Int64) -> String? {
        guard let key = self.keys.withLock({ $0.first }) else { return nil }
        return Self.hmac(key: key, ForwardProof.message(method: method, target: target, endpoint: endpoint, time: now)).map { ForwardProof.value(time: now, mac: $0) }
    }

    /// Whether the request's proof field (nil: none) is fresh and verifies under a key of the
    /// ring (compared in constant time).
    public func check(_ value: String?, method: String, target: String, endpoint: String?, now: Int64) -> ForwardProof.Check {
        guard let value, let (time, mac) = ForwardProof.parse(value), ForwardProof.isFresh(time, now: now) else { return .refused }
        let message = ForwardProof.message(method: method, target: target, endpoint: endpoint, time: time)
        for key in self.keys.withLock({ $0 }) {
            if let expected = Self.hmac(key: key, message), CRYPTO_memcmp(expected, mac, 32) == 0 { return .verified }
        }
        return .refused
    }
}
