/// What a node's gossip needs to seal and open messages: its key ring and the shell's cipher.
/// Without one, gossip is plain text (`GossipCodec`'s bytes as they are).
public struct GossipSecurity: Sendable {
    /// The keys: the first seals, all open.
    public var keyring: GossipKeyring
    /// The shell's authenticated encryption.
    public let cipher: any GossipCipher
    /// memberlist's `GossipVerifyIncoming`: false while encryption is being turned on across a
    /// running cluster (plain-text gossip from nodes without keys is still taken).
    public var verifyIncoming: Bool
    /// memberlist's `GossipVerifyOutgoing`: false in the first step of turning encryption on
    /// (the node takes sealed gossip but still sends plain text).
    public var verifyOutgoing: Bool

    public init(keyring: GossipKeyring, cipher: any GossipCipher, verifyIncoming: Bool = true, verifyOutgoing: Bool = true) {
        self.keyring = keyring
        self.cipher = cipher
        self.verifyIncoming = verifyIncoming
        self.verifyOutgoing = verifyOutgoing
    }
}

/// The sealed envelope of gossip: `0xB8 | version 1 | nonce ‖ ciphertext ‖ tag`, with the two
/// header bytes and the channel in the associated data (a datagram cannot be replayed as a
/// state exchange, nor a request as a reply). Opening tries each key of the ring, sealing key
/// first; a message that none opens is dropped before a byte of it is parsed.
public enum GossipSeal {
    /// The first byte of a sealed message (plain `GossipCodec` messages start with 0xB7).
    public static let magic: UInt8 = 0xB8
    /// The envelope version.
    public static let version: UInt8 = 1
    /// What sealing adds to a message.
    public static let overhead = 2 + GossipCipherLayout.overhead

    /// Where a message travels.
    public enum Channel: UInt8, Sendable {
        case datagram = 1
        case stateRequest = 2
        case stateReply = 3
    }

    /// Why a message was not opened.
    public enum Refusal: Error, Hashable, Sendable {
        /// Plain text where only sealed messages are taken.
        case notSealed
        /// Sealed, but no key of the ring opens it (another cluster's key, a forgery, a flipped bit).
        case noKeyOpens
    }

    static func associatedData(_ channel: Channel) -> [UInt8] {
        Array("pico-gossip".utf8) + [Self.magic, Self.version, channel.rawValue]
    }

    /// `plaintext` as it goes on the wire: sealed with the ring's first key, or as it is without
    /// security (or while `verifyOutgoing` is off).
    public static func seal(_ plaintext: [UInt8], channel: Channel, security: GossipSecurity?) -> [UInt8] {
        guard let security, security.verifyOutgoing else { return plaintext }
        return [Self.magic, Self.version] + security.cipher.seal(plaintext, key: security.keyring.primary, associatedData: Self.associatedData(channel))
    }

    /// The plaintext of a received message, or why it is refused.
    public static func open(_ bytes: [UInt8], channel: Channel, security: GossipSecurity?) -> Result<[UInt8], Refusal> {
        guard let security else { return .success(bytes) }
        guard bytes.count >= Self.overhead, bytes[0] == Self.magic, bytes[1] == Self.version else {
            return security.verifyIncoming ? .failure(.notSealed) : .success(bytes)
        }
        let sealed = bytes[2...]
        let associatedData = Self.associatedData(channel)
        for key in security.keyring.keys {
            if let plaintext = security.cipher.open(sealed, key: key, associatedData: associatedData) { return .success(plaintext) }
        }
        return .failure(.noKeyOpens)
    }
}
