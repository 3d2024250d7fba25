/// Authenticated encryption for gossip, provided by the shell: the runtime's is AES-256-GCM
/// from OpenSSL with a random 96-bit nonce per message; the simulator's is
/// `DeterministicGossipCipher`. `GossipSeal` decides what is sealed with which key.
public protocol GossipCipher: Sendable {
    /// `plaintext` encrypted and authenticated (with `associatedData`) under `key`, as
    /// nonce (12 bytes) ‖ ciphertext ‖ tag (16 bytes).
    func seal(_ plaintext: [UInt8], key: GossipKey, associatedData: [UInt8]) -> [UInt8]
    /// The plaintext of `sealed` when it authenticates under `key` with `associatedData`; nil
    /// otherwise (nothing of an unauthenticated message is returned).
    func open(_ sealed: ArraySlice<UInt8>, key: GossipKey, associatedData: [UInt8]) -> [UInt8]?
}

/// The bytes every sealed message adds: a 12-byte nonce and a 16-byte tag.
public enum GossipCipherLayout {
    public static let nonceLength = 12
    public static let tagLength = 16
    public static let overhead = nonceLength + tagLength
}

/// A deterministic stand-in for AES-256-GCM, for the simulator and model tests: the same
/// layout and the same failures (a wrong key, a flipped bit, other associated data: nil), from a
/// keyed SplitMix64 stream and a keyed 128-bit tag. It hides nothing from a reader who knows the
/// construction, and it is never used on a network.
public struct DeterministicGossipCipher: GossipCipher {
    public init() {}

    public func seal(_ plaintext: [UInt8], key: GossipKey, associatedData: [UInt8]) -> [UInt8] {
        // The nonce is derived from the message (deterministic, so the same run gives the same bytes).
        let nonce = Self.tag(key: key, nonce: [], data: plaintext, associatedData: associatedData).prefix(GossipCipherLayout.nonceLength)
        let ciphertext = Self.xor(plaintext, key: key, nonce: Array(nonce))
        return Array(nonce) + ciphertext + Self.tag(key: key, nonce: Array(nonce), data: ciphertext, associatedData: associatedData)
    }

    public func open(_ sealed: ArraySlice<UInt8>, key: GossipKey, associatedData: [UInt8]) -> [UInt8]? {
        guard sealed.count >= GossipCipherLayout.overhead else { return nil }
        let nonce = Array(sealed.prefix(GossipCipherLayout.nonceLength))
        let ciphertext = Array(sealed.dropFirst(GossipCipherLayout.nonceLength).dropLast(GossipCipherLayout.tagLength))
        guard Array(sealed.suffix(GossipCipherLayout.tagLength)) == Self.tag(key: key, nonce: nonce, data: ciphertext, associatedData: associatedData) else { return nil }
        return Self.xor(ciphertext, key: key, nonce: nonce)
    }

    private static func seed(_ key: GossipKey, _ nonce: [UInt8]) -> UInt64 {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in key.bytes + nonce { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3 }
        return hash
    }

    private static func xor(_ data: [UInt8], key: GossipKey, nonce: [UInt8]) -> [UInt8] {
        var stream = SplitMix64(seed: Self.seed(key, nonce))
        var output = data
        var word: UInt64 = 0
        for index in output.indices {
            if index % 8 == 0 { word = stream.next() }
            output[index] ^= UInt8(truncatingIfNeeded: word >> (UInt64(index % 8) * 8))
        }
        return output
    }

    private static func tag(key: GossipKey, nonce: [UInt8], data: [UInt8], associatedData: [UInt8]) -> [UInt8] {
        var first = SplitMix64(seed: Self.seed(key, nonce))
        var second = SplitMix64(seed: Self.seed(key, nonce) ^ 0x5DEE_CE66_D1CE_4E5B)
        var a = first.next(), b = second.next()
        for byte in associatedData + [0xFF] + data {
            a = (a ^ UInt64(byte)) &* 0x0000_0100_0000_01B3 ^ first.next()
            b = (b ^ UInt64(byte)) &* 0x0000_0100_0000_01B3 ^ second.next()
        }
        return (0..<8).map { UInt8(truncatingIfNeeded: a >> ($0 * 8)) } + (0..<8).map { UInt8(truncatingIfNeeded: b >> ($0 * 8)) }
    }
}
