/// One message inside a gossip datagram or a broadcast. Datagrams carry a list of these after a
/// header naming the sender's UID; `GossipCodec` encodes them.
public enum GossipMessage: Hashable, Sendable {
    /// "Are you there, `target`?" Answered by `ack` from `target` only.
    case ping(sequence: UInt32, target: NodeUID)
    /// "I, `target`, at `incarnation`, answer your `sequence`." Also forwarded by a ping-req helper
    /// to the origin. The incarnation lets a prober that missed a refutation clear its suspicion
    /// from the ack itself (the refutation broadcast may have died out before reaching it).
    case ack(sequence: UInt32, target: NodeUID, incarnation: UInt64)
    /// "Please ping `target` at `targetAddress` for me and forward its ack, or nack if none."
    case pingRequest(sequence: UInt32, target: NodeUID, targetAddress: Address)
    /// "I relayed your `sequence` to `target` and got no ack in time" (Lifeguard's missed-nack signal).
    case nack(sequence: UInt32, target: NodeUID)
    /// The node described by `info` is alive at `incarnation`; `draining` when it is shutting down.
    case alive(info: NodeInfo, incarnation: UInt64, draining: Bool)
    /// `accuser` suspects `subject` at `incarnation`.
    case suspect(subject: NodeUID, incarnation: UInt64, accuser: NodeUID)
    /// `accuser` declared `subject` dead. Terminal for that UID.
    case dead(subject: NodeUID, incarnation: UInt64, accuser: NodeUID)
    /// `subject` left gracefully (self-issued). Terminal for that UID.
    case left(subject: NodeUID, incarnation: UInt64)
    /// "I have recorded that `subject` left" (answer to a `left` sent by the subject itself).
    case leaveAck(subject: NodeUID)
    /// A contiguous run of changes to one owner's endpoint entries.
    case endpointDelta(EndpointDelta)

    /// The UID this message is about, for broadcast de-duplication (nil for probe traffic).
    public var subject: NodeUID? {
        switch self {
        case .ping, .ack, .pingRequest, .nack, .leaveAck: nil
        case .alive(let info, _, _): info.uid
        case .suspect(let subject, _, _), .dead(let subject, _, _), .left(let subject, _): subject
        case .endpointDelta(let delta): delta.owner
        }
    }
}

/// A contiguous run of one owner's endpoint-entry changes, as scuttlebutt sends them: it holds
/// every entry of the owner whose version lies in `(base, lastVersion]`, sorted by version, so a
/// receiver that already has every version up to `base` has every version up to `lastVersion`
/// after applying it. A `count` of zero means the endpoint is gone from that owner.
public struct EndpointDelta: Hashable, Sendable {
    /// One changed entry.
    public struct Entry: Hashable, Sendable {
        /// The endpoint ID.
        public var endpoint: String
        /// Local listener (tunnel) count at the owner; zero means removed.
        public var count: UInt32
        /// The owner's version counter when this value was written.
        public var version: UInt64
        /// The tenant of the owner's tunnels and the age of its hold (none without tenants).
        public var claim: EndpointClaim

        /// Creates an entry.
        public init(endpoint: String, count: UInt32, version: UInt64, claim: EndpointClaim = .untenanted) {
            self.endpoint = endpoint
            self.count = count
            self.version = version
            self.claim = claim
        }
    }

    /// The UID of the node that owns (wrote) these entries.
    public var owner: NodeUID
    /// Every version up to and including `base` is assumed known by the receiver.
    public var base: UInt64
    /// Entries sorted by strictly increasing version, all above `base`.
    public var entries: [Entry]

    /// Creates a delta.
    public init(owner: NodeUID, base: UInt64, entries: [Entry]) {
        self.owner = owner
        self.base = base
        self.entries = entries
    }

    /// The highest version carried (or `base` when empty).
    public var lastVersion: UInt64 { self.entries.last?.version ?? self.base }

    /// True when entries are strictly increasing, all above `base`, and endpoints are distinct.
    public var isWellFormed: Bool {
        var previous = self.base
        var seen = Set<String>()
        for entry in self.entries {
            guard entry.version > previous, seen.insert(entry.endpoint).inserted else { return false }
            previous = entry.version
        }
        return true
    }
}

extension GossipMessage {
    /// The message's kind as a metric label: `ping`, `ack`, `ping_req`, `nack`, `alive`,
    /// `suspect`, `dead`, `left`, `leave_ack` or `endpoint_delta`.
    public var kindName: String {
        switch self {
        case .ping: "ping"
        case .ack: "ack"
        case .pingRequest: "ping_req"
        case .nack: "nack"
        case .alive: "alive"
        case .suspect: "suspect"
        case .dead: "dead"
        case .left: "left"
        case .leaveAck: "leave_ack"
        case .endpointDelta: "endpoint_delta"
        }
    }
}
