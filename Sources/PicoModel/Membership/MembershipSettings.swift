/// Tunables of the membership protocol. Defaults start from hashicorp/memberlist's LAN profile
/// (`DefaultLANConfig`); every deviation is named in its doc comment and in `docs/membership.md`.
public struct MembershipSettings: Hashable, Sendable {
    /// Time between probes of one member (SWIM's protocol period). memberlist LAN: 1 s.
    public var probeInterval: Duration = .seconds(1)
    /// How long to wait for a direct ack before asking helpers. memberlist LAN: 500 ms.
    public var probeTimeout: Duration = .milliseconds(500)
    /// How long a ping-req helper waits for the target's ack before sending a nack. Must end before
    /// the origin's probe does (`probeInterval - probeTimeout`), or nacks arrive too late and
    /// Lifeguard's health signal never works (swift-cluster-membership PR #14). memberlist reuses
    /// `probeTimeout` (500 ms) here, which is exactly that bug at LAN defaults; we use 400 ms (80 %).
    public var indirectProbeTimeout: Duration = .milliseconds(400)
    /// Helpers asked to probe a member that missed its direct ack (SWIM's k). memberlist: 3.
    public var indirectChecks: Int = 3
    /// Lifeguard suspicion multiplier: the minimum suspicion timeout (once
    /// `suspicionConfirmations` other members confirmed) is `suspicionMultiplier × probeInterval`.
    /// memberlist LAN: 4, times `max(1, log10 N)`; ours has no size factor (see
    /// `Membership.makeSuspicion`) and is 2, which `bench/membership` justifies (docs/membership.md).
    public var suspicionMultiplier: Int = 2
    /// The maximum suspicion timeout, as a multiple of the minimum. memberlist: 6.
    public var suspicionMaxTimeoutMultiplier: Int = 6
    /// Independent confirmations (failed probes by members other than the accuser, this node's
    /// own included) that bring a suspicion's timeout
    /// down to the minimum (Lifeguard's K; capped at N - 2 and at the confirmations still
    /// possible). memberlist derives it as `suspicionMultiplier - 2` = 2.
    public var suspicionConfirmations: Int = 3
    /// Upper bound (exclusive) of Lifeguard's local health multiplier; timeouts scale by
    /// `score + 1`. memberlist: 8.
    public var awarenessMaxMultiplier: Int = 8
    /// Time between gossip fan-out rounds. memberlist LAN: 200 ms.
    public var gossipInterval: Duration = .milliseconds(200)
    /// Members sent to per gossip round. memberlist LAN: 3.
    public var gossipNodes: Int = 3
    /// How long dead members still receive gossip (so they learn they were declared dead) and stay
    /// listed in views before only their tombstone remains. memberlist LAN: 30 s. Ours: during it
    /// each gossip round also sends them their own death notice (`Membership.tellTheDead`), so a
    /// healed cut is crossed within a round.
    public var gossipToTheDeadTime: Duration = .seconds(30)
    /// Least time between two new identities taken because peers were fed forged claims about
    /// us (see `Membership.dropForgedClaim`): bounds the churn a forger can cause.
    public var forgeryRebirthInterval: Duration = .seconds(10)
    /// Broadcast retransmit limit is `retransmitMultiplier × ceil(log10(N + 1))`. memberlist: 4.
    public var retransmitMultiplier: Int = 4
    /// Time between full-state push/pull exchanges with a random live member (scaled up above 32
    /// members as memberlist does). memberlist LAN: 30 s.
    public var pushPullInterval: Duration = .seconds(30)
    /// Time between reconnect attempts to a dead member's address or an unjoined seed. serf uses
    /// 30 s; we use 10 s so that a healed partition merges within one push/pull period even when
    /// the first attempt picks a stale address.
    public var reconnectInterval: Duration = .seconds(10)
    /// How long tombstones of dead and left UIDs are kept (and gossiped in push/pull). They must
    /// outlive any stale rumour of the UID by far; swift-cluster-membership keeps 4 h of ticks.
    public var tombstoneTimeToLive: Duration = .seconds(4 * 60 * 60)
    /// Bound on remembered tombstones; the ones expiring soonest are dropped first beyond it.
    public var maxTombstones: Int = 10_000
    /// Bound on live (alive and suspect) members one node tracks, and separately on recently
    /// dead or left ones still listed (the oldest are dropped first beyond it).
    public var maxMembers: Int = 4_096
    /// Bound on in-progress ping-req relays this node performs for others.
    public var maxRelays: Int = 64
    /// Largest datagram built, in bytes (Piko's `cluster.gossip.max_packet_size`).
    public var maxPacketSize: Int = 1_400
    /// Seeds contacted per join or re-resolution round (memberlist joins every resolved address,
    /// which is memberlist #9723's fan-out problem on large headless services).
    public var joinFanout: Int = 3
    /// First retry delay after a join round reached nobody; doubles up to `joinRetryMax`
    /// (Piko: 1 s doubling).
    public var joinRetryMin: Duration = .seconds(1)
    /// Largest join retry delay.
    public var joinRetryMax: Duration = .seconds(16)
    /// How long to keep trying to join before giving up (Piko's `cluster.join_timeout`: 1 min).
    public var joinTimeout: Duration = .seconds(60)
    /// Whether a node that could not join within `joinTimeout` exits (Piko's
    /// `cluster.abort_if_join_fails`: true) or runs alone and keeps re-resolving.
    public var abortIfJoinFails: Bool = true
    /// Time between re-resolutions of the `cluster.join` names (Piko never re-resolves; #314's
    /// neighbour fault). 30 s, as push/pull.
    public var seedResolveInterval: Duration = .seconds(30)
    /// How long a leaving node retransmits its `left` waiting for acknowledgements.
    public var leaveTimeout: Duration = .seconds(5)
    /// Acknowledgements of `left` that complete a leave early (fewer when fewer peers exist).
    public var leaveAcknowledgements: Int = 2
    /// Members told directly (one datagram each, besides the broadcast) that this node started
    /// draining or is leaving, so routers stop choosing it at once. Beyond this many, gossip
    /// alone carries it (the leave's acknowledging targets are always told).
    public var directAnnouncementLimit: Int = 256
    /// A gap between consecutive inputs longer than this means this process was paused (GC, CPU
    /// starvation, SIGSTOP): pending suspicion deadlines are pushed back by the gap and the probe
    /// in progress is abandoned instead of failed, so a frozen node does not accuse healthy peers
    /// (Cassandra's `max_local_pause`; Lifeguard's aim). The gossip timer guarantees an input at
    /// least every `gossipInterval` while running.
    public var localPauseThreshold: Duration = .seconds(3)

