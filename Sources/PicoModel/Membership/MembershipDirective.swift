/// What the membership machine asks its owner (`ClusterNode`) to do, in order.
public enum MembershipDirective: Hashable, Sendable {
    /// Send a datagram holding `messages` to `address`; when `piggyback` is true the owner fills
    /// the rest of the datagram with pending broadcasts.
    case send([GossipMessage], to: Address, piggyback: Bool)
    /// Queue `message` for infection-style dissemination (retransmitted a limited number of times).
    case broadcast(GossipMessage)
    /// Arm a timer (replacing a pending one with the same ID).
    case schedule(TimerID, at: Instant)
    /// Start a push/pull full-state exchange with `address` over a stream.
    case exchangeState(with: Address, purpose: StateExchange.Purpose)
    /// Resolve the configured `cluster.join` names and report with `onSeedsResolved`.
    case resolveSeeds
    /// Something observable happened.
    case event(MembershipEvent)
}

/// Observable facts from the membership machine (for logs, metrics, the endpoint table and the
/// simulator's checkers).
public enum MembershipEvent: Hashable, Sendable {
    /// A UID was seen for the first time, alive.
    case memberJoined(NodeInfo)
    /// A member moved up the status lattice.
    case memberStatusChanged(uid: NodeUID, name: String, from: MemberState, to: MemberState)
    /// A live member announced it is draining.
    case memberDraining(uid: NodeUID, name: String)
    /// A dead or left member was dropped from the member list (its tombstone remains).
    case memberRemoved(uid: NodeUID, name: String)
    /// We refuted a suspicion by raising our incarnation.
    case refuted(incarnation: UInt64)
    /// A message about us claimed an incarnation (or endpoint version) above our own, which
    /// nobody but a forger can know; it was dropped, not adopted (see
    /// `Membership.dropForgedClaim`).
    case forgedClaimDropped(ForgedClaim, claimedIncarnation: UInt64, ownIncarnation: UInt64)
    /// We learned we had been declared dead and took a new UID to rejoin.
    case reborn(old: NodeUID, new: NodeUID)
    /// The join phase ended: with peers, or alone (no other seed, or joining failed and
    /// `abortIfJoinFails` is off).
    case joined(alone: Bool)
    /// Joining failed within `joinTimeout` and `abortIfJoinFails` is set: the node must exit.
    case joinFailed
    /// A probe round ended without our noticing for `gap` (the process was paused): suspicion
    /// deadlines were pushed back by the gap.
    case localPauseDetected(gap: Duration)
    /// Our probe of `uid` was acknowledged: `directly` by the member itself, otherwise only
    /// through another member's indirect probe (evidence for `Reachability`).
    case probeAnswered(uid: NodeUID, directly: Bool)
    /// Our `left` was acknowledged by `acknowledgements` members, or the leave timed out.
    case leaveCompleted(acknowledgements: Int)
}

extension MembershipEvent {
    /// The kind of a forged message about ourselves.
    public enum ForgedClaim: String, Hashable, Sendable, CaseIterable {
        /// An `alive` about us (from gossip or a state exchange).
        case alive
        /// A `suspect` about us.
        case suspect
        /// An endpoint delta or snapshot of ours at a version we never wrote.
        case endpointVersion
    }
}
