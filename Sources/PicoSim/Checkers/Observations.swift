import PicoModel

/// What the world looked like over time, sampled by `SimWorld.observe()` (the scenario runner
/// calls it every 100 ms of simulated time). Checks with a time bound (`within:`) read these:
/// when did membership and endpoint tables last become, and stay, converged; how long was each
/// agent without a working tunnel while the load balancer had a pod to send it to.
public struct Observations: Sendable {
    /// A moment when the views differed from the truth: when, which pod, how.
    public struct Difference: Sendable {
        /// When it was sampled.
        public var time: Instant
        /// The pod whose view differed.
        public var pod: String
        /// How it differed.
        public var message: String
    }

    /// A period an agent had no working tunnel although a pod was believed ready.
    public struct Outage: Sendable {
        /// The agent's name.
        public var agent: String
        /// When the period started.
        public var from: Instant
        /// How long it lasted (up to the last sample when still open).
        public var length: Duration
    }

    /// Number of samples taken.
    public internal(set) var samples = 0
    /// Membership has equalled the truth at every sample since this time (nil: not at the last).
    public internal(set) var membershipConvergedSince: Instant?
    /// The last sample at which membership differed.
    public internal(set) var lastMembershipDifference: Difference?
    /// Endpoint tables have equalled the tunnels at every sample since this time.
    public internal(set) var endpointsConvergedSince: Instant?
    /// The last sample at which an endpoint table differed.
    public internal(set) var lastEndpointDifference: Difference?
    /// The longest agent outage seen.
    public internal(set) var longestOutage: Outage?
    /// The last time anything disturbed the cluster: a timeline action, a process start or stop.
    public internal(set) var lastDisturbance: Instant = .zero
    /// The last time a tunnel opened or closed (an agent connected, a drained tunnel was released
    /// or broke): endpoint tables converge towards the tunnels as they are from then on. A drain
    /// that long-lived TCP connections hold may release its tunnels tens of seconds after the
    /// SIGTERM that was the last disturbance.
    public internal(set) var lastTunnelChange: Instant = .zero
    var outageStarts: [Instant?] = []
    /// Every disturbance time noted (`noteDisturbance`), in order; process starts and stops are
    /// in `SimWorld.starts` and `.stops`.
    public internal(set) var disturbances: [Instant] = []
    /// Tunnels per pod over time (`TunnelSample`), one sample every `tunnelSampleInterval`.
    public internal(set) var tunnelSamples: [TunnelSample] = []
    /// The time between tunnel samples: one second, doubled (and every other sample dropped)
    /// whenever `maxTunnelSamples` are kept, so a long run stays bounded.
    public internal(set) var tunnelSampleInterval: Duration = .seconds(1)
    /// Tunnel samples kept at most.
    public static let maxTunnelSamples = 2_048
}

/// How many tunnels each pod held at one moment.
public struct TunnelSample: Hashable, Sendable {
    /// When.
    public var time: Instant
    /// Tunnels per pod ordinal; nil for a pod that was not running and ready (starting, shutting
    /// down, stopped): rebalancing counts only active members, and so do the checks.
    public var perPod: [Int?]

    /// The active pods' counts.
    public var counts: [Int] { self.perPod.compactMap { $0 } }
    /// The mean over active pods (0 without any).
    public var mean: Double {
        let counts = self.counts
        return counts.isEmpty ? 0 : Double(counts.reduce(0, +)) / Double(counts.count)
    }
    /// The fewest moves that would bring every active pod to at most the mean (rounded up).
    public var excessOverMean: Int {
        let counts = self.counts
        guard !counts.isEmpty else { return 0 }
        let ceiling = (counts.reduce(0, +) + counts.count - 1) / counts.count
        return counts.reduce(0) { $0 + max(0, $1 - ceiling) }
    }
}

extension SimWorld {
    /// Marks now as a disturbance (a fault, a heal, a rollout step): bounded convergence checks
    /// measure from the last one.
    public mutating func noteDisturbance() {
        self.observations.lastDisturbance = max(self.observations.lastDisturbance, self.now)
        if self.observations.disturbances.last != self.now { self.observations.disturbances.append(self.now) }
    }

    /// Every disturbance up to now, sorted: noted ones, process starts and stops.
    public var disturbanceTimes: [Instant] {
        (self.observations.disturbances + self.starts.map(\.time) + self.stops.map(\.time)).sorted()
    }

    /// Samples tunnels per active pod when a sample is due.
    mutating func sampleTunnels(_ seen: inout Observations) {
        if let last = seen.tunnelSamples.last, self.now - last.time < seen.tunnelSampleInterval { return }
        var perPod: [Int?] = self.pods.indices.map { self.pods[$0].state == .running && self.pods[$0].ready ? 0 : nil }
        // Summed per pod: the dictionary's order leaks nowhere.
        for placement in self.traffic.placements.values where self.isCurrent(placement.pod, placement.boot) {
            if let count = perPod[placement.pod] { perPod[placement.pod] = count + 1 }
        }
        seen.tunnelSamples.append(TunnelSample(time: self.now, perPod: perPod))
        if seen.tunnelSamples.count >= Observations.maxTunnelSamples {
            seen.tunnelSamples = seen.tunnelSamples.enumerated().compactMap { $0.offset % 2 == 0 ? $0.element : nil }
            seen.tunnelSampleInterval = seen.tunnelSampleInterval * 2
        }
    }

    /// Marks now as a change of the tunnels that exist.
    mutating func noteTunnelChange() {
        self.observations.lastTunnelChange = self.now
    }

