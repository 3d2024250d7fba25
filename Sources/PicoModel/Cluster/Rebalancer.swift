/// The rule that moves tunnels off a node holding more than its share (`upstream.rebalance.*`),
/// evaluated once per `Rebalancer.interval` from a `Census` of the cluster as this node sees it.
///
/// Piko's rule (every second: shed `min(local × balance, ceil(avg × shed_rate))` sessions when
/// `balance = (local − avg) / avg` reaches the threshold) closes sessions as soon as one sample is
/// over, counts ghost members in the average (Piko #322) and lets a moved agent land straight back
/// on the node it left. This one:
/// - averages over active members only (alive, not suspect, not draining; this node included);
/// - acts only after the node has stayed above `(1 + threshold) × mean` for `hold`, with the same
///   live members all along (a join, leave, drain or death starts the hold over; a suspicion
///   does not, or a lossy network would keep every node from acting);
/// - moves at most `max(1, staying × shedRate)` tunnels a second (a fraction of its own unmoved
///   tunnels, so a node far above the mean sheds faster than Piko's `avg × shed_rate`), and at most
///   `inFlightSeconds` of that rate in progress at a time, down to the mean (not merely under the threshold), never
///   below `minConns`; then cools down for `cooldown` before it may act again;
/// - counts tunnels already asked to move as gone, so a move in progress is never asked twice.
///
/// Callers may rely on: with `threshold == 0` the state is `.off` and nothing is ever moved or
/// refused; `evaluate` never returns more than the node's unmoved tunnels above `minConns`.
public struct Rebalancer: Hashable, Sendable {
    /// `upstream.rebalance.*`.
    public struct Settings: Hashable, Sendable {
        /// How far above the mean a node may hold tunnels before it moves some: it moves when it
        /// holds more than `(1 + threshold) × mean`. 0 turns rebalancing (and placement refusal)
        /// off. Piko's `upstream.rebalance.threshold`.
        public var threshold: Double = 0.2
        /// Tunnels moved per second, as a fraction of the node's unmoved tunnels (at least one a
        /// second; Piko's is a fraction of the mean). Piko's
        /// `upstream.rebalance.shed_rate`.
        public var shedRate: Double = 0.05
        /// A node holding fewer tunnels than this never moves any, and never refuses one. Piko's
        /// `upstream.rebalance.min_conns`.
        public var minConns: Int = 10
        /// How long a node must stay over the threshold, with unchanged active members, before it
        /// moves tunnels (`upstream.rebalance.hold`).
        public var hold: Duration = .seconds(10)
        /// How long a node waits after a round of moves before it may start another
        /// (`upstream.rebalance.cooldown`).
        public var cooldown: Duration = .seconds(10)

        /// The defaults, chosen from simulation (docs/clustering.md, "Rebalancing").
        public init() {}

        /// True when rebalancing is on.
        public var isEnabled: Bool { self.threshold > 0 }

        /// Every problem, each naming its key; empty when valid.
        public func validationErrors() -> [String] {
            var errors: [String] = []
            if !(self.threshold >= 0 && self.threshold <= 100) {
                errors.append("upstream.rebalance.threshold must be from 0 to 100, got \(self.threshold)")
            }
            if !(self.shedRate > 0 && self.shedRate <= 1) {
                errors.append("upstream.rebalance.shed_rate must be above 0 and at most 1, got \(self.shedRate)")
            }
            if !(0...1_000_000).contains(self.minConns) {
                errors.append("upstream.rebalance.min_conns must be from 0 to 1000000, got \(self.minConns)")
            }
            if self.hold < .zero || self.hold > .seconds(3_600) {
                errors.append("upstream.rebalance.hold must be from 0s to 1h, got \(self.hold)")
            }
            if self.cooldown < .zero || self.cooldown > .seconds(3_600) {
                errors.append("upstream.rebalance.cooldown must be from 0s to 1h, got \(self.cooldown)")
            }
            return errors
        }
    }

    /// The cluster as this node sees it at one evaluation.
    public struct Census: Hashable, Sendable {
        /// Tunnels registered on this node, moving ones included.
        public var local: Int
        /// Of them, those whose agents were asked to move and are not yet released.
        public var moving: Int
        /// Of those, the moves still under way (`ClusterNode.movesUnderWay`): only these use up
        /// the room for moves in progress, so moves that wait for evidence of their replacement
        /// no longer hold the node back, while their tunnels still count as leaving.
        public var underWay: Int
        /// Tunnels per active member (alive, not suspect, not draining): this node's unmoved ones
        /// first (`staying`), then each other member's as gossiped.
        public var memberTotals: [Int]
        /// The live members not draining (suspects included), sorted: a change starts the hold
        /// over.
        public var members: [NodeUID]

