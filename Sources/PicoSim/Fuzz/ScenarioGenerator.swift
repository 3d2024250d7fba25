import PicoModel

/// Draws a random but valid scenario from a seed: pods, agents, clients, a fault phase with events
/// of every kind the simulator knows, then a liveness phase (`recover`: everything healed, crashed
/// pods restarted) after which the cluster must converge and serve every request. The same seed and
/// `version` always give the same scenario.
public enum ScenarioGenerator {
    /// Bumped whenever the same seed would give a different scenario; regression files record it.
    /// Version 2 added lossy networks (`network(seed:)`); version 3 clients that hold TCP
    /// connections open (`tcpClient(seed:endpoints:)`); version 4 rebalancing runs
    /// (`rebalancingAgents(seed:pods:)`); version 5 Piko's agents in half the rebalancing runs.
    public static let version = 5
    /// How long a rebalancing run lasts: the hold, the moves and the bound after the last
    /// disturbance must fit.
    public static let rebalancingDuration: Duration = .seconds(150)
    /// How long every generated scenario runs.
    public static let duration: Duration = .seconds(60)
    /// Convergence and re-homing bound after the last disturbance.
    public static let bound: Duration = .seconds(25)
    /// How long a scenario with a nemesis runs: made-up members take up to about 45 s to be
    /// declared dead after an attack stops (SWIM must probe each, then wait out its suspicion).
    public static let nemesisDuration: Duration = .seconds(120)
    /// The bound after the last disturbance in a scenario with a nemesis.
    public static let nemesisBound: Duration = .seconds(60)
    /// The nemesis kinds a generated attack draws from: every kind (the cluster converges after
    /// each once the attack stops; `scenarios/regressions/nemesis-*.yaml` keep the three that
    /// did not before).
    public static let nemesisKinds: [NemesisAttack.Kind] = NemesisAttack.Kind.allCases

    /// Event kinds the generator draws from (every timeline action but `stop-clients`).
    enum Kind: CaseIterable {
        case crash, terminate, pause, partition, hold, netem, rollout, scale
    }

    /// The scenario for `seed` with a pod count in `nodes`; with `nemesis`, the fault phase also
    /// holds one attack (drawn from its own stream, so the rest of the scenario is the same as
    /// without it, apart from the longer run and bound).
    public static func generate(seed: UInt64, nodes: ClosedRange<Int> = 3...9, nemesis: Bool = false) -> Scenario {
        var rng = RandomStreams(master: seed).stream("generator/v\(self.version)")
        let pods = nodes.lowerBound + rng.index(below: nodes.count)
        let endpoints = (0..<(1 + rng.index(below: 3))).map { "e\($0)" }
        var agents: [AgentSpec] = []
        for endpoint in endpoints {
            for copy in 0..<(1 + rng.index(below: 2)) { agents.append(AgentSpec(name: "\(endpoint)-\(copy)", endpoint: endpoint)) }
        }
        let rebalancing = self.rebalancingAgents(seed: seed, pods: pods, endpoints: endpoints)
        if let rebalancing { agents = rebalancing }
        var clients = (0..<(1 + rng.index(below: 2))).map { index in
            ClientSpec(
                name: "client-\(index)", endpoints: endpoints, rate: Double(10 + rng.index(below: 31)), timeout: .seconds(5),
                serviceTime: .milliseconds(Int64(1 + rng.index(below: 50))), zipf: rng.index(below: 2) == 0)
        }
        if let tcp = self.tcpClient(seed: seed, endpoints: endpoints) { clients.append(tcp) }
        let faultEnd = Duration.milliseconds(Int64(10_000 + rng.index(below: 10_001)))
        var timeline: [Scenario.Event] = []
        var usedRollout = false
        var usedScale = false
        var replicas = pods
        let count = 1 + rng.index(below: 8)
        // Times first, in order, so a pod named by an event exists by then (scale-ups come first).
        let times = (0..<count).map { _ in
            Duration.milliseconds(Int64(5_000 + rng.index(below: Int((faultEnd - .seconds(5)).nanosecondsClamped / 1_000_000))))
        }.sorted()
        for at in times {
            let kind = Kind.allCases[rng.index(below: Kind.allCases.count)]
            // At most one rollout and one scale per scenario.
            if kind == .rollout { if usedRollout { continue } else { usedRollout = true } }
            if kind == .scale { if usedScale { continue } else { usedScale = true } }
            timeline += self.events(kind, at: at, faultEnd: faultEnd, replicas: &replicas, rng: &rng)
        }
        if nemesis { timeline.append(self.nemesisEvent(seed: seed, faultEnd: faultEnd)) }
        timeline.append(Scenario.Event(id: 0, at: faultEnd, action: .recover, duration: nil, line: 0))
        timeline = timeline.enumerated().sorted { ($0.element.at, $0.offset) < ($1.element.at, $1.offset) }.map(\.element)
        for index in timeline.indices { timeline[index].id = index }
        let bound = nemesis ? self.nemesisBound : self.bound
        let network = self.network(seed: seed)
        let duration = nemesis ? self.nemesisDuration : rebalancing != nil ? self.rebalancingDuration : self.duration
        return Scenario(
            name: "fuzz-\(seed)", file: "fuzz-\(seed).yaml", seed: seed, duration: duration, pods: pods,
            startup: rng.index(below: 2) == 0 ? .parallel : .ordered, agents: agents, clients: clients, network: network,
            dnsLag: .milliseconds(Int64(500 + rng.index(below: 1_501))), loadBalancerLag: .milliseconds(Int64(1_000 + rng.index(below: 2_001))),
            publishNotReadyAddresses: false, terminationGracePeriod: [.seconds(20), .seconds(30), .seconds(60)][rng.index(below: 3)],
            timeline: timeline,
            checks: self.checks(for: timeline, network: network, faultEnd: faultEnd, bound: bound, duration: duration,
                                streams: clients.contains { $0.streams != nil }, rebalancing: rebalancing != nil))
    }

