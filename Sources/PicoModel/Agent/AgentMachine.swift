/// The upstream agent's tunnel rules (`pico agent http`): keep one tunnel for the endpoint open
/// through the load balancer, reconnect with Piko's backoff when dialling fails or the tunnel
/// breaks, and when a node says GoAway open the replacement *before* the old tunnel goes: the old
/// one keeps serving until its node closes it, because only the node knows when the rest of the
/// cluster has learned of the replacement (make-before-break).
///
/// Pure: the shell dials, reports what happened, and runs the directives. Randomness (the backoff
/// jitter) is passed in, so a run is reproducible from its seed.
public struct AgentMachine: Hashable, Sendable {
    /// Piko's reconnect backoff.
    public struct Settings: Hashable, Sendable {
        /// The first retry delay, and the delay again after a request succeeds.
        public var minimumBackoff: Duration = .milliseconds(100)
        /// The delay doubles up to this.
        public var maximumBackoff: Duration = .seconds(15)
        /// Up to `1 / jitterDivisor` of the delay is added at random.
        public var jitterDivisor: Int64 = 10
        /// A tunnel that served this long before it was told to move or broke starts a new episode
        /// of reconnecting at `minimumBackoff`, whatever earlier episodes (or an agent that came
        /// up before any node did) left the delay at.
        public var stableAfter: Duration = .seconds(5)
        /// While the agent holds a tunnel it was asked to move (`isReplacing`), dials for the
        /// replacement wait at most this long: the old tunnel still serves, and a node holding
        /// more than its share refuses replacements, so a moving agent may need a few tries to
        /// find a lighter node; Piko's 15 s would leave it moving for a minute.
        public var replacingBackoffCap: Duration = .seconds(1)
        /// A move whose replacement has not found a node that takes it this long after the GoAway
        /// ends: the next dial is a fresh one, which every node takes. Its old tunnel takes no new
        /// requests while it moves, so an agent refused again and again (views of the counts that
        /// disagree) would otherwise add nothing to its endpoint for as long.
        public var replacingLimit: Duration = .seconds(10)
        /// Whether a tunnel its node closes soon after it opened (within `stableAfter`: a
        /// refusal) is redialled after the backoff. Pico's agent does, so a refusal that would
        /// repeat (another tenant's endpoint, a quota) does not loop; Piko's agents dial again at
        /// once after any closed session (only a failed dial backs off), which the simulator's
        /// Piko agents copy.
        public var backsOffAfterRefusal = true

        /// Piko's values: 100 ms doubling to 15 s, up to 10 % jitter.
        public init() {}
    }

    /// What the shell reports.
    public enum Input: Hashable, Sendable {
        /// Begin, or the delay of a `.retry(at:)` has passed: dial.
        case dialDue
        /// A dial failed (no pod behind the load balancer, refused, or the node was stopping).
        case dialFailed
        /// A dial succeeded: this tunnel is registered with a node.
        case tunnelOpened(TunnelID)
        /// The node sent GoAway on this tunnel.
        case toldToMove(TunnelID)
        /// The node closed this tunnel (its hand-over is done).
        case tunnelClosedByNode(TunnelID)
        /// The connection broke without a goodbye (the node's process stopped).
        case tunnelBroken(TunnelID)
        /// A request on this tunnel was answered.
        case requestSucceeded(TunnelID)
    }

    /// What the shell must do.
    public enum Directive: Hashable, Sendable {
        /// Dial a new tunnel through the load balancer now, and report `.tunnelOpened` or `.dialFailed`.
        case dialNow
        /// Feed `.dialDue` at this instant. At most one retry is pending: every path to it
        /// requires that no dial is in progress or scheduled.
        case retry(at: Instant)
    }

    /// A tunnel the agent holds.
    public struct Tunnel: Hashable, Sendable {
        /// The shell's number for it.
        public var id: TunnelID
        /// True once its node said GoAway: it serves until the node closes it, but a replacement
        /// is (being) opened.
        public var moving: Bool
        /// When it opened.
        public var openedAt: Instant
        /// When the move it replaces began, if it was dialled as a replacement (`isReplacing`):
        /// should its node refuse it at once (it holds more than its share), the next dial is a
        /// replacement again, within `replacingLimit` of that instant.
        public var replacingSince: Instant? = nil
    }

    /// The tunnels held, oldest first.
    public private(set) var tunnels: [Tunnel] = []
    /// True while a dial is in progress or scheduled.
    public private(set) var connecting = false
    /// When a node's GoAway started the move a dial now replaces, until a new tunnel opens (see
    /// `isReplacing`).
    public private(set) var replacingSince: Instant?
    /// The next retry delay (before jitter).
    public private(set) var backoff: Duration
    let settings: Settings

    /// A fresh agent holding no tunnel.
    public init(settings: Settings = Settings()) {
        self.settings = settings
        self.backoff = settings.minimumBackoff
    }

