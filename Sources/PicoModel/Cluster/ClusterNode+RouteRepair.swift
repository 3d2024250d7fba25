// ==== ---- Route repair: a lost last route triggers a state sync -------------------------------------

extension ClusterNode {
    /// Called with remote endpoint changes (a delta applied, or an owner gone dead or left). When
    /// one leaves an endpoint with no holder at all in our table, we may simply have missed the
    /// announcement of its replacement: gossip reaches each node with high probability, not
    /// certainty, and in a hand-over the old holder leaves moments after the new one appears
    /// (fuzz-399). A sync with a random alive member then restores the route within a round trip
    /// instead of answering 502 until the next push/pull.
    mutating func noteLostRoutes(_ changes: [EndpointTable.Change]) {
        guard !self.isMergingState, !self.routeRepairPending else { return }
        if changes.contains(where: { $0.count == 0 && $0.owner != self.me.uid && self.endpoints.owners(of: $0.endpoint).isEmpty }) {
            self.routeRepairPending = true
        }
    }

    /// (Also set when a request had to be forwarded to a draining holder: see `route`.)
    /// Opens the pending repair sync, at most one per probe interval (an endpoint that really went
    /// away makes every node sync once, each with a random member, so no node is flooded).
    mutating func runRouteRepair(now: Instant, into directives: inout [ClusterDirective]) {
        guard self.routeRepairPending, self.membership.phase == .running, now >= self.nextRouteRepairAt else { return }
        let me = self.me.uid
        let candidates = self.membership.aliveMembers { !$0.draining && $0.info.uid != me }
        self.routeRepairPending = false
        guard !candidates.isEmpty else { return }
        let peer = candidates[self.routingRNG.index(below: candidates.count)]
        self.openExchange(with: peer.info.gossipAddress, purpose: .pushPull, now: now, into: &directives)
        self.nextRouteRepairAt = now + self.configuration.membership.probeInterval
        directives.append(.event(.routeRepairSync(with: peer.info.gossipAddress)))
    }

    /// A request waits for a holder no live member is known to hold: sync with a random live
    /// member when `holderRepairDelay` has passed since the last such sync (see
    /// `holderRepairInterval`).
    mutating func noteHolderWanted(now: Instant) {
        let period = self.membership.pushPullPeriod()
        if self.lastHolderWantedSeenAt.map({ now - $0 >= period }) ?? true { self.holderRepairDelay = Self.holderRepairInterval }
        self.lastHolderWantedSeenAt = now
        guard self.lastHolderRepairAt.map({ now - $0 >= self.holderRepairDelay }) ?? true else { return }
        self.lastHolderRepairAt = now
        self.routeRepairPending = true
        self.holderRepairDelay = min(self.holderRepairDelay * 2, max(Self.holderRepairInterval, period))
    }
}
