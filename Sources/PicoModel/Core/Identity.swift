/// The per-boot identity of a node: random, never reused, and the key of everything the cluster
/// knows about that node. A restarted process (or one that learns it was declared dead) draws a new
/// UID, so facts about an old UID can never be mistaken for facts about the new one.
public struct NodeUID: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The 64 random bits.
    public var rawValue: UInt64

    /// Wraps 64 bits as a UID.
    public init(_ rawValue: UInt64) {
        self.rawValue = rawValue
    }

    public static func < (lhs: NodeUID, rhs: NodeUID) -> Bool {
        lhs.rawValue < rhs.rawValue
    }

    /// Sixteen lowercase hex digits.
    public var description: String {
        let hex = String(self.rawValue, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }
}

/// Everything other nodes need to know about one boot of a node. Immutable for the life of a UID.
public struct NodeInfo: Hashable, Sendable {
    /// The per-boot identity.
    public var uid: NodeUID
    /// The human-readable node ID (`node_id_prefix` + 7 random `[a-z0-9]`), used by admin routes.
    public var name: String
    /// Where this node receives gossip datagrams and state exchanges.
    public var gossipAddress: Address
    /// Where other nodes forward proxied requests (the advertised proxy address).
    public var proxyAddress: Address
    /// Where admin requests with `?forward=` are sent (the advertised admin address).
    public var adminAddress: Address
    /// Orders the processes that have held the same gossip address: when two UIDs claim one address,
    /// the one with the higher epoch (then the higher UID) is the live one and the other is dead.
    /// The runtime passes wall-clock milliseconds at boot; a rebirth adds one.
    public var epoch: UInt64

    /// Creates a node description.
    public init(
        uid: NodeUID,
        name: String,
        gossipAddress: Address,
        proxyAddress: Address,
        adminAddress: Address,
        epoch: UInt64
    ) {
        self.uid = uid
        self.name = name
        self.gossipAddress = gossipAddress
        self.proxyAddress = proxyAddress
        self.adminAddress = adminAddress
        self.epoch = epoch
    }

    /// True when `self` is a later holder of the same address than `other`.
    public func supersedesAtSameAddress(_ other: NodeInfo) -> Bool {
        (self.epoch, self.uid.rawValue) > (other.epoch, other.uid.rawValue)
    }
}

/// Draws node identities from a seeded generator (Piko's rule for names).
public enum NodeIdentity {
    /// The alphabet of the random name suffix.
    public static let suffixAlphabet: [Character] = Array("abcdefghijklmnopqrstuvwxyz0123456789")
    /// The length of the random name suffix.
    public static let suffixLength = 7

    /// `prefix` followed by seven random characters from `[a-z0-9]`.
    public static func makeName(prefix: String, using rng: inout SplitMix64) -> String {
        var name = prefix
        for _ in 0..<suffixLength {
            name.append(suffixAlphabet[rng.index(below: suffixAlphabet.count)])
        }
        return name
    }

    /// A random non-zero UID (zero is reserved to mean "no node" on the wire).
    public static func makeUID(using rng: inout SplitMix64) -> NodeUID {
        while true {
            let raw = rng.next()
            if raw != 0 { return NodeUID(raw) }
        }
    }
}