    /// Samples convergence and agent outages now.
    public mutating func observe() {
        var seen = self.observations
        seen.samples += 1
        for time in [self.starts.last?.time, self.stops.last?.time].compactMap({ $0 }) {
            seen.lastDisturbance = max(seen.lastDisturbance, time)
        }
        if let difference = self.cachedMembershipDifference() {
            seen.membershipConvergedSince = nil
            seen.lastMembershipDifference = Observations.Difference(time: self.now, pod: difference.pod, message: difference.message)
        } else if seen.membershipConvergedSince == nil {
            seen.membershipConvergedSince = self.now
        }
        // Endpoint tables are only compared once membership agrees (cheaper, and they cannot agree before).
        if let difference = seen.membershipConvergedSince == nil ? ("", "membership differs") : self.cachedEndpointDifference() {
            seen.endpointsConvergedSince = nil
            seen.lastEndpointDifference = Observations.Difference(time: self.now, pod: difference.pod, message: difference.message)
        } else if seen.endpointsConvergedSince == nil {
            seen.endpointsConvergedSince = self.now
        }
        self.observeAgents(&seen)
        self.sampleTunnels(&seen)
        self.observations = seen
        if self.byteSamples.last.map({ self.now - $0.time >= .seconds(10) }) ?? true {
            let running = self.pods.reduce(0) { $0 + ($1.state == .running ? 1 : 0) }
            self.byteSamples.append((self.now, self.bytesSent.reduce(0, +), running))
        }
    }

    func observeAgents(_ seen: inout Observations) {
        if seen.outageStarts.count < self.traffic.agents.count {
            seen.outageStarts += Array(repeating: nil, count: self.traffic.agents.count - seen.outageStarts.count)
        }
        // Worked out once per sample, and agents read by index (binding each agent copied it).
        let anyPodBehindLoadBalancer = self.anyPodBehindLoadBalancer
        for index in self.traffic.agents.indices {
            if !anyPodBehindLoadBalancer || self.hasWorkingTunnel(index) {
                seen.outageStarts[index] = nil
                continue
            }
            let from = seen.outageStarts[index] ?? self.now
            seen.outageStarts[index] = from
            let length = self.now - from
            if length > (seen.longestOutage?.length ?? .zero) {
                seen.longestOutage = Observations.Outage(agent: self.traffic.agents[index].spec.name, from: from, length: length)
            }
        }
    }

    /// True when the load balancer would send a connection to a running pod.
    var anyPodBehindLoadBalancer: Bool {
        self.traffic.believedReady.indices.contains { self.traffic.believedReady[$0] && self.pods[$0].state == .running }
    }

    /// True when agent `agent` holds a tunnel that is not moving, on a running process.
    func hasWorkingTunnel(_ agent: Int) -> Bool {
        // `traffic.tunnels(of:)` without building its list.
        for tunnel in self.traffic.agents[agent].machine.tunnels where !tunnel.moving {
            guard let placement = self.traffic.placements[tunnel.id] else { continue }
            if self.isCurrent(placement.pod, placement.boot), self.pods[placement.pod].state == .running { return true }
        }
        return false
    }

    /// The first running pod whose live members are not exactly the running pods' UIDs.
    func membershipDifference() -> (pod: String, message: String)? {
        // A checker asks once per run; the observer, every step, reads in place.
        var world = self
        return world.membershipDifferenceInPlace()
    }

    /// `membershipDifference`, reading each node in place (a node read into a local is a copy of
    /// every table, which cost a tenth of the fuzzer's time).
    mutating func membershipDifferenceInPlace() -> (pod: String, message: String)? {
        let running = self.pods.indices.filter { self.pods[$0].state == .running }
        var expected: [NodeUID] = []
        for index in running { if let uid = self.pods[index].nodeInfo()?.uid { expected.append(uid) } }
        for index in running {
            guard let view = self.pods[index].liveView(of: expected) else { continue }
            if view.others + 1 != expected.count {
                return (self.pods[index].name, "sees \(view.others + 1) live members, \(expected.count) are running")
            }
            if let missing = view.missing {
                return (self.pods[index].name, "does not see running \(missing) as live")
            }
        }
        return nil
    }

    /// The first running pod whose endpoint table differs from the tunnels that exist.
    func endpointDifference() -> (pod: String, message: String)? {
        var world = self
        let expected = world.tunnelCounts()
        for index in world.pods.indices where world.pods[index].state == .running {
            // The node's own table, compared whole (no sorted copies).
            let seen = world.pods[index].endpointCounts()
            if seen != expected { return world.endpointMismatch(at: index, seen: seen, expected: expected) }
        }
        return nil
    }

    /// The tunnels that exist: running pods' tunnels counted per endpoint and holder UID.
    /// `mutating` only so each pod is read in place.
    mutating func tunnelCounts() -> [String: [NodeUID: UInt32]] {
        var expected: [String: [NodeUID: UInt32]] = [:]
        for index in self.pods.indices { self.pods[index].countTunnels(into: &expected) }
        return expected
    }

    /// How pod `index`'s table `seen` differs from `expected`, as `endpointDifference` says it.
    func endpointMismatch(at index: Int, seen: [String: [NodeUID: UInt32]], expected: [String: [NodeUID: UInt32]]) -> (pod: String, message: String) {
        let differing = Set(seen.keys).union(expected.keys).sorted().first { seen[$0] != expected[$0] } ?? "?"
        return (self.pods[index].name, "endpoint table differs from the tunnels that exist (first: \(differing))")
    }
}