    /// In one run of three, enough agents for rebalancing to act (12 to 25 per pod at the start,
    /// over the run's endpoints; `min_conns` is 10), from its own stream; nil otherwise. In half
    /// of them the agents of every second endpoint are Piko's (they close before they reconnect).
    static func rebalancingAgents(seed: UInt64, pods: Int, endpoints: [String]) -> [AgentSpec]? {
        var rng = RandomStreams(master: seed).stream("generator/v\(self.version)/rebalance")
        guard rng.index(below: 3) == 0 else { return nil }
        let total = pods * (12 + rng.index(below: 14))
        let withPiko = rng.index(below: 2) == 0
        // Grouped by endpoint, named as a scenario file names them (so the file replays the run).
        return endpoints.enumerated().flatMap { position, endpoint in
            let count = total / endpoints.count + (position < total % endpoints.count ? 1 : 0)
            let kind: AgentSpec.Kind = withPiko && position % 2 == 1 ? .piko : .pico
            let prefix = kind == .piko ? "piko-" : ""
            return (0..<count).map { AgentSpec(name: "\(prefix)\(endpoint)-\($0)", endpoint: endpoint, kind: kind) }
        }
    }

    /// In one run of two, a client that opens 1 to 5 TCP connections a second, each open for 1 s
    /// up to 2 to 40 s (from its own stream, so the rest of the scenario does not depend on it).
    static func tcpClient(seed: UInt64, endpoints: [String]) -> ClientSpec? {
        var rng = RandomStreams(master: seed).stream("generator/v\(self.version)/tcp")
        guard rng.index(below: 2) == 0 else { return nil }
        let lifetimes = StreamLifetimes(shortest: .seconds(1), longest: .seconds(Int64(2 + rng.index(below: 39))))
        return ClientSpec(name: "tcp", endpoints: endpoints, rate: Double(1 + rng.index(below: 5)), timeout: .seconds(5), streams: lifetimes)
    }

