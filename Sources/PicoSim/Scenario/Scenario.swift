import PicoModel

/// A scenario file, decoded and validated: the cluster, its traffic, a timeline of events at
/// simulated times, and the checks that must hold. `docs/scenarios.md` documents every key.
public struct Scenario: Sendable {
    /// How pods start at time zero.
    public enum Startup: String, Sendable {
        /// One after another, each once the previous is ready (StatefulSet `OrderedReady`).
        case ordered
        /// All at once (`Parallel`), against an empty headless service.
        case parallel
    }

    /// One timeline entry.
    public struct Event: Hashable, Sendable {
        /// A stable ID (the file's `id:`, else the entry's position): the entry's own randomness
        /// (which pods a random partition picks) comes from (seed, id), so deleting another entry
        /// never changes it.
        public var id: Int
        /// When it happens.
        public var at: Duration
        /// What happens.
        public var action: Action
        /// When set, the action is undone this long after (heal, resume, clear netem).
        public var duration: Duration?
        /// The line of the entry, for reports.
        public var line: Int
    }

    /// What a timeline entry does.
    public enum Action: Hashable, Sendable {
        /// A rolling update of every running pod: StatefulSet-style in place when `maxSurge` is 0,
        /// Deployment-style with new pods on spare ordinals otherwise.
        case rollout(maxUnavailable: Int, maxSurge: Int, minReadySeconds: Duration)
        /// Kill pods without goodbye.
        case crash([Int])
        /// Start new processes in pods (after a crash or exit).
        case restart([Int])
        /// SIGTERM: graceful shutdown.
        case terminate([Int])
        /// Freeze pods.
        case pause([Int])
        /// Thaw pods.
        case resume([Int])
        /// Cut links.
        case partition(PartitionShape)
        /// Restore every link.
        case heal
        /// Queue datagrams on these links instead of delivering them.
        case hold([SimNetwork.Link])
        /// Deliver what waited on these links, and stop holding them.
        case release([SimNetwork.Link])
        /// Impair every link touching these pods.
        case netem(pods: [Int], profile: LinkProfile)
        /// Clear impairments of these pods.
        case clearNetem([Int])
        /// Change the number of replicas (new pods start; removed ones get SIGTERM).
        case scale(replicas: Int)
        /// Stop the clients.
        case stopClients
        /// The liveness phase begins: heal and release every link, clear every impairment,
        /// resume paused pods and restart crashed ones (not those a scale-down removed).
        case recover
        /// A hostile host outside the cluster sends the pods forged and garbled gossip until the
        /// entry's `for:` runs out (or `recover`).
        case nemesis(NemesisAttack)
        /// The gossip key file of these pods (every pod when empty) now holds `keys` (names, the
        /// sealing one first): running processes load it, and later ones start with it.
        case gossipKeys(pods: [Int], keys: [String])
        /// More agents start (an attacker's, or a tenant's new service).
        case addAgents([AgentSpec])
    }

    /// What a run is expected to show: every check passing, or one named check failing (a known
    /// open bug, kept as a regression file until it is fixed, or a documented limitation).
    public enum Expectation: Hashable, Sendable {
        /// Every check passes.
        case pass
        /// The named check fails; `bug` says which open bug this is.
        case fail(check: String, bug: String)
        /// The named check fails, and always will: `why` says what no fix can change.
        case limitation(check: String, why: String)

        /// The check expected to fail and why (nil for `pass`).
        public var expectedFailure: (check: String, reason: String, isLimitation: Bool)? {
            switch self {
            case .pass: nil
            case .fail(let check, let bug): (check, bug, false)
            case .limitation(let check, let why): (check, why, true)
            }
        }
    }

    /// A check and its parameters.
    public struct Check: Hashable, Sendable {
        /// The checker's name.
        public var name: String
        /// Window start (no-failed-requests), default: the start of the run.
        public var from: Duration?
        /// Window end, default: the end of the run.
        public var to: Duration?
        /// no-failed-requests `excuse: no-reachable-holder`: requests whose entry pod could reach
        /// no holder of their endpoint, by the network's real state, for an unbroken
        /// `SimWorld.servableReachability` (1 s) of their life may fail.
        public var excuseUnreachable = false
        /// Detection window (route-only-to-live-owners).
        public var detection: Duration
        /// Convergence or re-homing bound after the last disturbance (membership-converged,
        /// endpoint-tables-converged, agents-rehomed, tunnels-balanced, no-oscillation).
        public var within: Duration
        /// tunnels-balanced: the most tunnels an active pod may hold, as a multiple of the mean.
        public var ratio: Double = 1.2
        /// tunnels-balanced: the most moves rebalancing may ask for, as a multiple of the fewest
        /// that balance the pods (nil: not checked).
        public var moves: Double?
    }