        /// Creates a census.
        public init(local: Int, moving: Int, underWay: Int? = nil, memberTotals: [Int], members: [NodeUID]) {
            self.underWay = underWay ?? moving
            self.local = local
            self.moving = moving
            self.memberTotals = memberTotals
            self.members = members
        }

        /// Tunnels that stay: registered ones not asked to move.
        public var staying: Int { max(self.local - self.moving, 0) }
        /// Every active member's tunnels together.
        public var total: Int { self.memberTotals.reduce(0) { $0 &+ max($1, 0) } }
        /// The mean tunnels per active member, rounded up (0 without members).
        public var roundedMean: Int {
            let count = self.memberTotals.count
            return count == 0 ? 0 : (self.total + count - 1) / count
        }

        /// True when `count` is more than `(1 + margin) × mean`.
        func exceeds(_ count: Int, margin: Double) -> Bool {
            guard !self.memberTotals.isEmpty else { return false }
            return Double(count) * Double(self.memberTotals.count) > Double(self.total) * (1 + margin)
        }

        /// True when some active member holds fewer than the mean.
        var someoneBelowMean: Bool {
            let count = self.memberTotals.count
            return self.memberTotals.contains { $0 * count < self.total }
        }
    }

    /// Where the rule stands.
    public enum State: Hashable, Sendable {
        /// Rebalancing is turned off (`threshold` 0).
        case off
        /// At or under the threshold (or under `minConns`).
        case balanced
        /// Over the threshold since this instant, with the same active members.
        case above(since: Instant)
        /// Moving tunnels down to the mean; `allowance` moves may start now (the rate's credit,
        /// at most one second's worth).
        case shedding(allowance: Double)
        /// A round of moves ended; no new round before this instant.
        case cooling(until: Instant)
    }

    /// How often the node evaluates (Piko's rebalance loop runs every second): four times a
    /// second, so the next tunnel of an endpoint moves soon after the last one's replacement
    /// showed (one of an endpoint moves at a time), while the rate stays `moveRate` a second.
    public static let interval: Duration = .milliseconds(250)
    /// Moves in progress at most, as a multiple of the per-second rate: a move normally ends
    /// within a few seconds (the agent's dial, then `handoverSettleTime`), so more than this many
    /// means moves are stuck (agents that cannot reach another node) and the node waits for them.
    public static let inFlightSeconds = 5
    /// A move not released this long after it was asked (its tunnel carries long-lived streams,
    /// which a move never cuts) stops counting as in progress and stops holding its endpoint:
    /// the tunnel still takes no new requests and goes once its streams end.
    public static let moveLimit: Duration = .seconds(60)
    /// A Pico agent's move whose replacement has not shown this long after it was asked counts
    /// as replaced: the agent stops asking to be a replacement after its `replacingLimit` (10 s)
    /// and dials afresh, so by now it holds a tunnel elsewhere unless no node is reachable, and
    /// the count that shows a replacement is ambiguous when other nodes move agents of the
    /// same endpoint (a replacement that landed before their releases is hidden by them).
    public static let replacementWait: Duration = .seconds(15)
    /// A moved agent's replacement that landed on a node within this long is the last of its
    /// tunnels that node moves (the simulator's `no-oscillation` bound).
    public static let movedAgainAfter: Duration = .seconds(60)

    /// The settings.
    public let settings: Settings
    /// Where the rule stands.
    public private(set) var state: State
    /// The live members not draining at the last evaluation.
    public private(set) var members: [NodeUID] = []
    /// When they last changed (a join, leave, drain or death).
    public private(set) var membersChangedAt: Instant = .zero

    /// A rule with `settings` (`.off` when its threshold is 0).
    public init(settings: Settings) {
        self.settings = settings
        self.state = settings.isEnabled ? .balanced : .off
    }

    /// Moves started per second at most for `census`: `shedRate` of the unmoved tunnels, at
    /// least one.
    public func moveRate(_ census: Census) -> Double {
        max(1, Double(census.staying) * self.settings.shedRate)
    }

    /// Evaluates `census` at `now`: returns how many more tunnels to ask to move now (0 mostly).
    public mutating func evaluate(_ census: Census, now: Instant) -> Int {
        guard self.settings.isEnabled else { return 0 }
        let membersChanged = census.members != self.members
        self.members = census.members
        if membersChanged { self.membersChangedAt = now }
        let over = census.staying >= self.settings.minConns && census.exceeds(census.staying, margin: self.settings.threshold)
        switch self.state {
        case .off:
            return 0
        case .cooling(let until):
            guard now >= until else { return 0 }
            self.state = over ? .above(since: now) : .balanced
            return 0
        case .balanced:
            if over { self.state = .above(since: now) }
            return 0
        case .above(let since):
            guard over else {
                self.state = .balanced
                return 0
            }
            if membersChanged {
                self.state = .above(since: now)
                return 0
            }
            guard now - since >= self.settings.hold else { return 0 }
            // The first move of a round starts at once.
            return self.shed(census, allowance: 1, now: now)
        case .shedding(let allowance):
            // Members changed under a round (a partition, a join): stop, and wait a whole hold.
            if membersChanged {
                self.state = over ? .above(since: now) : .balanced
                return 0
            }
            let rate = self.moveRate(census)
            return self.shed(census, allowance: min(allowance + rate * Self.interval.secondsDouble, rate), now: now)
        }
    }

