/// Names every timer a Pico machine asks its shell to arm.
///
/// Contract for shells: `.schedule(id, at:)` arms the timer `id` to fire at that instant,
/// *replacing* any pending timer with the same `id`; when it fires the shell feeds
/// `.timerFired(id)` back. Machines tolerate late, early-replaced and duplicate firings (they
/// check their own deadlines), so a shell that cannot cancel may simply deliver both.
public enum TimerID: Hashable, Sendable, CustomStringConvertible {
    /// Start the next probe round.
    case probe
    /// The direct ack of probe `sequence` is overdue: ask helpers.
    case probeTimeout(sequence: UInt32)
    /// Probe `sequence` is over: suspect the target unless someone acked.
    case probeDeadline(sequence: UInt32)
    /// A ping-req relay for someone else (our ping `sequence`) got no ack: send a nack.
    case relayTimeout(sequence: UInt32)
    /// The next gossip fan-out round.
    case gossip
    /// The next push/pull full-state exchange.
    case pushPull
    /// The next reconnect attempt to a dead member's address or an unjoined seed.
    case reconnect
    /// The suspicion of `uid` may have timed out.
    case suspicion(NodeUID)
    /// Resolve the `cluster.join` names again.
    case seedResolution
    /// Give up joining (abort, or run alone when allowed).
    case joinDeadline
    /// Stop waiting for acknowledgements of our `left`.
    case leaveDeadline
    /// The minimum drain time after turning unready has passed.
    case drainHoldEnded
    /// Check whether a draining tunnel's replacement has settled.
    case handoverCheck
    /// The drain phase of a graceful shutdown must end now (grace period minus the leave budget).
    case drainDeadline
    /// The oldest pending state exchange may be overdue: fail the ones past their deadline.
    case stateExchangeDeadline
    /// Evaluate the rebalancing rule (every `Rebalancer.interval` while it is on).
    case rebalance

    public var description: String {
        switch self {
        case .probe: "probe"
        case .probeTimeout(let sequence): "probe-timeout-\(sequence)"
        case .probeDeadline(let sequence): "probe-deadline-\(sequence)"
        case .relayTimeout(let sequence): "relay-timeout-\(sequence)"
        case .gossip: "gossip"
        case .pushPull: "push-pull"
        case .reconnect: "reconnect"
        case .suspicion(let uid): "suspicion-\(uid)"
        case .seedResolution: "seed-resolution"
        case .joinDeadline: "join-deadline"
        case .leaveDeadline: "leave-deadline"
        case .drainHoldEnded: "drain-hold-ended"
        case .handoverCheck: "handover-check"
        case .drainDeadline: "drain-deadline"
        case .stateExchangeDeadline: "state-exchange-deadline"
        case .rebalance: "rebalance"
        }
    }
}