    /// The network every link has for the whole run, from its own stream: a LAN in two runs of
    /// five; otherwise 1, 2, 5 or 10 % uniform datagram loss, at 1 or 5 ms latency (jitter a fifth
    /// of it). Membership must declare nobody dead at up to 10 % (issue 24), so `no-false-deaths`
    /// stays unless faults add loss beyond that.
    static func network(seed: UInt64) -> LinkProfile {
        var rng = RandomStreams(master: seed).stream("generator/v\(self.version)/network")
        guard rng.index(below: 5) >= 2 else { return .lan }
        let loss = [0.01, 0.02, 0.05, 0.1][rng.index(below: 4)]
        let latency = Duration.milliseconds([1, 5][rng.index(below: 2)])
        return LinkProfile(latency: latency, jitter: latency / 5, loss: loss, duplicate: 0, reorder: 0)
    }

    /// One attack between 5 s and the fault end: 2 to 8 s long, 20 to 200 inputs per second, a
    /// non-empty subset of `nemesisKinds`, 1 to 32 made-up identities, every pod a target.
    static func nemesisEvent(seed: UInt64, faultEnd: Duration) -> Scenario.Event {
        var rng = RandomStreams(master: seed).stream("generator/v\(self.version)/nemesis")
        let at = Duration.milliseconds(Int64(5_000 + rng.index(below: Int((faultEnd - .seconds(7)).nanosecondsClamped / 1_000_000))))
        let length = min(Duration.milliseconds(Int64(2_000 + rng.index(below: 6_001))), faultEnd - at)
        var kinds = self.nemesisKinds.filter { _ in rng.index(below: 2) == 0 }
        if kinds.isEmpty { kinds = [self.nemesisKinds[rng.index(below: self.nemesisKinds.count)]] }
        let attack = NemesisAttack(rate: Double(20 + rng.index(below: 181)), kinds: kinds, identities: 1 + rng.index(below: 32))
        return self.event(at, .nemesis(attack), for: length)
    }

    static func event(_ at: Duration, _ action: Scenario.Action, for duration: Duration? = nil) -> Scenario.Event {
        Scenario.Event(id: 0, at: at, action: action, duration: duration, line: 0)
    }

    /// A `for:` of 1 to `maximum` seconds, cut so it ends by `faultEnd` (nil when nothing is left).
    static func span(_ at: Duration, maximum: Int, faultEnd: Duration, rng: inout SplitMix64) -> Duration? {
        let wanted = Duration.milliseconds(Int64(1_000 + rng.index(below: maximum * 1_000)))
        let room = faultEnd - at
        return room > .milliseconds(100) ? min(wanted, room) : nil
    }

    static func somePods(_ replicas: Int, most: Int, rng: inout SplitMix64) -> [Int] {
        var pods = Array(0..<replicas)
        rng.shuffle(&pods)
        return Array(pods.prefix(1 + rng.index(below: most))).sorted()
    }

    static func events(
        _ kind: Kind, at: Duration, faultEnd: Duration, replicas: inout Int, rng: inout SplitMix64
    ) -> [Scenario.Event] {
        let pod = rng.index(below: replicas)
        switch kind {
        case .crash, .terminate:
            var events = [self.event(at, kind == .crash ? .crash([pod]) : .terminate([pod]))]
            if rng.index(below: 2) == 0, let later = self.span(at, maximum: 15, faultEnd: faultEnd, rng: &rng) {
                events.append(self.event(at + later, .restart([pod])))
            }
            return events
        case .pause:
            return [self.event(at, .pause(self.somePods(replicas, most: 2, rng: &rng)), for: self.span(at, maximum: 15, faultEnd: faultEnd, rng: &rng))]
        case .partition:
            let shapes: [PartitionShape] = [
                .halves, .randomHalves, .isolate(pod), .bridge, .majoritiesRing,
                .oneWay(sources: [pod], targets: Array(0..<replicas).filter { $0 != pod }),
            ]
            let shape = shapes[rng.index(below: shapes.count)]
            return [self.event(at, .partition(shape), for: self.span(at, maximum: 20, faultEnd: faultEnd, rng: &rng))]
        case .hold:
            let links = (0..<replicas).filter { $0 != pod }.map { SimNetwork.Link(from: pod, to: $0) }
            guard !links.isEmpty else { return [] }
            return [self.event(at, .hold(links), for: self.span(at, maximum: 15, faultEnd: faultEnd, rng: &rng))]
        case .netem:
            let profile = LinkProfile(
                latency: .milliseconds(Int64(rng.index(below: 301))), jitter: .milliseconds(Int64(rng.index(below: 51))),
                loss: Double(rng.index(below: 31)) / 100, duplicate: Double(rng.index(below: 6)) / 100, reorder: Double(rng.index(below: 11)) / 100)
            return [self.event(at, .netem(pods: self.somePods(replicas, most: 2, rng: &rng), profile: profile), for: self.span(at, maximum: 20, faultEnd: faultEnd, rng: &rng))]
        case .rollout:
            let surge = rng.index(below: 2)
            let unavailable = surge == 0 ? 1 : rng.index(below: 2)
            return [self.event(at, .rollout(maxUnavailable: unavailable, maxSurge: surge, minReadySeconds: .milliseconds(Int64(rng.index(below: 3) * 1_000))))]
        case .scale:
            let target = max(3, replicas - 2 + rng.index(below: 5))
            replicas = max(replicas, target)
            return [self.event(at, .scale(replicas: target))]
        }
    }

