import PicoModel

/// How datagrams fare on a link: latency plus uniform jitter, independent loss, duplication, and
/// reordering (a reordered packet takes an extra random delay of up to 4 × latency so later ones
/// overtake it). netem's vocabulary.
public struct LinkProfile: Hashable, Sendable {
    /// Base one-way latency.
    public var latency: Duration
    /// Extra delay drawn uniformly from `0...jitter`.
    public var jitter: Duration
    /// Probability that a datagram is lost.
    public var loss: Double
    /// Probability that a datagram is delivered twice.
    public var duplicate: Double
    /// Probability that a datagram is delayed enough to be overtaken.
    public var reorder: Double

    /// A 1 ms LAN link with 200 µs jitter and no faults.
    public static let lan = LinkProfile(latency: .milliseconds(1), jitter: .microseconds(200), loss: 0, duplicate: 0, reorder: 0)

    /// Creates a profile.
    public init(latency: Duration, jitter: Duration, loss: Double, duplicate: Double, reorder: Double) {
        self.latency = latency
        self.jitter = jitter
        self.loss = loss
        self.duplicate = duplicate
        self.reorder = reorder
    }

    /// The profile of a path through two impaired ends: delays add, probabilities combine as
    /// independent events.
    public func combined(with other: LinkProfile) -> LinkProfile {
        func either(_ a: Double, _ b: Double) -> Double { 1 - (1 - a) * (1 - b) }
        return LinkProfile(
            latency: self.latency + other.latency, jitter: self.jitter + other.jitter, loss: either(self.loss, other.loss),
            duplicate: either(self.duplicate, other.duplicate), reorder: either(self.reorder, other.reorder))
    }
}

/// The simulated network between pods (by index): delivery times for datagrams and streams,
/// partitions as blocked directed pairs, held links that queue instead of dropping, and per-pod
/// impairments. Deterministic: every draw comes from its own `SplitMix64` stream.
public struct SimNetwork: Sendable {
    /// A directed link.
    public struct Link: Hashable, Comparable, Sendable {
        /// Sender pod index.
        public var from: Int
        /// Receiver pod index.
        public var to: Int

        /// Creates a link.
        public init(from: Int, to: Int) {
            self.from = from
            self.to = to
        }

        public static func < (lhs: Link, rhs: Link) -> Bool { (lhs.from, lhs.to) < (rhs.from, rhs.to) }
    }

    /// What happens to one datagram.
    public enum Fate: Hashable, Sendable {
        /// Delivered at each of these instants (two for a duplicate).
        case delivered([Instant])
        /// Lost (`reason` for traces: "loss", "partition").
        case dropped(reason: String)
        /// Queued on a held link until it is released.
        case held
    }

    /// The profile of every link without impairment.
    public var defaultProfile: LinkProfile
    /// Extra impairment of every link touching a pod (netem on that pod).
    public private(set) var impairments: [Int: LinkProfile] = [:]
    /// Links that drop everything.
    public private(set) var blocked: Set<Link> = []
    /// Links that queue everything until released.
    public private(set) var heldLinks: Set<Link> = []
    var rng: SplitMix64

    /// Creates a network with `profile` on every link.
    public init(profile: LinkProfile, rng: SplitMix64) {
        self.defaultProfile = profile
        self.rng = rng
    }

    /// The profile between two pods.
    public func profile(from: Int, to: Int) -> LinkProfile {
        var profile = self.defaultProfile
        if let extra = self.impairments[from] { profile = profile.combined(with: extra) }
        if let extra = self.impairments[to] { profile = profile.combined(with: extra) }
        return profile
    }

    /// Decides the fate of a datagram sent now.
    public mutating func send(from: Int, to: Int, now: Instant) -> Fate {
        let link = Link(from: from, to: to)
        if self.blocked.contains(link) { return .dropped(reason: "partition") }
        if self.heldLinks.contains(link) { return .held }
        let profile = self.profile(from: from, to: to)
        if profile.loss > 0, self.rng.unitInterval() < profile.loss { return .dropped(reason: "loss") }
        var times = [now + self.delay(profile)]
        if profile.duplicate > 0, self.rng.unitInterval() < profile.duplicate { times.append(now + self.delay(profile)) }
        return .delivered(times)
    }

