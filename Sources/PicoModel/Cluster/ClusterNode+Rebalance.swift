// ==== ---- Rebalancing: moving tunnels off a node holding more than its share ----------------------

/// What rebalancing did on one node (for metrics; counts since the process started).
public struct RebalanceFigures: Hashable, Sendable {
    /// Agents asked to move because this node held more than its share.
    public var movesAsked = 0
    /// Moved tunnels released after their endpoint was served elsewhere.
    public var movesDone = 0
    /// Tunnels refused by rebalancing: replacements of moved tunnels, and Piko agents
    /// (`ClusterNode.rebalanceRefusal`).
    public var tunnelsRefused = 0
}

/// A move rebalancing asked for, until its tunnel is released.
struct MoveProgress: Hashable, Sendable {
    /// Where the move stands.
    enum Phase: Hashable, Sendable {
        /// A Pico agent's replacement has not shown yet. `lowWater`: the fewest tunnels that
        /// served the endpoint besides the moved ones since the move was asked (this node's
        /// unmoved ones and active members' counts). The replacement shows as a count above it:
        /// another node's release lowers the count first, and a count that merely returns to where
        /// it was is no replacement. So the agent rarely finds its old tunnel gone before it has a
        /// new one (it would dial afresh and land anywhere, even on a heavy node). Another agent's
        /// replacement of the same endpoint landing meanwhile counts too: then the old tunnel
        /// goes early, while the endpoint is served besides it.
        case awaitingReplacement(lowWater: Int)
        /// The replacement showed (released `handoverSettleTime` after the hand-over was seen,
        /// once idle), or the agent is Piko's, moved only while another tunnel of its endpoint
        /// stays here (released once idle).
        case replaced
    }

    /// When the move was asked.
    var askedAt: Instant
    /// Where it stands.
    var phase: Phase

    /// True while the move counts as under way at `now`: it holds its endpoint (one move of an
    /// endpoint at a time), counts among the node's moves in progress, and keeps a round going.
    /// A Pico agent's move whose replacement has not shown within `Rebalancer.replacementWait`
    /// stops counting (its tunnel still waits for evidence before it goes), and any move after
    /// `Rebalancer.moveLimit` (its tunnel carries long streams).
    func isUnderWay(at now: Instant) -> Bool {
        switch self.phase {
        case .awaitingReplacement: now - self.askedAt < Rebalancer.replacementWait
        case .replaced: now - self.askedAt < Rebalancer.moveLimit
        }
    }
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

    /// The cluster as the rebalancing rule sees it now: the tunnels of active members (alive, not
    /// suspect, not draining, this node included), and the live members not draining (suspects
    /// too: a suspicion that clears on a lossy network is no change of members, and restarting the
    /// hold for each would keep a node from ever acting there).
    public mutating func rebalanceCensus(now: Instant) -> Rebalancer.Census {
        let stamp = self.endpoints.invariantStamp
        let totals: [NodeUID: Int]
        if let cached = self.tunnelTotalsCache, cached.stamp == stamp {
            totals = cached.totals
        } else {
            totals = self.tunnelTotals()
            self.tunnelTotalsCache = (stamp, totals)
        }
        let local = self.upstreams.tunnelCount
        // A move still waiting for its streams to end after `Rebalancer.moveLimit` no longer counts
        // as moving: tunnels carrying long TCP connections would otherwise stop the round. Of the
        // others, those no longer under way (a replacement another node's release hid) leave room
        // for more moves.
        let moving = self.moves.values.reduce(0) { $0 + (now - $1.askedAt < Rebalancer.moveLimit ? 1 : 0) }
        let underWay = self.movesUnderWay(at: now)
        // The membership's lists, worked out once per change of its tables (copying and sorting
        // every member record four times a second cost a 200-pod simulation three quarters of
        // its time).
        let order = self.membership.memberOrder()
        var members = order.liveServing
        members.append(self.me.uid)
        members.sort()
        // This node counts its own tunnels without those asked to move: their replacements count
        // on the nodes they land on, and counting both would raise the mean while moves go on.
        var memberTotals = [max(local - moving, 0)]
        memberTotals.reserveCapacity(order.aliveServing.count + 1)
        for uid in order.aliveServing { memberTotals.append(totals[uid] ?? 0) }
        return Rebalancer.Census(local: local, moving: moving, underWay: underWay, memberTotals: memberTotals, members: members)
    }

