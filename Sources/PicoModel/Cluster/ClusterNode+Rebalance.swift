// ==== ---- Rebalancing: moving tunnels off a node holding more than its share ----------------------

/// What rebalancing did on one node (for metrics; counts since the process started).
public struct RebalanceFigures: Hashable, Sendable {
    /// Agents asked to move because this node held more than its share.
    public var movesAsked = 0
    /// Moved tunnels released after their endpoint was served elsewhere.
    public var movesDone = 0
    /// New tunnels refused because this node held well above the mean.
    public var tunnelsRefused = 0
}

extension ClusterNode {
    /// Tunnels per member as this node's endpoint table counts them (every owner it knows,
    /// itself included; members with no entry are absent).
    public func tunnelTotals() -> [NodeUID: Int] {
        // Sums are order-independent: the owners' order leaks nowhere.
        var totals: [NodeUID: Int] = [:]
        for (owner, state) in self.endpoints.owners {
            totals[owner] = state.entries.values.reduce(0) { $0 &+ Int($1.count) }
        }
        return totals
    }

    /// The cluster as the rebalancing rule sees it now: active members (alive, not suspect, not
    /// draining, this node included) and their tunnels.
    public func rebalanceCensus() -> Rebalancer.Census {
        let totals = self.tunnelTotals()
        var members = [self.me.uid]
        for member in self.membership.memberList where member.state.status == .alive && !member.draining {
            members.append(member.info.uid)
        }
        members.sort()
        let local = self.upstreams.tunnelCount
        let memberTotals = members.map { $0 == self.me.uid ? local : totals[$0] ?? 0 }
        return Rebalancer.Census(local: local, moving: self.moves.count, memberTotals: memberTotals, members: members)
    }

    /// The rebalancing timer fired: evaluate the rule (only while ready: neither joining nor
    /// draining), ask the agents it picks to move, and arm the next evaluation.
    mutating func runRebalance(now: Instant, into directives: inout [ClusterDirective]) {
        guard self.rebalancer.settings.isEnabled, self.lifecycle.phase != .draining else { return }
        directives.append(.schedule(.rebalance, at: now + Rebalancer.interval))
        guard self.lifecycle.phase == .ready else { return }
        let wanted = self.rebalancer.evaluate(self.rebalanceCensus(), now: now)
        if wanted > 0 { self.askMoves(wanted, now: now, into: &directives) }
    }

    /// Asks up to `wanted` agents to move, one tunnel per endpoint at a time: idle tunnels first,
    /// then those of the endpoints with the most tunnels here (so an endpoint's agents spread),
    /// oldest first. A tunnel whose agent cannot reconnect first (Piko's) is moved only while
    /// its endpoint is served besides it.
    mutating func askMoves(_ wanted: Int, now: Instant, into directives: inout [ClusterDirective]) {
        var movingEndpoints = Set(self.moves.keys.compactMap { self.upstreams.tunnel($0)?.endpoint })
        let candidates = self.upstreams.allTunnels
            .filter { !$0.isDraining && !movingEndpoints.contains($0.endpoint) }
            .map { (tunnel: $0, here: self.upstreams.count(for: $0.endpoint)) }
            .sorted { ($0.tunnel.inFlight > 0 ? 1 : 0, -$0.here, $0.tunnel.id) < ($1.tunnel.inFlight > 0 ? 1 : 0, -$1.here, $1.tunnel.id) }
        var asked = 0
        for (tunnel, _) in candidates where asked < wanted && !movingEndpoints.contains(tunnel.endpoint) {
            if !tunnel.reconnectsFirst, !self.endpointServed(tunnel.endpoint, besides: tunnel.id) { continue }
            guard self.upstreams.markDraining(tunnel.id) else { continue }
            movingEndpoints.insert(tunnel.endpoint)
            self.moves[tunnel.id] = now
            self.rebalanceFigures.movesAsked += 1
            asked += 1
            directives.append(.event(.rebalanceMoveAsked(tunnel.id, endpoint: tunnel.endpoint)))
            directives.append(.tellAgentToMove(tunnel.id))
        }
    }

    /// Why a new tunnel for `endpoint` is refused by rebalancing (this node holds well above the
    /// mean while a member holds less, and the endpoint is served already, so the agent's retry
    /// through the load balancer finds a lighter node); nil when it is taken. An endpoint nobody
    /// serves is always taken: refusing it would lengthen an outage.
    func rebalanceRefusal(endpoint: String) -> String? {
        guard self.rebalancer.settings.isEnabled, self.lifecycle.phase == .ready, self.endpointServed(endpoint, besides: nil) else { return nil }
        let census = self.rebalanceCensus()
        guard self.rebalancer.refusesNewTunnel(census) else { return nil }
        return "this node holds \(census.staying) tunnels, well above the cluster mean of \(census.roundedMean): reconnect to a lighter node"
    }

    /// True when `endpoint` has a tunnel that takes new requests besides `besides`: one here not
    /// asked to move, or one on a live member that is neither draining nor suspect (of the
    /// endpoint's holding tenant).
    func endpointServed(_ endpoint: String, besides: TunnelID?) -> Bool {
        for id in self.upstreams.tunnelIDs(for: endpoint) where id != besides {
            if self.upstreams.tunnel(id)?.isDraining == false { return true }
        }
        return self.remoteUpstreams(for: endpoint).contains { !$0.draining && !$0.suspect }
    }

    /// Notes since when the endpoint of `tunnel` (asked to move) is served besides it; nil while
    /// it is not. Other nodes learn of a replacement a few gossip rounds after we do, so a moved
    /// tunnel is released only `handoverSettleTime` after this.
    mutating func handoverSince(_ tunnel: UpstreamRegistry.Tunnel, now: Instant) -> Instant? {
        if self.endpointServed(tunnel.endpoint, besides: tunnel.id) {
            if self.handoverSeen[tunnel.id] == nil { self.handoverSeen[tunnel.id] = now }
        } else {
            self.handoverSeen[tunnel.id] = nil
        }
        return self.handoverSeen[tunnel.id]
    }

    /// Releases every idle moved tunnel whose endpoint has been served besides it for
    /// `handoverSettleTime` (make-before-break: the agent's replacement, or another agent's tunnel).
    mutating func advanceMoves(now: Instant, into directives: inout [ClusterDirective]) {
        let settle = self.configuration.handoverSettleTime
        var nextCheck: Instant?
        for id in self.moves.keys.sorted() {
            guard let tunnel = self.upstreams.tunnel(id) else {
                self.moves[id] = nil
                continue
            }
            guard let seen = self.handoverSince(tunnel, now: now) else { continue }
            if now < seen + settle {
                nextCheck = min(nextCheck ?? seen + settle, seen + settle)
            } else if tunnel.inFlight == 0 {
                self.rebalanceFigures.movesDone += 1
                directives.append(.event(.rebalanceMoveDone(id, endpoint: tunnel.endpoint)))
                directives.append(.closeTunnel(id))
                self.removeTunnel(id, into: &directives)
            }
        }
        if let nextCheck { directives.append(.schedule(.handoverCheck, at: nextCheck)) }
    }
}
