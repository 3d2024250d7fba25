/// One gossip key: 32 bytes, for AES-256-GCM.
public struct GossipKey: Hashable, Sendable, CustomStringConvertible {
    /// The key's length in bytes.
    public static let length = 32
    /// The key itself.
    public let bytes: [UInt8]

    /// A key of exactly `length` bytes, else nil.
    public init?(bytes: [UInt8]) {
        guard bytes.count == Self.length else { return nil }
        self.bytes = bytes
    }

    /// Never the key's bytes: logs and errors cannot leak it.
    public var description: String { "GossipKey(32 bytes)" }
}

/// The gossip keys a node holds (`cluster.gossip.secret_keys`): the first one seals everything
/// the node sends, every one of them may open what it receives. Rotating is three steps, each
/// rolled out to every node before the next: add the new key (second), make it first, remove the
/// old one.
public struct GossipKeyring: Hashable, Sendable {
    /// The most keys a ring holds (each one is a decryption tried on a message that fails the
    /// ones before it, so the bound is also a bound on work per forged datagram).
    public static let maxKeys = 4

    /// The keys, the sealing one first; never empty.
    public let keys: [GossipKey]

    /// The key that seals outgoing gossip.
    public var primary: GossipKey { self.keys[0] }

    /// A ring of `keys` (1 to `maxKeys`, no repeats), else nil.
    public init?(keys: [GossipKey]) {
        guard (1...Self.maxKeys).contains(keys.count), Set(keys).count == keys.count else { return nil }
        self.keys = keys
    }

    /// Reads a ring from text: one key per entry (lines, or commas in a flag), each standard
    /// padded Base64 of 32 bytes (`openssl rand -base64 32`); blank lines and `#` comments are
    /// skipped. A problem names the entry (1-based) and never echoes a key.
    public static func parse(_ text: String) -> Result<GossipKeyring, GossipKeyringError> {
        var keys: [GossipKey] = []
        var entry = 0
        for line in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "," }) {
            let trimmed = line.trimmingScalars(in: " \t\r")
            guard !trimmed.isEmpty, !trimmed.hasPrefix("#") else { continue }
            entry += 1
            guard let bytes = Base64.decode(trimmed) else { return .failure(GossipKeyringError("key \(entry) is not Base64")) }
            guard let key = GossipKey(bytes: bytes) else {
                return .failure(GossipKeyringError("key \(entry) has \(bytes.count) bytes, not \(GossipKey.length) (make one with: openssl rand -base64 32)"))
            }
            guard !keys.contains(key) else { return .failure(GossipKeyringError("key \(entry) repeats an earlier key")) }
            keys.append(key)
        }
        guard !keys.isEmpty else { return .failure(GossipKeyringError("no key")) }
        guard keys.count <= Self.maxKeys else { return .failure(GossipKeyringError("\(keys.count) keys; at most \(Self.maxKeys)")) }
        return .success(GossipKeyring(keys: keys)!)
    }
}

/// Why a key ring did not parse.
public struct GossipKeyringError: Error, Hashable, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { self.message }
}

extension StringProtocol {
    /// The text without leading and trailing characters whose Unicode scalars are in
    /// `characters` (by scalar: as Characters, "\r\n" is one, and a lone "\n" would not match it).
    public func trimmingScalars(in characters: String) -> String {
        let trimmed = Set(characters.unicodeScalars)
        var scalars = self.unicodeScalars[...]
        while let first = scalars.first, trimmed.contains(first) { scalars.removeFirst() }
        while let last = scalars.last, trimmed.contains(last) { scalars.removeLast() }
        return String(String.UnicodeScalarView(scalars))
    }
}