    /// The rebalancing timer fired: evaluate the rule (only while ready: neither joining nor
    /// draining), ask the agents it picks to move, and arm the next evaluation.
    mutating func runRebalance(now: Instant, into directives: inout [ClusterDirective]) {
        guard self.rebalancer.settings.isEnabled, self.lifecycle.phase != .draining else { return }
        directives.append(.schedule(.rebalance, at: now + Rebalancer.interval))
        guard self.lifecycle.phase == .ready else { return }
        let census = self.rebalanceCensus(now: now)
        self.lastCensus = census
        let wanted = self.rebalancer.evaluate(census, now: now)
        guard wanted > 0 else { return }
        let asked = self.askMoves(wanted, now: now, into: &directives)
        self.rebalancer.moved(asked, of: wanted, inProgress: self.movesUnderWay(at: now), now: now)
    }

    /// Asks up to `wanted` agents to move, one tunnel per endpoint at a time (a Pico agent's until
    /// its replacement shows, a Piko agent's until its tunnel is released), none younger than the
    /// hold: tunnels that did not land here as a moved agent's replacement within
    /// `Rebalancer.movedAgainAfter` first, then idle ones, then those of the endpoints with the
    /// most tunnels here (so an endpoint's agents spread), oldest first. A tunnel whose agent
    /// cannot reconnect first (Piko's) is moved only while another tunnel of its endpoint stays on
    /// this node, and only when no Pico agent's tunnel may move now (replacements that landed
    /// lately aside; those of an endpoint already moving wait): a Piko agent redials through the
    /// load balancer without saying it moves, so nothing steers it to a light node but the
    /// refusal at the threshold. Returns how many were asked.
    @discardableResult
    mutating func askMoves(_ wanted: Int, now: Instant, into directives: inout [ClusterDirective]) -> Int {
        // A replacement shows only as the endpoint's count, so two moves of one endpoint awaiting
        // theirs could not tell whose it was; a Piko agent's move lasts until its release (the
        // agent reconnects only then).
        // A move no longer under way (`MoveProgress.isUnderWay`) blocks nothing more.
        var movingEndpoints = Set(self.moves.compactMap { id, progress -> String? in
            guard let tunnel = self.upstreams.tunnel(id), progress.phase != .replaced || !tunnel.reconnectsFirst,
                  progress.isUnderWay(at: now) else { return nil }
            return tunnel.endpoint
        })
        // A tunnel younger than the hold is not moved: it may be another node's moved agent that
        // just landed here, and moving it again would send it back and forth.
        let settled = now - self.rebalancer.settings.hold
        // A moved agent's replacement that landed here within `Rebalancer.movedAgainAfter` goes
        // last: moving the same agent twice in a row is the back-and-forth the rule must avoid.
        let movedInSince = now - Rebalancer.movedAgainAfter
        // First the Pico agents that may move now, then Piko agents (only if that left moves to
        // ask for), then lately landed replacements (a Piko agent never is one).
        let candidates = self.upstreams.allTunnels
            .filter { !$0.isDraining && !movingEndpoints.contains($0.endpoint) && $0.openedAt <= settled }
            .map { tunnel in
                let rank = tunnel.agent == .picoReplacing && tunnel.openedAt > movedInSince ? 2 : tunnel.reconnectsFirst ? 0 : 1
                return (tunnel: tunnel, rank: rank, here: self.upstreams.count(for: tunnel.endpoint))
            }
            .sorted { ($0.rank, $0.tunnel.inFlight > 0 ? 1 : 0, -$0.here, $0.tunnel.id) < ($1.rank, $1.tunnel.inFlight > 0 ? 1 : 0, -$1.here, $1.tunnel.id) }
        var asked = 0
        for (tunnel, _, _) in candidates where asked < wanted && !movingEndpoints.contains(tunnel.endpoint) {
            // A Piko agent closes before it reconnects: its endpoint must keep a tunnel that no
            // move can take away, one here (another node's tunnels may be moving too; gossip
            // does not say).
            if !tunnel.reconnectsFirst, !self.hasUnmovedTunnel(tunnel.endpoint, besides: tunnel.id) { continue }
            guard self.upstreams.markDraining(tunnel.id) else { continue }
            movingEndpoints.insert(tunnel.endpoint)
            self.moves[tunnel.id] = MoveProgress(
                askedAt: now, phase: tunnel.reconnectsFirst ? .awaitingReplacement(lowWater: self.servedCount(tunnel.endpoint)) : .replaced)
            self.rebalanceFigures.movesAsked += 1
            asked += 1
            directives.append(.event(.rebalanceMoveAsked(tunnel.id, endpoint: tunnel.endpoint)))
            directives.append(.tellAgentToMove(tunnel.id))
        }
        return asked
    }

