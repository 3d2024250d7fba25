import PicoModel

/// What a scenario run produced: the notable events, figures, each check's verdict and the trace hash.
public struct ScenarioReport: Sendable {
    /// `(time, text)` of notable events (joins, deaths, leaves, timeline actions, rollout steps).
    public var timeline: [(Instant, String)]
    /// Named figures, in report order.
    public var figures: [(String, String)]
    /// Every check's verdict.
    public var results: [CheckResult]
    /// The seed the run used.
    public var seed: UInt64
    /// FNV-1a over every world event and node event.
    public var traceHash: String
    /// Every node event as `(time, pod name, canonical record)`, when the run was asked to keep them.
    public var trace: [(Instant, String, TraceRecord)] = []
    /// The run's membership figures (detection, joins, false suspicions and deaths, gossip bytes).
    public var membership: MembershipFigures?

    /// What the scenario expected.
    public var expect: Scenario.Expectation = .pass

    /// True when every check passed.
    public var passed: Bool { self.results.allSatisfy(\.passed) }

    /// True when the run showed what the scenario expects: every check passing, or the named
    /// check failing (a known open bug or a limitation).
    public var asExpected: Bool {
        guard let check = self.expect.expectedFailure?.check else { return self.passed }
        return self.results.contains { $0.name == check && !$0.passed }
    }

    /// The first failed check, if any.
    public var firstFailure: CheckResult? { self.results.first { !$0.passed } }
}

/// Runs a decoded scenario in a `SimWorld`.
public enum ScenarioRunner {
    /// Runs `scenario` to its end and checks it; `keepTrace` keeps every node event in the report.
    public static func run(_ scenario: Scenario, keepTrace: Bool = false) -> ScenarioReport {
        self.runWithWorld(scenario, keepTrace: keepTrace).report
    }

    /// Runs `scenario` and returns the report with the finished world (for `HTMLReport`).
    public static func runWithWorld(_ scenario: Scenario, keepTrace: Bool = false) -> (report: ScenarioReport, world: SimWorld) {
        let (world, run) = self.runWorld(scenario)
        let end = Instant.zero + scenario.duration
        let results = scenario.checks.map { self.checker(for: $0, trafficStart: run.trafficStart ?? end, end: end, minConns: scenario.rebalance.minConns, threshold: scenario.rebalance.threshold).check(world) }
        let membership = MembershipFigures(world, joinsAfter: run.trafficStart ?? end)
        var report = ScenarioReport(
            timeline: run.notes, figures: self.figures(world, scenario: scenario, trafficStart: run.trafficStart, membership: membership),
            results: results, seed: scenario.seed, traceHash: self.traceHash(world), expect: scenario.expect)
        report.membership = membership
        if keepTrace {
            report.trace = world.events.map { time, pod, event in (time, world.pods[pod].name, TraceRecord(event)) }
        }
        return (report, world)
    }

    /// What the runner noted while running: the timeline notes and when traffic started.
    public struct RunNotes: Sendable {
        /// `(time, text)` of timeline actions, rollout steps and membership changes, in time order.
        public var notes: [(Instant, String)]
        /// When the clients started (nil: the cluster never became ready for traffic).
        public var trafficStart: Instant?
    }

    /// Runs `scenario` to its end and returns the finished world (for reports and pictures).
    public static func runWorld(_ scenario: Scenario) -> (SimWorld, RunNotes) {
        var world = self.makeWorld(scenario)
        var notes: [(Instant, String)] = []
        let initial = Array(0..<scenario.pods)
        // Start-up: ordered (one after another, each once ready) or parallel.
        if scenario.startup == .parallel {
            for pod in initial { world.start(pod) }
        } else {
            world.start(0)
        }
        for agent in scenario.agents { world.addAgent(agent) }
        for (index, event) in scenario.timeline.enumerated() {
            world.scheduleAction(index * 2, at: Instant.zero + event.at)
            if let undo = event.duration { world.scheduleAction(index * 2 + 1, at: Instant.zero + event.at + undo) }
        }
        var trafficStart: Instant?
        // Convergence is sampled every 100 ms; above 64 pods (O(pods × members) per sample) every second.
        let observeEvery = scenario.pods <= 64 ? 1 : 10
        var ticks = 0
        let end = Instant.zero + scenario.duration
        while world.now < end {
            world.run(until: min(end, world.now + .milliseconds(100))) { world, id in
                let event = scenario.timeline[id / 2]
                let text = id % 2 == 0 ? self.perform(event.action, id: event.id, in: &world) : self.undo(event.action, id: event.id, in: &world)
                if case .stopClients = event.action {} else { world.noteDisturbance() }
                notes.append((world.now, text))
            }
            ticks += 1
            if ticks % observeEvery == 0 { world.observe() }
            if scenario.startup == .ordered, let next = initial.first(where: { world.pods[$0].boot == 0 }),
                next > 0, world.pods[next - 1].ready
            {
                world.start(next)
            }
            if trafficStart == nil, self.readyForTraffic(world, pods: initial, endpoints: scenario.agents.map(\.endpoint)) {
                trafficStart = world.now
                for client in scenario.clients { world.addClient(client) }
                notes.append((world.now, "traffic starts: \(scenario.clients.count) client(s), \(scenario.agents.count) agent(s)"))
            }
        }
        notes += self.membershipNotes(world)
        notes.sort { $0.0 < $1.0 }
        return (world, RunNotes(notes: notes, trafficStart: trafficStart))
    }

