/// The liveness status of one node UID, as one observer believes it.
public enum MemberStatus: UInt8, Hashable, Comparable, Sendable, CustomStringConvertible {
    /// Answering probes, or not yet proven otherwise.
    case alive = 0
    /// Failed a probe; dead unless it refutes before its suspicion timeout.
    case suspect = 1
    /// Declared failed. Terminal: a dead UID is never alive again.
    case dead = 2
    /// Left gracefully. Terminal, and it supersedes `dead`: a leave is never shown as a failure.
    case left = 3

    public static func < (lhs: MemberStatus, rhs: MemberStatus) -> Bool {
        lhs.rawValue < rhs.rawValue
    }

    /// True for `dead` and `left`.
    public var isTerminal: Bool { self == .dead || self == .left }

    public var description: String {
        switch self {
        case .alive: "alive"
        case .suspect: "suspect"
        case .dead: "dead"
        case .left: "left"
        }
    }
}

/// A status with the incarnation it was asserted at, ordered as SWIM's lattice:
///
///     alive(0) < suspect(0) < alive(1) < suspect(1) < ... < dead < left
///
/// Legal transitions only move up this order, per UID, in every observer. Only the node itself
/// raises its incarnation (to refute a suspicion or to publish new attributes such as draining).
/// `dead` and `left` are terminal whatever their incarnation.
public struct MemberState: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The status.
    public var status: MemberStatus
    /// The incarnation the status was asserted at.
    public var incarnation: UInt64

    /// Creates a state.
    public init(_ status: MemberStatus, _ incarnation: UInt64) {
        self.status = status
        self.incarnation = incarnation
    }

    public static func < (lhs: MemberState, rhs: MemberState) -> Bool {
        switch (lhs.status.isTerminal, rhs.status.isTerminal) {
        case (true, true): return lhs.status < rhs.status
        case (true, false): return false
        case (false, true): return true
        case (false, false): return (lhs.incarnation, lhs.status) < (rhs.incarnation, rhs.status)
        }
    }

    /// True when moving from `self` to `next` is a step up the lattice (or stays equal).
    public func allowsTransition(to next: MemberState) -> Bool {
        !(next < self)
    }

    public var description: String { "\(self.status)(\(self.incarnation))" }
}