    /// Handles `input` at `now`; `rng` supplies the backoff jitter.
    public mutating func handle(_ input: Input, now: Instant, rng: inout SplitMix64) -> [Directive] {
        switch input {
        case .dialDue:
            return self.dial()
        case .dialFailed:
            return self.retry(now: now, rng: &rng)
        case .tunnelOpened(let id):
            self.tunnels.append(Tunnel(id: id, moving: false, openedAt: now, replacingSince: self.replacingSince))
            self.connecting = false
            self.replacingSince = nil
            return []
        case .toldToMove(let id):
            guard let position = self.tunnels.firstIndex(where: { $0.id == id }) else { return [] }
            self.resetBackoffIfStable(self.tunnels[position], now: now)
            let alreadyMoving = self.tunnels.contains { $0.moving }
            self.tunnels[position].moving = true
            if self.replacingSince == nil { self.replacingSince = now }
            guard !self.connecting else { return [] }
            // A replacement that landed on another draining node is moved again after the backoff.
            return alreadyMoving ? self.retry(now: now, rng: &rng) : self.dial()
        case .tunnelClosedByNode(let id):
            let closed = self.tunnels.first { $0.id == id }
            self.tunnels.removeAll { $0.id == id }
            if let closed { self.noteRefusedReplacement(closed, now: now) }
            guard self.needsReplacement else { return [] }
            // A tunnel the node closes soon after it opened, without asking it to move first,
            // was refused (another tenant holds the endpoint, a quota): dialling again at once
            // would loop, so the backoff applies. One that served a while redials at once.
            if self.settings.backsOffAfterRefusal, let closed, !closed.moving, now - closed.openedAt < self.settings.stableAfter {
                return self.retry(now: now, rng: &rng)
            }
            return self.dial()
        case .tunnelBroken(let id):
            // Also when only moving tunnels remain: the replacement that broke was the one they
            // wait for, and their nodes close them only once a replacement is served elsewhere.
            if let tunnel = self.tunnels.first(where: { $0.id == id }) {
                self.resetBackoffIfStable(tunnel, now: now)
                if tunnel.moving { self.replacingSince = nil }
                // Pico's runtime sees a refusal as the new tunnel breaking.
                self.noteRefusedReplacement(tunnel, now: now)
            }
            self.tunnels.removeAll { $0.id == id }
            return self.needsReplacement ? self.retry(now: now, rng: &rng) : []
        case .requestSucceeded(let id):
            if let tunnel = self.tunnels.first(where: { $0.id == id }), !tunnel.moving { self.backoff = self.settings.minimumBackoff }
            return []
        }
    }

    /// A replacement closed soon after it opened was refused (its node holds more than its
    /// share): the next dial is a replacement again, so another heavy node refuses it too.
    mutating func noteRefusedReplacement(_ tunnel: Tunnel, now: Instant) {
        if let since = tunnel.replacingSince, !tunnel.moving, now - tunnel.openedAt < self.settings.stableAfter { self.replacingSince = since }
    }

    mutating func resetBackoffIfStable(_ tunnel: Tunnel, now: Instant) {
        if !tunnel.moving, now - tunnel.openedAt >= self.settings.stableAfter { self.backoff = self.settings.minimumBackoff }
    }

    /// True from a node's GoAway until a new tunnel opens: a dial now opens the replacement and
    /// says so in its handshake (`TunnelAgent.replacingHeader`), so a node holding more than its
    /// share may refuse it while the old tunnel serves, or after the node released the old one
    /// because its endpoint is served elsewhere. A moving tunnel that breaks (its node died)
    /// ends it: the endpoint may then need this agent anywhere.
    /// A move ends after `replacingLimit` (the next dial is fresh).
    public var isReplacing: Bool { self.replacingSince != nil }

    /// No tunnel that will stay (every one held is moving, or none is held) and no dial under way.
    var needsReplacement: Bool {
        !self.connecting && !self.tunnels.contains { !$0.moving }
    }

    mutating func dial() -> [Directive] {
        self.connecting = true
        return [.dialNow]
    }

    mutating func retry(now: Instant, rng: inout SplitMix64) -> [Directive] {
        if let since = self.replacingSince, now - since >= self.settings.replacingLimit {
            // The refusals were the cluster steering the move, not failures: a fresh episode.
            self.replacingSince = nil
            self.backoff = self.settings.minimumBackoff
        }
        let delay = self.isReplacing ? min(self.backoff, self.settings.replacingBackoffCap) : self.backoff
        let jitter = Duration.nanoseconds(Int64(rng.bounded(UInt64(delay.nanosecondsClamped / self.settings.jitterDivisor) + 1)))
        let due = now + delay + jitter
        self.backoff = min(self.backoff * 2, self.settings.maximumBackoff)
        self.connecting = true
        return [.retry(at: due)]
    }
}
