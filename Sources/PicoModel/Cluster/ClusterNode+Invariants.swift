// ==== ---- Checking invariants after every step, cheaply ------------------------------------------

extension ClusterNode {
    /// What every machine's invariant check reads, as change counts (see `ChangeCount`): while a
    /// node's stamp reads the same, only the O(1) checks can find something new.
    public struct InvariantStamp: Hashable, Sendable {
        /// `Membership.invariantStamp`.
        public var membership: UInt64
        /// `EndpointTable.invariantStamp`.
        public var endpoints: UInt64
        /// `UpstreamRegistry.invariantStamp`.
        public var upstreams: UInt64
    }

    /// The stamp of this node's state now. Meaningful only compared with an earlier stamp of the
    /// same node (a new process counts from zero again).
    public var invariantStamp: InvariantStamp {
        InvariantStamp(membership: self.membership.invariantStamp, endpoints: self.endpoints.invariantStamp, upstreams: self.upstreams.invariantStamp)
    }

    /// Exactly what `checkInvariants()` returns, for a caller that checks after every step: each
    /// machine, and then the checks across machines, first answer yes or no without building
    /// anything, skipping what reads only state unchanged since `stamp` (the `invariantStamp` of
    /// this node's last check that found nothing; nil: none). Only a no runs the whole check.
    public func checkInvariants(cleanAt stamp: InvariantStamp?) -> [String] {
        let consistent = self.membership.isConsistent(cleanAt: stamp?.membership)
            && self.endpoints.isConsistent(cleanAt: stamp?.endpoints)
            && self.upstreams.isConsistent(cleanAt: stamp?.upstreams)
            && (stamp == self.invariantStamp || self.machinesAgree)
        return consistent ? [] : self.checkInvariants()
    }

    /// The checks across machines of `checkInvariants`, for machines each consistent on its own
    /// (so the registry's endpoints are its tunnels' endpoints): every endpoint we publish above
    /// zero has that many tunnels, and we publish as many endpoints as have tunnels (so every
    /// endpoint with tunnels is published with its count); the table is ours; its owners are live.
    var machinesAgree: Bool {
        guard self.endpoints.localOwner == self.me.uid else { return false }
        var published = 0
        for (endpoint, entry) in self.endpoints.owners[self.endpoints.localOwner]?.entries ?? [:] where entry.count > 0 {
            guard self.upstreams.count(for: endpoint) == Int(entry.count) else { return false }
            published += 1
        }
        guard published == self.upstreams.endpointCount else { return false }
        return self.endpoints.owners.keys.allSatisfy { self.membership.isLive($0) }
    }
}