    /// The node asked `asked` of the `wanted` moves `evaluate` returned at `now` (fewer when no
    /// tunnel may move yet: too young, their endpoints already moving, Piko agents alone here):
    /// the allowance not used is kept (up to one second's worth), and a round in which nothing
    /// can move and no move is under way (`inProgress` 0: none will free an endpoint) ends, so a
    /// node never sits in `.shedding` (refusing every replacement) with nothing to shed.
    public mutating func moved(_ asked: Int, of wanted: Int, inProgress: Int, now: Instant) {
        guard case .shedding(let allowance) = self.state, asked < wanted else { return }
        if asked == 0, inProgress == 0 {
            self.state = .cooling(until: now + self.settings.cooldown)
        } else {
            self.state = .shedding(allowance: min(allowance + Double(wanted - asked), max(1, Double(wanted))))
        }
    }

    /// The moves `allowance` lets start now, or the end of the round.
    mutating func shed(_ census: Census, allowance: Double, now: Instant) -> Int {
        let target = max(census.roundedMean, self.settings.minConns)
        guard census.staying > target else {
            self.state = .cooling(until: now + self.settings.cooldown)
            return 0
        }
        let room = Int((self.moveRate(census) * Double(Self.inFlightSeconds)).rounded(.up)) - census.underWay
        let moves = max(0, min(census.staying - target, Int(allowance), room))
        self.state = .shedding(allowance: allowance - Double(moves))
        return moves
    }

    /// True when this node should refuse the replacement of a moved tunnel (whose old tunnel
    /// still serves, so refusing costs nothing but a retry) at `now`, while some member holds
    /// less than the mean: when it is moving tunnels itself (it would shed the newcomer again),
    /// or, with the same live members for a whole hold, holds more than the mean (and at least
    /// `minConns`), so the agent's retry through the load balancer lands on a node below the mean.
    /// (Taking replacements up to 1.1 × the mean let nodes near it fill past their share while
    /// moves went on, then move the same agents again.) While
    /// members change (a rolling restart: the agents of a draining node must land before its
    /// deadline, and the one pod below the mean may not be behind the load balancer yet), only a
    /// node that sheds refuses. A node never refuses while rebalancing is off, and the lightest
    /// member in a consistent view never refuses, so a moving agent always has somewhere to go.
    public func refusesReplacement(_ census: Census, now: Instant) -> Bool {
        guard self.mayRefuse(census) else { return false }
        if case .shedding = self.state { return true }
        return now - self.membersChangedAt >= self.settings.hold && census.exceeds(census.staying, margin: 0)
    }

    /// True when refusing anything may help: rebalancing is on, this node holds at least
    /// `minConns`, and some member holds less than the mean (somewhere lighter to go).
    func mayRefuse(_ census: Census) -> Bool {
        self.settings.isEnabled && census.staying >= self.settings.minConns && census.someoneBelowMean
    }

    /// True when this node should refuse a Piko agent's tunnel (whose endpoint is served
    /// elsewhere) at `now`, while some member holds less than the mean and this node more: when
    /// it is shedding, or, with the same live members for a whole hold, when one more tunnel
    /// would take it over `(1 + threshold) × mean`. A Piko agent says nothing of moving and
    /// closes before it reconnects, so one the rule moved lands wherever the load balancer sends
    /// it; a node that took such agents past the threshold would move them (or others) again.
    /// Nodes up to the threshold take them, so an agent that starts afresh (nothing tells it
    /// apart) is rarely refused; a refused one (its session opens, then closes) dials again at
    /// once, as Piko's agent does after any closed session, and the lightest member in a
    /// consistent view never refuses.
    public func refusesPikoAgent(_ census: Census, now: Instant) -> Bool {
        guard self.mayRefuse(census) else { return false }
        // A node at or below the mean never refuses: with a small threshold, one more tunnel
        // could take every node over it, and the agent would be turned away everywhere.
        guard census.exceeds(census.staying, margin: 0) else { return false }
        if case .shedding = self.state { return true }
        return now - self.membersChangedAt >= self.settings.hold && census.exceeds(census.staying &+ 1, margin: self.settings.threshold)
    }
}
