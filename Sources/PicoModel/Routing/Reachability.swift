/// A node's local evidence about which live members it cannot reach, although gossip (which
/// travels through other members) keeps them alive. In a partial partition a member may be cut
/// off from us but not from the others: SWIM never declares it dead, yet every forward to it
/// fails. Routing prefers other holders of an endpoint while evidence stands against a member
/// (`Router`), and still tries it when no other holder is left.
///
/// Evidence against a member, and what clears it:
/// - a forward to it failed before any answer byte (a dial that failed or timed out, or bytes
///   its connection never acknowledged): cleared by a forward it answers, or after
///   `forwardFailureLifetime` (then requests try it again, and a failure renews the evidence);
///   a probe over UDP proves nothing about its proxy port;
/// - our direct probe went unanswered while an indirect probe through another member succeeded
///   (it is alive, but not for us): cleared by a direct ack, or by a forward it answers (routing
///   needs only the proxy port).
/// A direct ack from a member with failed-forward evidence is news of its own (once per failure):
/// the way to it works again, so a request that waits on a forward to it that went silent may
/// send itself again on a fresh connection rather than wait for TCP's retransmission backoff
/// (`directContacts`). It does not clear the evidence: UDP proves nothing about the proxy port.
/// Evidence about a member also goes when the member dies, leaves or is forgotten. Bounded by
/// the live members (evidence is noted only about them). Looked up, never iterated in an order
/// that leaks: callers sort.
public struct Reachability: Hashable, Sendable {
    /// Why a member is believed unreachable.
    public struct Evidence: Hashable, Sendable {
        /// When a forward to it last failed before it answered (nil: none standing).
        public var forwardFailedAt: Instant?
        /// It answered an indirect probe but not our direct one, and has not answered us directly since.
        public var indirectProbeOnly = false
        /// It answered our direct probe since its forward last failed.
        public var answeredDirectlySinceFailure = false

        var isEmpty: Bool { self.forwardFailedAt == nil && !self.indirectProbeOnly }
    }

    /// How long a failed forward counts against a member without fresh evidence either way.
    public static let forwardFailureLifetime: Duration = .seconds(30)

    /// Members with evidence against them.
    public private(set) var evidence: [NodeUID: Evidence] = [:]
    /// The members with evidence against them.
    public private(set) var unreachable: Set<NodeUID> = []
    /// Live members seen heartbeating forwards (`ForwardHeartbeat`): silence from them means a
    /// lost hop. Bounded by the live members; looked up or sorted, never iterated in an order
    /// that leaks.
    public private(set) var heartbeating: Set<NodeUID> = []
    /// Members with failed-forward evidence that answered a direct probe since, in the order
    /// they did, not yet told to the data loops (at most one entry per live member).
    public private(set) var directContacts: [NodeUID] = []

    /// An empty table.
    public init() {}

    /// A forward to `uid` failed before any answer byte, at `now`.
    public mutating func noteForwardFailed(_ uid: NodeUID, now: Instant) {
        self.evidence[uid, default: Evidence()].forwardFailedAt = now
        self.evidence[uid]?.answeredDirectlySinceFailure = false
        self.unreachable.insert(uid)
    }

    /// `uid` marked a forward's answer, or heartbeated one: it heartbeats while its upstream works.
    public mutating func noteHeartbeats(_ uid: NodeUID) { self.heartbeating.insert(uid) }

    /// `uid` is no longer a live member: everything known about it goes.
    public mutating func forgetMember(_ uid: NodeUID) {
        self.forget(uid)
        self.heartbeating.remove(uid)
        self.directContacts.removeAll { $0 == uid }
    }

    /// `uid` answered a forward: it is reachable where routing needs it.
    public mutating func noteForwardAnswered(_ uid: NodeUID) { self.forget(uid) }

    /// Our probe of `uid` was answered: `directly` by `uid` itself, or only through a helper.
    public mutating func noteProbeAnswered(_ uid: NodeUID, directly: Bool) {
        if directly {
            guard var entry = self.evidence[uid] else { return }
            if entry.forwardFailedAt != nil, !entry.answeredDirectlySinceFailure {
                entry.answeredDirectlySinceFailure = true
                if !self.directContacts.contains(uid) { self.directContacts.append(uid) }
            }
            entry.indirectProbeOnly = false
            self.store(entry, for: uid)
        } else {
            self.evidence[uid, default: Evidence()].indirectProbeOnly = true
            self.unreachable.insert(uid)
        }
    }

    /// Hands over `directContacts` (for the data loops) and empties it.
    public mutating func takeDirectContacts() -> [NodeUID] {
        guard !self.directContacts.isEmpty else { return [] }
        defer { self.directContacts = [] }
        return self.directContacts
    }

    /// Drops failed-forward evidence older than `forwardFailureLifetime` (cheap when empty).
    public mutating func expire(now: Instant) {
        guard !self.evidence.isEmpty else { return }
        for uid in self.unreachable.sorted() {
            guard var entry = self.evidence[uid], let at = entry.forwardFailedAt, now - at >= Self.forwardFailureLifetime else { continue }
            entry.forwardFailedAt = nil
            self.store(entry, for: uid)
        }
    }

    /// `uid` is no longer a live member (or answered a forward): its evidence goes.
    public mutating func forget(_ uid: NodeUID) {
        guard self.evidence.removeValue(forKey: uid) != nil else { return }
        self.unreachable.remove(uid)
    }

    private mutating func store(_ entry: Evidence, for uid: NodeUID) {
        if entry.isEmpty {
            self.forget(uid)
        } else {
            self.evidence[uid] = entry
        }
    }
}