    /// The delay of a stream message (TCP: no loss, no duplication; blocked links fail it).
    public mutating func streamDelay(from: Int, to: Int) -> Duration? {
        let link = Link(from: from, to: to)
        guard !self.blocked.contains(link), !self.heldLinks.contains(link) else { return nil }
        var profile = self.profile(from: from, to: to)
        profile.reorder = 0
        return self.delay(profile)
    }

    /// Blocks every link in `links`.
    public mutating func block(_ links: [Link]) {
        for link in links { self.blocked.insert(link) }
    }

    /// Unblocks every link.
    public mutating func healAll() {
        self.blocked.removeAll()
    }

    /// Starts queuing datagrams on `links`.
    public mutating func hold(_ links: [Link]) {
        for link in links { self.heldLinks.insert(link) }
    }

    /// Stops queuing on `links` (the shell re-sends what it queued).
    public mutating func release(_ links: [Link]) {
        for link in links { self.heldLinks.remove(link) }
    }

    /// Sets (or with nil clears) the extra impairment of `pod`.
    public mutating func impair(_ pod: Int, with profile: LinkProfile?) {
        self.impairments[pod] = profile
    }

    mutating func delay(_ profile: LinkProfile) -> Duration {
        var delay = profile.latency
        if profile.jitter > .zero {
            delay += .nanoseconds(Int64(self.rng.bounded(UInt64(profile.jitter.nanosecondsClamped) + 1)))
        }
        if profile.reorder > 0, self.rng.unitInterval() < profile.reorder {
            let extra = max(profile.latency, .milliseconds(1)) * 4
            delay += .nanoseconds(Int64(self.rng.bounded(UInt64(extra.nanosecondsClamped) + 1)))
        }
        return delay
    }
}

/// Partition shapes (Jepsen's nemeses), turned into the directed links to block.
public enum PartitionShape: Hashable, Sendable {
    /// The first half (rounded up) against the rest.
    case halves
    /// A random split into halves.
    case randomHalves
    /// One pod against all others.
    case isolate(Int)
    /// Two halves that cannot talk, joined by one pod that talks to both.
    case bridge
    /// Every pod sees a majority, but no two see the same one (a ring of overlapping majorities).
    case majoritiesRing
    /// `sources` cannot send to `targets`; the other direction still works.
    case oneWay(sources: [Int], targets: [Int])
    /// Explicit sides: no link between different sides.
    case sides([[Int]])

    /// The directed links to block among `pods` (sorted, without duplicates).
    public func links(among pods: [Int], rng: inout SplitMix64) -> [SimNetwork.Link] {
        var pairs: Set<SimNetwork.Link> = []
        func cut(_ a: [Int], _ b: [Int]) {
            for x in a {
                for y in b where x != y {
                    pairs.insert(SimNetwork.Link(from: x, to: y))
                    pairs.insert(SimNetwork.Link(from: y, to: x))
                }
            }
        }
        let sorted = pods.sorted()
        switch self {
        case .halves:
            let middle = (sorted.count + 1) / 2
            cut(Array(sorted[..<middle]), Array(sorted[middle...]))
        case .randomHalves:
            var shuffled = sorted
            rng.shuffle(&shuffled)
            let middle = (shuffled.count + 1) / 2
            cut(Array(shuffled[..<middle]), Array(shuffled[middle...]))
        case .isolate(let pod):
            cut([pod], sorted.filter { $0 != pod })
        case .bridge:
            guard sorted.count >= 3 else { break }
            let bridge = sorted[sorted.count / 2]
            let others = sorted.filter { $0 != bridge }
            let middle = others.count / 2
            cut(Array(others[..<middle]), Array(others[middle...]))
        case .majoritiesRing:
            var ring = sorted
            rng.shuffle(&ring)
            let count = ring.count
            let reach = (count / 2 + 1) / 2
            for (position, pod) in ring.enumerated() {
                for (otherPosition, other) in ring.enumerated() where other != pod {
                    let distance = min((position - otherPosition + count) % count, (otherPosition - position + count) % count)
                    if distance > reach { pairs.insert(SimNetwork.Link(from: pod, to: other)) }
                }
            }
        case .oneWay(let sources, let targets):
            for x in sources { for y in targets where x != y { pairs.insert(SimNetwork.Link(from: x, to: y)) } }
        case .sides(let sides):
            for (index, side) in sides.enumerated() {
                for other in sides[(index + 1)...] { cut(side, other) }
            }
        }
        return pairs.sorted()
    }
}