    /// Every check that must hold for this timeline. Checks that faults legitimately break are
    /// left out when those faults occur: `no-false-deaths` when a pod is cut off, frozen or on a
    /// very bad link (the others then rightly route around it). Requests must all
    /// succeed from `bound` after the recovery on; when every fault is a partition, over the whole
    /// run, except those whose entry pod could reach no holder of their endpoint.
    static func checks(
        for timeline: [Scenario.Event], network: LinkProfile = .lan, faultEnd: Duration, bound: Duration = Self.bound, duration: Duration = Self.duration,
        streams: Bool = false, rebalancing: Bool = false
    ) -> [Scenario.Check] {
        func check(_ name: String) -> Scenario.Check {
            Scenario.Check(name: name, from: nil, to: nil, detection: .seconds(15), within: bound)
        }
        var checks = ["invariants-hold", "no-ghost-members", "at-most-one-hop", "membership-converged", "endpoint-tables-converged", "agents-rehomed"].map(check)
        // Rebalancing settles after every disturbance and never moves an agent back and forth;
        // with enough agents for it to act, no pod ends above 1.2 × the mean.
        var oscillation = check("no-oscillation")
        oscillation.within = ScenarioDecoder.defaultWithin("no-oscillation")
        checks.append(oscillation)
        if rebalancing {
            var balanced = check("tunnels-balanced")
            balanced.within = ScenarioDecoder.defaultWithin("tunnels-balanced")
            checks.append(balanced)
        }
        let cuts = timeline.contains { event in
            switch event.action {
            case .partition, .hold: true
            default: false
            }
        }
        let isolates = cuts || timeline.contains { event in
            switch event.action {
            case .pause, .nemesis: return true
            case .netem(_, let profile):
                let path = profile.combined(with: profile).combined(with: network)
                return path.loss > 0.1 || path.latency + path.jitter > .milliseconds(100)
            default: return false
            }
        }
        if !isolates { checks.append(check("no-false-deaths")) }
        if !isolates { checks.append(check("route-only-to-live-owners")) }
        // Graceful shutdowns never cut a TCP connection early, whatever else happens. New
        // connections follow a moved agent within the settle time only where gossip reaches every
        // node that soon: on a LAN without faults that isolate (with 2 to 10 % loss, fuzzing saw
        // nodes learn of the new tunnel up to 16 s later; the old one still serves meanwhile).
        if streams { checks.append(check("streams-not-cut-early")) }
        if streams, !isolates, network == .lan { checks.append(check("new-streams-on-new-tunnels")) }
        var requests = check("no-failed-requests")
        requests.to = duration - .seconds(6)
        let onlyPartitions = timeline.allSatisfy { event in
            switch event.action {
            case .partition, .recover: true
            default: false
            }
        }
        if onlyPartitions {
            // Partitions alone fail no request whose entry pod can reach a holder (issue 21): the
            // whole run is checked, excusing only requests that no reachable pod could serve.
            requests.excuseUnreachable = true
        } else {
            requests.from = faultEnd + bound
        }
        checks.append(requests)
        return checks
    }
}
