// ==== ---- Tunnels, routing, and the make-before-break drain -----------------------------------------

extension ClusterNode {
    mutating func onTunnelOpened(_ id: TunnelID, endpoint: String, tenant: String = "", wallMilliseconds: UInt64 = 0, agent: TunnelAgent = .pico,
                                 now: Instant = .zero, into directives: inout [ClusterDirective]) {
        guard !endpoint.isEmpty, endpoint.utf8.count <= EndpointTable.maxEndpointLength else {
            directives.append(.event(.tunnelRejected(id, reason: "endpoint id must be 1 to \(EndpointTable.maxEndpointLength) bytes")))
            directives.append(.closeTunnel(id))
            return
        }
        guard tenant.isEmpty ? !self.configuration.tenantsEnabled : EndpointClaim.isValidTenant(tenant) else {
            let reason = tenant.isEmpty ? "this node has tenants: a tunnel must name its tenant" : "tenant id must be \(EndpointClaim.tenantRule)"
            directives.append(.event(.tunnelRejected(id, reason: reason)))
            directives.append(.closeTunnel(id))
            return
        }
        guard self.upstreams.tunnel(id) == nil else { return }
        if let refusal = self.quotaRefusal(endpoint: endpoint, tenant: tenant) {
            directives.append(.event(.tunnelRejected(id, reason: refusal)))
            directives.append(.closeTunnel(id))
            return
        }
        guard let claim = self.claimForNewTunnel(endpoint: endpoint, tenant: tenant, wallMilliseconds: wallMilliseconds) else {
            directives.append(.event(.tunnelRejected(id, reason: "endpoint \(endpoint) is held by another tenant")))
            directives.append(.closeTunnel(id))
            return
        }
        let draining = self.lifecycle.phase == .draining
        if !draining, agent != .pico, let refusal = self.rebalanceRefusal(endpoint: endpoint, agent: agent, now: now) {
            self.rebalanceFigures.tunnelsRefused += 1
            directives.append(.event(.tunnelRejected(id, reason: refusal)))
            directives.append(.closeTunnel(id))
            return
        }
        guard case .added(let count) = self.upstreams.add(id, endpoint: endpoint, draining: draining, agent: agent, at: now) else { return }
        directives.append(.event(.tunnelRegistered(id, endpoint: endpoint)))
        // A tunnel opened during the drain (the load balancer had not noticed yet) is asked to move
        // at once; it still serves if nothing else can.
        if draining { directives.append(.tellAgentToMove(id)) }
        self.setLocalCount(count, for: endpoint, claim: claim, into: &directives)
    }

    /// Why a tunnel of `tenant` for `endpoint` may not register: one endpoint more than a member
    /// may gossip, or beyond the tenant's quota on this node; nil when it may.
    /// (Counted from our own entries, which hold only endpoints with tunnels; unordered, summed.)
    func quotaRefusal(endpoint: String, tenant: String) -> String? {
        let local = self.endpoints.owners[self.me.uid]?.entries ?? [:]
        if local[endpoint] == nil, local.count >= self.configuration.maxEndpointsPerMember {
            return "this node serves \(local.count) endpoints, the most one member may gossip (cluster.max_endpoints_per_member)"
        }
        guard !tenant.isEmpty, let quota = self.configuration.tenantQuotas[tenant] else { return nil }
        let held = local.filter { $0.value.claim.tenant == tenant }.map { (endpoint: $0.key, count: $0.value.count) }
        return quota.refusal(tenant: tenant, endpoint: endpoint, held: held)
    }

    mutating func removeTunnel(_ id: TunnelID, into directives: inout [ClusterDirective]) {
        guard case .removed(let tunnel, let count) = self.upstreams.remove(id) else { return }
        self.handoverSeen[id] = nil
        self.moves[id] = nil
        directives.append(.event(.tunnelRemoved(id, endpoint: tunnel.endpoint)))
        self.setLocalCount(count, for: tunnel.endpoint, into: &directives)
    }

    /// Sets our count for `endpoint` under `claim` (nil: the claim our entry has).
    mutating func setLocalCount(_ count: Int, for endpoint: String, claim: EndpointClaim? = nil, into directives: inout [ClusterDirective]) {
        let claim = claim ?? self.endpoints.claim(of: self.me.uid, for: endpoint) ?? .untenanted
        guard let delta = self.endpoints.setLocalCount(UInt32(clamping: count), for: endpoint, claim: claim) else { return }
        self.broadcasts.enqueueLocalDelta(delta)
        directives.append(.event(.endpointChanged(endpoint: endpoint, owner: self.me.uid, count: UInt32(clamping: count))))
    }