    /// Why a tunnel for `endpoint` from `agent` is refused by rebalancing, when the endpoint is
    /// served already (so the agent's retry through the load balancer finds a lighter node while
    /// its endpoint is served): a Pico agent's replacement of a moved tunnel when this node sheds
    /// or holds more than the mean while a member holds less (`refusesReplacement`); a Piko
    /// agent's when this node sheds or one more would take it over the threshold
    /// (`refusesPikoAgent`). Nil when it is taken. A fresh Pico agent is never refused: without a
    /// tunnel, and with views of the others' counts that lag behind (gossip), it would be turned
    /// away by every node while counts grow; an endpoint nobody serves is always taken.
    func rebalanceRefusal(endpoint: String, agent: TunnelAgent, now: Instant) -> String? {
        guard self.rebalancer.settings.isEnabled, self.lifecycle.phase == .ready, self.endpointServed(endpoint, besides: nil) else { return nil }
        // The census of the last evaluation (at most `Rebalancer.interval` old) with this node's
        // own counts as they are: a dial never walks the whole endpoint table.
        guard var census = self.lastCensus else { return nil }
        census.local = self.upstreams.tunnelCount
        census.moving = min(census.moving, self.moves.count)
        // `rebalanceCensus` puts this node's own total (its tunnels not asked to move) first.
        census.memberTotals[0] = census.staying
        switch agent {
        case .pico:
            return nil
        case .picoReplacing:
            guard self.rebalancer.refusesReplacement(census, now: now) else { return nil }
            return "this node holds \(census.staying) tunnels against a cluster mean of \(census.roundedMean) and is shedding or above it: reconnect to a lighter node"
        case .piko:
            guard self.rebalancer.refusesPikoAgent(census, now: now) else { return nil }
            return "this node holds \(census.staying) tunnels against a cluster mean of \(census.roundedMean) and is shedding or one more would take it over the threshold: reconnect to a lighter node"
        }
    }

    /// True when `endpoint` has a tunnel that takes new requests besides `besides`: one here not
    /// asked to move, or one on a live member that is neither draining nor suspect (of the
    /// endpoint's holding tenant).
    func endpointServed(_ endpoint: String, besides: TunnelID?) -> Bool {
        self.hasUnmovedTunnel(endpoint, besides: besides) || self.remoteUpstreams(for: endpoint).contains { !$0.draining && !$0.suspect }
    }

    /// True when this node holds a tunnel of `endpoint` besides `besides` that was not asked to move.
    func hasUnmovedTunnel(_ endpoint: String, besides: TunnelID?) -> Bool {
        self.upstreams.tunnelIDs(for: endpoint).contains { $0 != besides && self.upstreams.tunnel($0)?.isDraining == false }
    }

    /// Moves under way at `now` (`MoveProgress.isUnderWay`).
    func movesUnderWay(at now: Instant) -> Int {
        self.moves.values.reduce(0) { $0 + ($1.isUnderWay(at: now) ? 1 : 0) }
    }

    /// How many tunnels serve `endpoint`: this node's not asked to move, and those of live members
    /// that are neither draining nor suspect (their moving ones included: gossip does not tell
    /// them apart).
    func servedCount(_ endpoint: String) -> Int {
        var count = 0
        for id in self.upstreams.tunnelIDs(for: endpoint) where self.upstreams.tunnel(id)?.isDraining == false { count += 1 }
        for holder in self.remoteUpstreams(for: endpoint) where !holder.draining && !holder.suspect { count += Int(holder.count) }
        return count
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
    /// `handoverSettleTime`: a Pico agent's once its replacement may exist (`MoveProgress`); a
    /// Piko agent's (moved only while another tunnel of its endpoint stays here) as soon as it
    /// is idle.
    mutating func advanceMoves(now: Instant, into directives: inout [ClusterDirective]) {
        var nextCheck: Instant?
        for id in self.moves.keys.sorted() {
            guard let tunnel = self.upstreams.tunnel(id) else {
                self.moves[id] = nil
                continue
            }
            if case .awaitingReplacement(let lowWater) = self.moves[id]?.phase, let askedAt = self.moves[id]?.askedAt {
                // Its replacement may exist only once the count rose above its low-water mark.
                // After `Rebalancer.replacementWait` (another node's release may have hidden it),
                // an unmoved tunnel of the endpoint here is enough: the endpoint stays served
                // here whatever the agent holds. Never only another node's count, which may be
                // of a tunnel that node is moving too.
                let served = self.servedCount(tunnel.endpoint)
                let waited = now - askedAt >= Rebalancer.replacementWait && self.hasUnmovedTunnel(tunnel.endpoint, besides: id)
                guard served > lowWater || waited else {
                    self.moves[id]?.phase = .awaitingReplacement(lowWater: served)
                    continue
                }
                self.moves[id]?.phase = .replaced
            }
            guard let seen = self.handoverSince(tunnel, now: now) else { continue }
            // A Piko agent's tunnel goes as soon as it is idle: another tunnel of its endpoint
            // stays here (`askMoves`), so no node's routing needs time to learn anything, and its
            // endpoint's next move waits for this release (one of an endpoint at a time).
            let settle = tunnel.reconnectsFirst ? self.configuration.handoverSettleTime : .zero
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
