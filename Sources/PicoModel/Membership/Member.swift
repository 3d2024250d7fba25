/// What one observer knows about another node's UID while it is listed as a member.
public struct Member: Hashable, Sendable {
    /// The member's boot description.
    public var info: NodeInfo
    /// Its position on the status lattice.
    public var state: MemberState
    /// Whether it announced it is draining (still alive, but not to be preferred for routing).
    public var draining: Bool
    /// When `state` last changed, in this observer's time.
    public var since: Instant

    /// Creates a member record.
    public init(info: NodeInfo, state: MemberState, draining: Bool, since: Instant) {
        self.info = info
        self.state = state
        self.draining = draining
        self.since = since
    }

    /// True for alive and suspect members.
    public var isLive: Bool { !self.state.status.isTerminal }
}

/// A dead or left UID, remembered so that no stale rumour can bring it back.
public struct Tombstone: Hashable, Sendable {
    /// `dead` or `left`.
    public var status: MemberStatus
    /// The incarnation at which it was declared.
    public var incarnation: UInt64
    /// Its gossip address, when known.
    public var address: Address?
    /// Its name, when known.
    public var name: String?
    /// When this observer forgets it.
    public var expiresAt: Instant

    /// Creates a tombstone.
    public init(status: MemberStatus, incarnation: UInt64, address: Address?, name: String?, expiresAt: Instant) {
        self.status = status
        self.incarnation = incarnation
        self.address = address
        self.name = name
        self.expiresAt = expiresAt
    }
}

/// An open suspicion of one member (Lifeguard's dynamic suspicion timeout).
struct Suspicion: Hashable, Sendable {
    var accuser: NodeUID
    var confirmers: [NodeUID]
    var startedAt: Instant
    var minimum: Duration
    var maximum: Duration
    /// Confirmations that bring the timeout down to `minimum`.
    var expectedConfirmations: Int
    var deadline: Instant
    /// What this node itself has seen of the suspect since the suspicion began.
    var evidence: Evidence

    /// What this node itself has seen of a suspect. A node declares a suspect dead only on its own
    /// failed probe: one that only heard the accusation probes the suspect first (the ack of a
    /// suspect that refuted carries its new incarnation), so a refutation that gossip happened not
    /// to bring to this node cannot make it declare a running member dead.
    enum Evidence: Hashable, Sendable {
        /// Only other members' accusations so far (or our own failed probe, grown older than a
        /// probe interval by the deadline: see `Membership.onSuspicionTimer`).
        case hearsay
        /// Our probe of it got an ack that did not refute the accusation (a node leaving acks
        /// without refuting): not probed first again, only at the deadline.
        case answered
        /// This node's own probe of the suspect failed at this instant (it accused, or confirmed).
        case probeFailed(at: Instant)
    }

    /// Lifeguard's timeout after `confirmations` independent confirmations:
    /// `max(min, max - (max - min) * log(c + 1) / log(k + 1))`.
    func timeout(confirmations: Int) -> Duration {
        guard self.expectedConfirmations > 0 else { return self.minimum }
        let fraction = log2Approx(Double(confirmations + 1)) / log2Approx(Double(self.expectedConfirmations + 1))
        let span = (self.maximum - self.minimum).secondsDouble
        let seconds = max(self.minimum.secondsDouble, self.maximum.secondsDouble - span * fraction)
        return .nanoseconds(Int64(seconds * 1_000_000_000))
    }
}

/// The probe this node is running.
struct ProbeInProgress: Hashable, Sendable {
    enum Phase: Hashable, Sendable { case direct, indirect }
    var target: NodeUID
    var sequence: UInt32
    var startedAt: Instant
    var deadline: Instant
    var phase: Phase
    var expectedNacks: Int
    var nacks: Int
}

/// A ping-req this node relays for another member.
struct Relay: Hashable, Sendable {
    var origin: Address
    var originSequence: UInt32
    var target: NodeUID
}

/// Progress of our own graceful leave.
struct LeaveProgress: Hashable, Sendable {
    var targets: [NodeUID: Address]
    var acknowledged: [NodeUID]
    var needed: Int
}

/// Progress of joining through the configured seeds.
struct JoinProgress: Hashable, Sendable {
    var attemptsInFlight: Int
    var succeeded: Bool
    var retryDelay: Duration
}

/// A deterministic natural logarithm ratio helper: Foundation-free `log2` for positive values.
func log2Approx(_ value: Double) -> Double {
    precondition(value > 0, "log2Approx needs a positive value")
    // Decompose value = m * 2^e with m in [1, 2), then a short series for log2(m).
    var exponent = 0.0
    var mantissa = value
    while mantissa >= 2 {
        mantissa /= 2
        exponent += 1
    }
    while mantissa < 1 {
        mantissa *= 2
        exponent -= 1
    }
    // ln(m) = 2 * atanh((m - 1) / (m + 1)), converges quickly for m in [1, 2).
    let y = (mantissa - 1) / (mantissa + 1)
    let y2 = y * y
    var term = y
    var sum = 0.0
    var k = 1.0
    for _ in 0..<20 {
        sum += term / k
        term *= y2
        k += 2
    }
    return exponent + (2 * sum) / 0.693_147_180_559_945_3
}
