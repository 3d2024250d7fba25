/// A node's life as Kubernetes and the cluster see it:
///
///     starting -> joining -> ready -> draining -> left
///
/// Legal transitions: `starting -> joining` on start; `joining -> ready` once joined (with peers or
/// alone); `joining | ready -> draining` on a shutdown request; `draining -> left` when the leave
/// completes; `joining -> left` when joining fails and the node must abort. `ready` is the only
/// phase in which the readiness probe succeeds.
public struct Lifecycle: Hashable, Sendable {
    /// The phases, in order.
    public enum Phase: Int, Hashable, Comparable, Sendable, CustomStringConvertible {
        /// Created, not started.
        case starting
        /// Looking for the cluster; not ready.
        case joining
        /// Serving; the readiness probe succeeds.
        case ready
        /// Shutting down: not ready, still routing, handing tunnels over, then leaving.
        case draining
        /// Done; the process may exit.
        case left

        public static func < (lhs: Phase, rhs: Phase) -> Bool { lhs.rawValue < rhs.rawValue }

        public var description: String {
            switch self {
            case .starting: "starting"
            case .joining: "joining"
            case .ready: "ready"
            case .draining: "draining"
            case .left: "left"
            }
        }
    }

    /// Why the node asks to exit.
    public enum ExitReason: Hashable, Sendable {
        /// A graceful shutdown completed.
        case left
        /// Joining failed within the join timeout and `abortIfJoinFails` is set.
        case joinFailed
    }

    /// What happened to the lifecycle.
    public enum Event: Hashable, Sendable {
        /// The node was started.
        case started
        /// Membership finished joining.
        case joined
        /// Membership could not join and the node must abort.
        case joinFailed
        /// A graceful shutdown was requested (SIGTERM).
        case shutdownRequested
        /// The graceful leave completed.
        case leaveCompleted
    }

    /// What the owner must do after a lifecycle event.
    public enum Directive: Hashable, Sendable {
        /// Report this readiness to the probe.
        case setReadiness(Bool)
        /// Start the drain: tell agents to move, hand tunnels over, end by `deadline`.
        case beginDrain(deadline: Instant)
        /// Ask the shell to exit.
        case exit(ExitReason)
        /// The phase changed.
        case phaseChanged(from: Phase, to: Phase)
    }

    /// The current phase.
    public private(set) var phase: Phase = .starting
    /// The whole shutdown budget (Piko's `grace_period`, default 1 minute).
    public let gracePeriod: Duration
    /// The part of the budget kept for announcing `left` after the drain.
    public let leaveBudget: Duration
    /// When the shutdown was requested, if it was.
    public private(set) var shutdownRequestedAt: Instant?

    /// Creates a lifecycle. `leaveBudget` must be below `gracePeriod`.
    public init(gracePeriod: Duration, leaveBudget: Duration) {
        precondition(gracePeriod > leaveBudget, "the grace period must leave room for the drain")
        self.gracePeriod = gracePeriod
        self.leaveBudget = leaveBudget
    }

    /// True when the readiness probe should succeed.
    public var isReady: Bool { self.phase == .ready }

    /// Applies `event`; events that make no sense in the current phase change nothing.
    public mutating func on(_ event: Event, now: Instant) -> [Directive] {
        var directives: [Directive] = []
        switch (event, self.phase) {
        case (.started, .starting):
            self.move(to: .joining, into: &directives)
        case (.joined, .joining):
            self.move(to: .ready, into: &directives)
            directives.append(.setReadiness(true))
        case (.joinFailed, .joining):
            self.move(to: .left, into: &directives)
            directives.append(.exit(.joinFailed))
        case (.shutdownRequested, .starting), (.shutdownRequested, .joining), (.shutdownRequested, .ready):
            let wasReady = self.phase == .ready
            self.shutdownRequestedAt = now
            self.move(to: .draining, into: &directives)
            if wasReady { directives.append(.setReadiness(false)) }
            directives.append(.beginDrain(deadline: now + (self.gracePeriod - self.leaveBudget)))
        case (.leaveCompleted, .draining):
            self.move(to: .left, into: &directives)
            directives.append(.exit(.left))
        default:
            break
        }
        return directives
    }

    private mutating func move(to next: Phase, into directives: inout [Directive]) {
        precondition(next > self.phase, "lifecycle moved backwards from \(self.phase) to \(next)")
        directives.append(.phaseChanged(from: self.phase, to: next))
        self.phase = next
    }
}