    /// Clients start once the initial pods are ready, every agent has a tunnel, and every pod
    /// can route every agent's endpoint (the start-up itself is not under test).
    static func readyForTraffic(_ world: SimWorld, pods: [Int], endpoints: [String]) -> Bool {
        guard pods.allSatisfy({ world.pods[$0].ready }), world.traffic.agents.allSatisfy({ !$0.machine.tunnels.isEmpty }) else { return false }
        return pods.allSatisfy { pod in
            let known = Set(world.pods[pod].node?.endpointView.map(\.endpoint) ?? [])
            return endpoints.allSatisfy { known.contains($0) }
        }
    }

    static func makeWorld(_ scenario: Scenario) -> SimWorld {
        var configuration = ClusterConfiguration(
            gossipAddress: Address(host: "0.0.0.0", port: 8003), proxyAddress: Address(host: "0.0.0.0", port: 8000),
            adminAddress: Address(host: "0.0.0.0", port: 8002), randomSeed: 0)
        configuration.join = ["pico"]
        configuration.gracePeriod = scenario.terminationGracePeriod
        configuration.rebalance = scenario.rebalance
        // Pods have upstream.tenants when any agent names a tenant (then every agent must).
        let added = scenario.timeline.flatMap { event -> [AgentSpec] in if case .addAgents(let agents) = event.action { agents } else { [] } }
        configuration.tenants = Set((scenario.agents + added).map(\.tenant).filter { !$0.isEmpty })
        var settings = SimWorld.Settings(node: configuration)
        settings.dnsLag = scenario.dnsLag
        settings.loadBalancerLag = scenario.loadBalancerLag
        settings.publishNotReadyAddresses = scenario.publishNotReadyAddresses
        // Invariant checks cost O(members + endpoint entries) per step: every step up to 9 pods
        // (the fuzzer's sizes), every 4th up to 64, then every 16th.
        settings.invariantCheckInterval = scenario.pods <= 9 ? 1 : scenario.pods <= 64 ? 4 : 16
        var capacity = scenario.pods
        var surge = 0
        for event in scenario.timeline {
            if case .scale(let replicas) = event.action { capacity = max(capacity, replicas) }
            if case .rollout(_, let maxSurge, _) = event.action { surge = max(surge, maxSurge) }
        }
        capacity += surge
        var world = SimWorld(podCount: capacity, seed: scenario.seed, settings: settings, network: scenario.network)
        world.defaultGossipKeyNames = scenario.gossipKeys
        world.nemesis.sniffing = scenario.timeline.contains { if case .nemesis = $0.action { true } else { false } }
        return world
    }

    static func names(_ pods: [Int], _ world: SimWorld) -> String {
        pods.map { world.pods[$0].name }.joined(separator: ", ")
    }