    /// `metadata.name`.
    public var name: String
    /// The file it came from.
    public var file: String
    /// The master seed.
    public var seed: UInt64
    /// How long the run lasts in simulated time.
    public var duration: Duration
    /// Initial replicas.
    public var pods: Int
    /// How they start.
    public var startup: Startup
    /// Agents: one per entry and count.
    public var agents: [AgentSpec]
    /// Clients.
    public var clients: [ClientSpec]
    /// The default link profile.
    public var network: LinkProfile
    /// Kubernetes timings.
    public var dnsLag: Duration
    /// The load balancer's readiness lag.
    public var loadBalancerLag: Duration
    /// Whether DNS lists not-ready pods.
    public var publishNotReadyAddresses: Bool
    /// The pods' termination grace period (also Pico's `grace_period`).
    public var terminationGracePeriod: Duration
    /// `spec.topology.gossipKeys`: the names of the gossip keys every pod starts with, the
    /// sealing one first (empty: gossip in plain text).
    public var gossipKeys: [String] = []
    /// `spec.rebalance`: the pods' `upstream.rebalance.*` settings (Pico's defaults unless set).
    public var rebalance = Rebalancer.Settings()
    /// The timeline, sorted by time (file order for equal times).
    public var timeline: [Event]
    /// The checks.
    public var checks: [Check]
    /// What the run should show (`spec.expect`, default: every check passes).
    public var expect: Expectation = .pass
}

extension Scenario.Action {
    /// The same action with every pod ordinal it names passed through `transform` (nil drops the
    /// pod, or a link touching it); nil when the action is left naming no pod at all. Actions that
    /// name no pod come back unchanged.
    public func mappingPods(_ transform: (Int) -> Int?) -> Scenario.Action? {
        func pods(_ list: [Int]) -> [Int]? {
            let kept = list.compactMap(transform)
            return kept.isEmpty ? nil : kept
        }
        func links(_ list: [SimNetwork.Link]) -> [SimNetwork.Link]? {
            let kept = list.compactMap { link in transform(link.from).flatMap { from in transform(link.to).map { SimNetwork.Link(from: from, to: $0) } } }
            return kept.isEmpty ? nil : kept
        }
        switch self {
        case .crash(let list): return pods(list).map { .crash($0) }
        case .restart(let list): return pods(list).map { .restart($0) }
        case .terminate(let list): return pods(list).map { .terminate($0) }
        case .pause(let list): return pods(list).map { .pause($0) }
        case .resume(let list): return pods(list).map { .resume($0) }
        case .clearNetem(let list): return pods(list).map { .clearNetem($0) }
        case .netem(let list, let profile): return pods(list).map { .netem(pods: $0, profile: profile) }
        case .hold(let list): return links(list).map { .hold($0) }
        case .release(let list): return links(list).map { .release($0) }
        case .partition(.isolate(let pod)): return transform(pod).map { .partition(.isolate($0)) }
        case .partition(.oneWay(let sources, let targets)):
            guard let from = pods(sources), let to = pods(targets) else { return nil }
            return .partition(.oneWay(sources: from, targets: to))
        case .partition(.sides(let sides)):
            let kept = sides.compactMap(pods)
            return kept.isEmpty ? nil : .partition(.sides(kept))
        case .nemesis(var attack):
            guard !attack.pods.isEmpty else { return self }
            guard let kept = pods(attack.pods) else { return nil }
            attack.pods = kept
            return .nemesis(attack)
        case .gossipKeys(let list, let keys):
            guard !list.isEmpty else { return self }
            return pods(list).map { .gossipKeys(pods: $0, keys: keys) }
        case .rollout, .partition, .heal, .scale, .stopClients, .recover, .addAgents:
            return self
        }
    }
}
