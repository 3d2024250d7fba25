/// A full-state message of the push/pull anti-entropy exchange, carried over a stream (TCP) rather
/// than a datagram. The initiator sends one with `isReply == false`; the receiver merges it and
/// answers with its own (`isReply == true`), which the initiator merges in turn.
public struct StateExchange: Hashable, Sendable {
    /// Why the initiator started the exchange.
    public enum Purpose: UInt8, Hashable, Sendable, CustomStringConvertible {
        /// Joining through a seed address.
        case join = 1
        /// The periodic anti-entropy sync with a random live member.
        case pushPull = 2
        /// A periodic attempt to reach a dead member's address or a seed, to heal partitions.
        case reconnect = 3

        public var description: String {
            switch self {
            case .join: "join"
            case .pushPull: "push-pull"
            case .reconnect: "reconnect"
            }
        }
    }

    /// A live (alive or suspect) member as the sender sees it.
    public struct MemberRecord: Hashable, Sendable {
        /// The member's boot description.
        public var info: NodeInfo
        /// Its status (alive or suspect) and incarnation.
        public var state: MemberState
        /// Whether it announced it is draining.
        public var draining: Bool

        /// Creates a record.
        public init(info: NodeInfo, state: MemberState, draining: Bool) {
            self.info = info
            self.state = state
            self.draining = draining
        }
    }

    /// A dead or left UID the sender remembers.
    public struct TombstoneRecord: Hashable, Sendable {
        /// The UID that must never be alive again.
        public var uid: NodeUID
        /// `dead` or `left`.
        public var status: MemberStatus
        /// The incarnation at which it was declared.
        public var incarnation: UInt64
        /// Its gossip address when known (reconnect attempts target it).
        public var address: Address?

        /// Creates a record.
        public init(uid: NodeUID, status: MemberStatus, incarnation: UInt64, address: Address?) {
            self.uid = uid
            self.status = status
            self.incarnation = incarnation
            self.address = address
        }
    }

    /// One owner's complete live endpoint entries as of `version`.
    public struct EndpointSnapshot: Hashable, Sendable {
        /// The owner's UID.
        public var owner: NodeUID
        /// Every change up to this version is reflected in `entries`.
        public var version: UInt64
        /// The owner's endpoints with a non-zero count, each with the version it was written at.
        public var entries: [EndpointDelta.Entry]

        /// Creates a snapshot.
        public init(owner: NodeUID, version: UInt64, entries: [EndpointDelta.Entry]) {
            self.owner = owner
            self.version = version
            self.entries = entries
        }
    }

    /// Why the exchange was started.
    public var purpose: Purpose
    /// False for the initiator's message, true for the answer.
    public var isReply: Bool
    /// The sender's UID (it also appears in `members`).
    public var sender: NodeUID
    /// Live members including the sender, sorted by UID.
    public var members: [MemberRecord]
    /// Tombstones, sorted by UID.
    public var tombstones: [TombstoneRecord]
    /// Endpoint snapshots of live owners, sorted by owner.
    public var endpoints: [EndpointSnapshot]
    /// The sender's tenant reservations (see `TenantReservations`), sorted by endpoint, at most
    /// `maxReservations`: a node that (re)joins keeps endpoints for their tenants as the cluster does.
    public var reservations: [ReservationRecord]

    /// One reservation as it travels.
    public struct ReservationRecord: Hashable, Sendable {
        /// The endpoint kept.
        public var endpoint: String
        /// The tenant's claim (never without a tenant).
        public var claim: EndpointClaim
        /// How long it still lasts at the sender, in milliseconds (at most a day).
        public var remainingMilliseconds: UInt64

        public init(endpoint: String, claim: EndpointClaim, remainingMilliseconds: UInt64) {
            self.endpoint = endpoint
            self.claim = claim
            self.remainingMilliseconds = remainingMilliseconds
        }
    }

    /// Reservations one exchange carries at most (worst case about 3 MiB).
    public static let maxReservations = 8_192
    /// The longest remaining time a record may carry (the longest reservation setting).
    public static let maxReservationMilliseconds: UInt64 = 86_400_000

    /// Creates an exchange message.
    public init(
        purpose: Purpose,
        isReply: Bool,
        sender: NodeUID,
        members: [MemberRecord],
        tombstones: [TombstoneRecord],
        endpoints: [EndpointSnapshot],
        reservations: [ReservationRecord] = []
    ) {
        self.purpose = purpose
        self.isReply = isReply
        self.sender = sender
        self.members = members
        self.tombstones = tombstones
        self.endpoints = endpoints
        self.reservations = reservations
    }
}