    /// Carries out a timeline action; `id` is the entry's stable ID (its own random stream).
    static func perform(_ action: Scenario.Action, id: Int, in world: inout SimWorld) -> String {
        switch action {
        case .rollout(let maxUnavailable, let maxSurge, let minReady):
            if maxSurge > 0 {
                world.startSurgeRollout(
                    maxSurge: maxSurge, maxUnavailable: maxUnavailable, minReadySeconds: minReady,
                    terminationGracePeriod: world.settings.node.gracePeriod)
            } else {
                world.startRollout(maxUnavailable: maxUnavailable, minReadySeconds: minReady, terminationGracePeriod: world.settings.node.gracePeriod)
            }
            return "rollout starts (maxUnavailable \(maxUnavailable), maxSurge \(maxSurge), minReadySeconds \(DurationText.format(minReady)))"
        case .crash(let pods):
            for pod in pods { world.stopByTimeline(pod, graceful: false) }
            return "crash \(self.names(pods, world))"
        case .restart(let pods):
            for pod in pods where !world.pods[pod].state.hasProcess { world.start(pod) }
            return "restart \(self.names(pods, world))"
        case .terminate(let pods):
            for pod in pods { world.stopByTimeline(pod, graceful: true) }
            return "SIGTERM \(self.names(pods, world))"
        case .pause(let pods):
            for pod in pods { world.pause(pod) }
            return "pause \(self.names(pods, world))"
        case .resume(let pods):
            for pod in pods { world.resume(pod) }
            return "resume \(self.names(pods, world))"
        case .partition(let shape):
            var rng = world.streams.stream("faults/event/\(id)")
            let links = shape.links(among: Array(world.pods.indices), rng: &rng)
            world.network.block(links)
            world.reachabilityMayHaveChanged()
            return "partition \(shape): \(Self.describe(links, world))"
        case .heal:
            world.network.healAll()
            world.reachabilityMayHaveChanged()
            return "heal every link"
        case .hold(let links):
            world.hold(links)
            return "hold \(links.count) links (datagrams wait)"
        case .release(let links):
            world.release(links)
            return "release \(links.count) held links"
        case .netem(let pods, let profile):
            for pod in pods { world.network.impair(pod, with: profile) }
            return "netem on \(self.names(pods, world)): +\(DurationText.format(profile.latency)), loss \(profile.loss * 100)%"
        case .clearNetem(let pods):
            for pod in pods { world.network.impair(pod, with: nil) }
            return "netem cleared on \(self.names(pods, world))"
        case .scale(let replicas):
            let running = world.pods.indices.filter { world.pods[$0].state.hasProcess }
            for pod in 0..<replicas where !world.pods[pod].state.hasProcess { world.start(pod) }
            for pod in running.reversed() where pod >= replicas { world.terminate(pod) }
            world.stoppedByTimeline = world.stoppedByTimeline.filter { $0 < replicas }
            return "scale to \(replicas) replicas"
        case .stopClients:
            world.stopClients()
            return "clients stop"
        case .recover:
            let attacking = world.nemesis.isAttacking
            let restarted = world.recover()
            return "recover: \(attacking ? "attacks stopped, " : "")links healed and released, impairments cleared, pods resumed, \(restarted) crashed pod(s) restarted"
        case .addAgents(let agents):
            for agent in agents { world.addAgent(agent) }
            let first = agents.first.map { "\($0.endpoint)\($0.tenant.isEmpty ? "" : " of tenant \($0.tenant)")" } ?? ""
            return "\(agents.count) agent(s) for \(first) start"
        case .gossipKeys(let pods, let keys):
            let targets = pods.isEmpty ? Array(world.pods.indices) : pods
            world.setGossipKeys(keys, pods: targets, everyPod: pods.isEmpty)
            return "gossip keys of \(pods.isEmpty ? "every pod" : self.names(pods, world)) now [\(keys.joined(separator: ", "))]"
        case .nemesis(let attack):
            world.startNemesis(attack, id: id)
            let targets = attack.pods.isEmpty ? "every pod" : self.names(attack.pods, world)
            return "nemesis starts: \(YAMLFields.decimal(attack.rate)) forged inputs per second to \(targets) (\(attack.kinds.map(\.rawValue).joined(separator: ", ")))"
        }
    }

    static func undo(_ action: Scenario.Action, id: Int, in world: inout SimWorld) -> String {
        switch action {
        case .partition: return self.perform(.heal, id: id, in: &world)
        case .pause(let pods): return self.perform(.resume(pods), id: id, in: &world)
        case .hold(let links): return self.perform(.release(links), id: id, in: &world)
        case .netem(let pods, _): return self.perform(.clearNetem(pods), id: id, in: &world)
        case .nemesis:
            world.stopNemesis(id: id)
            return "nemesis stops"
        default: return "nothing to undo"
        }
    }

    /// The links of a partition as `pico-0 ↔ pico-2, pico-1 → pico-3` (both ways, or one way),
    /// sorted; "no link" when none.
    static func describe(_ links: [SimNetwork.Link], _ world: SimWorld) -> String {
        let cut = Set(links.map { [$0.from, $0.to] })
        var parts: [String] = []
        for link in cut.sorted(by: { $0.lexicographicallyPrecedes($1) }) {
            let back = cut.contains([link[1], link[0]])
            if back, link[0] > link[1] { continue }
            parts.append("\(world.pods[link[0]].name) \(back ? "↔" : "→") \(world.pods[link[1]].name)")
        }
        return parts.isEmpty ? "no link cut" : "\(parts.count) cut: " + parts.joined(separator: ", ")
    }

    static func checker(for check: Scenario.Check, trafficStart: Instant, end: Instant, minConns: Int, threshold: Double) -> Checker {
        switch check.name {
        case "no-failed-requests":
            let from = check.from.map { Instant.zero + $0 } ?? trafficStart
            let to = check.to.map { Instant.zero + $0 } ?? end
            return .noFailedRequests(windows: from <= to ? [from...to] : [], excuseUnreachable: check.excuseUnreachable)
        case "route-only-to-live-owners": return .routeOnlyToLiveOwners(detection: check.detection)
        case "at-most-one-hop": return .atMostOneHop
        case "membership-converged": return .membershipConverged(within: check.within)
        case "endpoint-tables-converged": return .endpointTablesConverged(within: check.within)
        case "no-ghost-members": return .noGhostMembers
        case "agents-rehomed": return .agentsRehomed(within: check.within)
        case "no-false-deaths": return .noFalseDeaths
        case "one-tenant-per-endpoint": return .oneTenantPerEndpoint
        case "streams-not-cut-early": return .streamsNotCutEarly
        case "new-streams-on-new-tunnels": return .newStreamsOnNewTunnels
        case "tunnels-balanced": return .tunnelsBalanced(within: check.within, ratio: check.ratio, moves: check.moves, floor: minConns)
        case "no-oscillation": return .noOscillation(within: check.within, ratio: 1 + threshold, floor: minConns)
        default: return .invariantsHold
        }
    }
}