    /// Live remote holders of `endpoint` (dead and left nodes excluded; suspects marked, for
    /// routing's last resort).
    /// Only the holding tenant's (see `endpointHolder`): while two tenants' entries coexist, the
    /// other's tunnels are about to close and take no request.
    public func remoteUpstreams(for endpoint: String) -> [RemoteUpstream] {
        let holder = self.endpointHolder(endpoint)
        return self.endpoints.owners(of: endpoint).compactMap { owner, count in
            guard owner != self.me.uid, let member = self.membership.member(owner), member.isLive,
                  self.endpoints.claim(of: owner, for: endpoint)?.tenant == holder?.tenant else { return nil }
            return RemoteUpstream(uid: owner, name: member.info.name, proxyAddress: member.info.proxyAddress, count: count,
                                  draining: member.draining, suspect: member.state.status == .suspect)
        }
    }

    /// Accounts for a decision a data loop made from its `LoopRouter` (see `.routedByLoop`).
    mutating func recordLoopRoute(_ decision: RouteDecision) {
        switch decision {
        case .local(let id):
            self.upstreams.startStream(on: id)
        case .forward(let uid, _, _):
            if self.membership.member(uid)?.draining == true { self.routeRepairPending = true }
        case .reject:
            break
        }
    }

    // MARK: - Drain

    /// Shutdown began: announce draining, ask every agent to move, and arm the drain deadline.
    mutating func beginDrain(deadline: Instant, now: Instant, into directives: inout [ClusterDirective]) {
        self.drainDeadline = deadline
        self.drainHoldUntil = now + self.configuration.drainMinimum
        // The drain moves every tunnel now; rebalancing's moves in progress are its own.
        self.moves = [:]
        directives.append(.schedule(.drainHoldEnded, at: now + self.configuration.drainMinimum))
        self.interpret(self.membership.startDraining(now: now), now: now, into: &directives)
        for tunnel in self.upstreams.allTunnels where self.upstreams.markDraining(tunnel.id) {
            directives.append(.tellAgentToMove(tunnel.id))
        }
        directives.append(.schedule(.drainDeadline, at: deadline))
    }

    /// Releases every idle draining tunnel whose endpoint is served elsewhere (or can never be),
    /// and starts the leave once no tunnel and no relayed stream is left and `drainMinimum` has
    /// passed (load balancers keep sending requests for a while after the readiness probe fails).
    mutating func advanceDrain(now: Instant, into directives: inout [ClusterDirective]) {
        guard !self.leaveStarted, let holdUntil = self.drainHoldUntil else { return }
        let nobodyToHandOverTo = !self.membership.hasActivePeer
        let settle = self.configuration.handoverSettleTime
        var nextCheck: Instant?
        for tunnel in self.upstreams.allTunnels where tunnel.isDraining {
            // Other nodes learn of the replacement a few gossip rounds after we do; until they
            // have, they may still forward to us, so the old tunnel stays for `settle` more.
            let seen = self.handoverSince(tunnel, now: now)
            guard tunnel.inFlight == 0, now >= holdUntil else { continue }
            if nobodyToHandOverTo || seen.map({ now >= $0 + settle }) == true {
                directives.append(.closeTunnel(tunnel.id))
                self.removeTunnel(tunnel.id, into: &directives)
            } else if let seen {
                nextCheck = min(nextCheck ?? seen + settle, seen + settle)
            }
        }
        if let nextCheck { directives.append(.schedule(.handoverCheck, at: nextCheck)) }
        if self.upstreams.isEmpty, self.relays == 0, now >= holdUntil { self.startLeave(now: now, into: &directives) }
    }

    /// The drain deadline passed: close whatever tunnels remain, then leave (relayed streams
    /// end with the process).
    mutating func forceEndDrain(now: Instant, into directives: inout [ClusterDirective]) {
        guard !self.leaveStarted else { return }
        for tunnel in self.upstreams.allTunnels {
            directives.append(.closeTunnel(tunnel.id))
            self.removeTunnel(tunnel.id, into: &directives)
        }
        self.startLeave(now: now, into: &directives)
    }

    mutating func startLeave(now: Instant, into directives: inout [ClusterDirective]) {
        guard !self.leaveStarted else { return }
        self.leaveStarted = true
        self.interpret(self.membership.startLeave(now: now), now: now, into: &directives)
        // Not started, or already finished (join failed): there is no membership to leave.
        if self.lifecycle.phase == .draining, self.membership.phase != .leaving {
            self.apply(lifecycle: .leaveCompleted, now: now, into: &directives)
        }
    }
}
