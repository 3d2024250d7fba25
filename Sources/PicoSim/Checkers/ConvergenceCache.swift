import PicoModel

/// The last convergence verdicts `SimWorld.observe()` worked out, with what they read: a sample
/// whose readings are equal gets the same verdict again without comparing any tables (most
/// samples, 100 ms apart, find every node's membership as it was).
struct ConvergenceCache: Sendable {
    /// What a verdict reads of one pod: whether it runs, which process, and the change counts of
    /// its node's tables (`ClusterNode.invariantStamp`, which counts every write to them).
    struct Reading: Hashable, Sendable {
        var running: Bool
        var boot: Int
        var membership: UInt64?
        var tables: ClusterNode.InvariantStamp?
    }

    /// A verdict: the first pod whose view differs and how, nil when every view agrees.
    typealias Verdict = (pod: String, message: String)?

    /// `membershipDifference`'s last verdict, for these readings of membership alone.
    var membership: (readings: [Reading], verdict: Verdict)?
    /// `endpointDifference`'s last verdict, for these readings of every table.
    var endpoints: (readings: [Reading], verdict: Verdict)?
}

extension SimWorld {
    /// `membershipDifferenceInPlace()`, reused while no pod started, stopped or wrote its
    /// membership tables since the last time (`membershipDifference` reads running pods' UIDs,
    /// live-member counts and live members, all of which the membership stamp counts).
    mutating func cachedMembershipDifference() -> ConvergenceCache.Verdict {
        var readings: [ConvergenceCache.Reading] = []
        readings.reserveCapacity(self.pods.count)
        for index in self.pods.indices { readings.append(self.pods[index].convergenceReading(tables: false)) }
        if let cached = self.convergenceCache.membership, cached.readings == readings { return cached.verdict }
        let verdict = self.membershipDifferenceInPlace()
        self.convergenceCache.membership = (readings, verdict)
        return verdict
    }

    /// `endpointDifference()`, reused while no pod started, stopped or wrote its node's tables
    /// since the last time (it reads running pods' UIDs, tunnels and endpoint tables).
    mutating func cachedEndpointDifference() -> ConvergenceCache.Verdict {
        var readings: [ConvergenceCache.Reading] = []
        readings.reserveCapacity(self.pods.count)
        for index in self.pods.indices { readings.append(self.pods[index].convergenceReading(tables: true)) }
        if let cached = self.convergenceCache.endpoints, cached.readings == readings { return cached.verdict }
        let verdict = self.endpointDifference()
        self.convergenceCache.endpoints = (readings, verdict)
        return verdict
    }
}

extension SimPod {
    /// What a convergence verdict reads of this pod: its membership's stamp alone, or (`tables`)
    /// every table's. `mutating` only so a call on an array element reads the pod in place (a
    /// closure that reads `pods[index]` copied whole pods, nodes included).
    mutating func convergenceReading(tables: Bool) -> ConvergenceCache.Reading {
        switch self.node {
        case .some(let node):
            ConvergenceCache.Reading(running: self.state == .running, boot: self.boot, membership: tables ? nil : node.membership.invariantStamp,
                                     tables: tables ? node.invariantStamp : nil)
        case .none:
            ConvergenceCache.Reading(running: self.state == .running, boot: self.boot, membership: nil, tables: nil)
        }
    }
}
