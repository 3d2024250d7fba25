// ==== ---- Listed members in UID order, worked out once per change ---------------------------------

extension Membership {
    /// Listed members' UIDs in UID order, by status, as of `checkedState` reading `stamp`
    /// (bookkeeping, not state). Probe, gossip and leave rounds sample from these lists instead of
    /// copying and sorting every member record each round (at 100 members that sort was a tenth
    /// of the simulator's time); they are worked out again only after a write to the tables
    /// `checkedState` counts (`members` among them).
    struct MemberOrder: Sendable {
        var stamp: UInt64
        /// Alive members (not suspect).
        var alive: [NodeUID]
        /// Alive and suspect members.
        var live: [NodeUID]
        /// Members listed as dead (not left).
        var dead: [NodeUID]
        /// Live members not draining (rebalancing's members).
        var liveServing: [NodeUID]
        /// Alive members (not suspect) not draining (those rebalancing's mean counts).
        var aliveServing: [NodeUID]
    }

    /// The current `MemberOrder`, worked out again when `members` changed since the last call.
    mutating func memberOrder() -> MemberOrder {
        if let known = self.cachedMemberOrder, known.stamp == self.checkedState.value { return known }
        var alive: [NodeUID] = []
        var live: [NodeUID] = []
        var dead: [NodeUID] = []
        var liveServing: [NodeUID] = []
        var aliveServing: [NodeUID] = []
        alive.reserveCapacity(self.members.count)
        live.reserveCapacity(self.members.count)
        for (uid, member) in self.members {
            switch member.state.status {
            case .alive:
                alive.append(uid)
                live.append(uid)
                if !member.draining {
                    liveServing.append(uid)
                    aliveServing.append(uid)
                }
            case .suspect:
                live.append(uid)
                if !member.draining { liveServing.append(uid) }
            case .dead: dead.append(uid)
            case .left: continue
            }
        }
        alive.sort()
        live.sort()
        dead.sort()
        liveServing.sort()
        aliveServing.sort()
        let order = MemberOrder(stamp: self.checkedState.value, alive: alive, live: live, dead: dead, liveServing: liveServing, aliveServing: aliveServing)
        self.cachedMemberOrder = order
        return order
    }

    /// Up to `count` random alive members other than `excluded`, as (UID, gossip address).
    mutating func sampleAlive(count: Int, excluding excluded: NodeUID? = nil) -> [(uid: NodeUID, address: Address)] {
        var pool = self.memberOrder().alive
        if let excluded, let position = pool.firstIndex(of: excluded) { pool.remove(at: position) }
        return self.rng.sample(pool, count: count).compactMap { uid in self.members[uid].map { (uid, $0.info.gossipAddress) } }
    }

    /// Alive members in UID order, whole records, those `include` accepts.
    mutating func aliveMembers(where include: (Member) -> Bool = { _ in true }) -> [Member] {
        self.memberOrder().alive.compactMap { uid in self.members[uid].flatMap { include($0) ? $0 : nil } }
    }

    /// The proxy hosts of live members, sorted, without repeats. Worked out again only when a
    /// member became live or stopped being live (not when one turns suspect and back).
    public mutating func liveProxyHosts() -> [String] {
        if let known = self.cachedProxyHosts, known.stamp == self.liveSetChanges.value { return known.hosts }
        var hosts: [String] = []
        for uid in self.memberOrder().live {
            if let member = self.members[uid] { hosts.append(member.info.proxyAddress.host) }
        }
        let sorted = Self.sortedUnique(hosts)
        self.cachedProxyHosts = (self.liveSetChanges.value, sorted)
        return sorted
    }
}
