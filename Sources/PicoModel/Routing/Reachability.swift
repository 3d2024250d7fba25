/// A node's local evidence about which live members it cannot reach, although gossip (which
/// travels through other members) keeps them alive. In a partial partition a member may be cut
/// off from us but not from the others: SWIM never declares it dead, yet every forward to it
/// fails. Routing prefers other holders of an endpoint while evidence stands against a member
/// (`Router`), and still tries it when no other holder is left.
///
/// Evidence against a member, and what clears it:
/// - a forward to it failed before any answer byte (a dial that failed or timed out, or a
///   request its connection never acknowledged): cleared by a forward it answers, or a direct
///   probe it acknowledges;
/// - our direct probe went unanswered while an indirect probe through another member succeeded
///   (it is alive, but not for us): cleared the same way.
/// Evidence about a member also goes when the member dies, leaves or is forgotten. Looked up,
/// never iterated in an order that leaks: callers sort.
public struct Reachability: Hashable, Sendable {
    /// Why a member is believed unreachable.
    public enum Evidence: String, Hashable, Sendable {
        /// A forward to it failed before it answered.
        case forwardFailed = "forward_failed"
        /// It answered an indirect probe but not our direct one.
        case indirectProbeOnly = "indirect_probe_only"
    }

    /// Members with evidence against them, and the latest evidence.
    public private(set) var evidence: [NodeUID: Evidence] = [:]
    /// The members with evidence against them.
    public private(set) var unreachable: Set<NodeUID> = []

    /// An empty table.
    public init() {}

    /// Records evidence that `uid` cannot be reached.
    public mutating func noteUnreachable(_ uid: NodeUID, _ evidence: Evidence) {
        self.evidence[uid] = evidence
        self.unreachable.insert(uid)
    }

    /// Fresh evidence that `uid` can be reached (it answered us directly).
    public mutating func noteReachable(_ uid: NodeUID) {
        guard self.evidence.removeValue(forKey: uid) != nil else { return }
        self.unreachable.remove(uid)
    }

    /// `uid` is no longer a live member: its evidence goes with it.
    public mutating func forget(_ uid: NodeUID) { self.noteReachable(uid) }
}
