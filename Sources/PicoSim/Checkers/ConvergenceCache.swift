import PicoModel

/// What `SimWorld.observe()` worked out at earlier samples, with what it read (change counts of
/// the nodes' tables, `ClusterNode.invariantStamp`, which count every write to them): a sample
/// whose readings are equal reuses the result instead of comparing tables again. Most samples,
/// 100 ms apart, find most nodes' tables as they were.
struct ConvergenceCache: Sendable {
    /// What a result reads of one pod: whether it runs, which process, and the change counts of
    /// the tables it reads (nil: not read, or no process).
    struct Reading: Hashable, Sendable {
        var running: Bool
        var boot: Int
        var membership: UInt64?
        var upstreams: UInt64?
    }

    /// A verdict: the first pod whose view differs and how, nil when every view agrees.
    typealias Verdict = (pod: String, message: String)?

    /// `membershipDifference`'s last verdict, for these readings of membership.
    var membership: (readings: [Reading], verdict: Verdict)?
    /// The last `tunnelCounts()`, for these readings of membership (UIDs) and tunnels.
    var tunnels: (readings: [Reading], counts: [String: [NodeUID: UInt32]])?
    /// Per pod: whether its endpoint table equalled `tunnels.counts` when its process was `boot`
    /// and the table's change count read `stamp`. Emptied whenever the counts change.
    var tableAgrees: [Int: (boot: Int, stamp: UInt64?, agrees: Bool)] = [:]
}

extension SimWorld {
    /// `membershipDifferenceInPlace()`, reused while no pod started, stopped or wrote its
    /// membership tables since the last time (`membershipDifference` reads running pods' UIDs,
    /// live-member counts and live members, all of which the membership stamp counts).
    mutating func cachedMembershipDifference() -> ConvergenceCache.Verdict {
        var readings: [ConvergenceCache.Reading] = []
        readings.reserveCapacity(self.pods.count)
        for index in self.pods.indices { readings.append(self.pods[index].convergenceReading(upstreams: false)) }
        if let cached = self.convergenceCache.membership, cached.readings == readings { return cached.verdict }
        let verdict = self.membershipDifferenceInPlace()
        self.convergenceCache.membership = (readings, verdict)
        return verdict
    }

    /// `endpointDifference()`, in two reused parts: the tunnels that exist, counted again only
    /// when a pod started, stopped, changed UID or wrote its registry; and each running pod's
    /// verdict, compared again only when those counts changed or the pod wrote its table.
    mutating func cachedEndpointDifference() -> ConvergenceCache.Verdict {
        var readings: [ConvergenceCache.Reading] = []
        readings.reserveCapacity(self.pods.count)
        for index in self.pods.indices { readings.append(self.pods[index].convergenceReading(upstreams: true)) }
        if self.convergenceCache.tunnels?.readings != readings {
            let counts = self.tunnelCounts()
            if self.convergenceCache.tunnels?.counts != counts { self.convergenceCache.tableAgrees = [:] }
            self.convergenceCache.tunnels = (readings, counts)
        }
        guard let expected = self.convergenceCache.tunnels?.counts else { return nil }
        for index in self.pods.indices where self.pods[index].state == .running {
            let boot = self.pods[index].boot
            let stamp = self.pods[index].endpointStamp()
            if let known = self.convergenceCache.tableAgrees[index], known.boot == boot, known.stamp == stamp {
                if known.agrees { continue }
            } else {
                let agrees = self.pods[index].endpointCounts() == expected
                self.convergenceCache.tableAgrees[index] = (boot, stamp, agrees)
                if agrees { continue }
            }
            return self.endpointMismatch(at: index, seen: self.pods[index].endpointCounts(), expected: expected)
        }
        return nil
    }
}

extension SimPod {
    /// What a convergence result reads of this pod: its membership's change count and, with
    /// `upstreams`, its registry's. `mutating` only so a call on an array element reads the pod
    /// in place (a closure that read `pods[index]` copied whole pods, nodes included).
    mutating func convergenceReading(upstreams: Bool) -> ConvergenceCache.Reading {
        // Optional chaining, not `case .some(let node)`: binding the node copied it whole.
        ConvergenceCache.Reading(
            running: self.state == .running, boot: self.boot, membership: self.node?.membership.invariantStamp,
            upstreams: upstreams ? self.node?.upstreams.invariantStamp : nil)
    }

    /// The change count of this pod's endpoint table (nil without a process); `mutating` for the
    /// same reason as `convergenceReading`.
    mutating func endpointStamp() -> UInt64? {
        self.node?.endpoints.invariantStamp
    }
}