    /// The defaults above.
    public init() {}

    /// Every impossible combination, each naming the setting at fault; empty when valid.
    public func validationErrors() -> [String] {
        var errors: [String] = []
        func positive(_ value: Duration, _ name: String) {
            if value <= .zero { errors.append("\(name) must be positive, got \(value)") }
        }
        positive(self.probeInterval, "probeInterval")
        positive(self.probeTimeout, "probeTimeout")
        positive(self.indirectProbeTimeout, "indirectProbeTimeout")
        positive(self.gossipInterval, "gossipInterval")
        positive(self.pushPullInterval, "pushPullInterval")
        positive(self.reconnectInterval, "reconnectInterval")
        positive(self.tombstoneTimeToLive, "tombstoneTimeToLive")
        positive(self.joinRetryMin, "joinRetryMin")
        positive(self.joinTimeout, "joinTimeout")
        positive(self.seedResolveInterval, "seedResolveInterval")
        positive(self.leaveTimeout, "leaveTimeout")
        if self.probeTimeout >= self.probeInterval {
            errors.append("probeTimeout (\(self.probeTimeout)) must be below probeInterval (\(self.probeInterval))")
        }
        if self.indirectProbeTimeout >= self.probeInterval - self.probeTimeout {
            errors.append(
                "indirectProbeTimeout (\(self.indirectProbeTimeout)) must be below probeInterval - probeTimeout "
                    + "(\(self.probeInterval - self.probeTimeout)), or nacks arrive after the probe has ended")
        }
        if self.joinRetryMax < self.joinRetryMin {
            errors.append("joinRetryMax (\(self.joinRetryMax)) must not be below joinRetryMin (\(self.joinRetryMin))")
        }
        if self.tombstoneTimeToLive < self.gossipToTheDeadTime {
            errors.append("tombstoneTimeToLive must not be below gossipToTheDeadTime, or dead UIDs could come back")
        }
        if self.localPauseThreshold <= self.gossipInterval {
            errors.append("localPauseThreshold must be above gossipInterval, or every gossip round looks like a pause")
        }
        if !(0...16).contains(self.indirectChecks) { errors.append("indirectChecks must be in 0...16") }
        if self.suspicionMultiplier < 1 { errors.append("suspicionMultiplier must be at least 1") }
        if !(0...16).contains(self.suspicionConfirmations) { errors.append("suspicionConfirmations must be in 0...16") }
        if self.suspicionMaxTimeoutMultiplier < 1 { errors.append("suspicionMaxTimeoutMultiplier must be at least 1") }
        if !(1...64).contains(self.awarenessMaxMultiplier) { errors.append("awarenessMaxMultiplier must be in 1...64") }
        if !(1...64).contains(self.gossipNodes) { errors.append("gossipNodes must be in 1...64") }
        if self.retransmitMultiplier < 1 { errors.append("retransmitMultiplier must be at least 1") }
        if !(576...65_507).contains(self.maxPacketSize) {
            errors.append("maxPacketSize must be in 576...65507 bytes (a UDP payload that still fits one endpoint delta)")
        }
        if self.maxTombstones < 16 { errors.append("maxTombstones must be at least 16") }
        if self.maxMembers < 2 { errors.append("maxMembers must be at least 2") }
        if self.maxRelays < 1 { errors.append("maxRelays must be at least 1") }
        if self.joinFanout < 1 { errors.append("joinFanout must be at least 1") }
        if self.leaveAcknowledgements < 1 { errors.append("leaveAcknowledgements must be at least 1") }
        if self.directAnnouncementLimit < 0 { errors.append("directAnnouncementLimit must not be negative") }
        return errors
    }
}
