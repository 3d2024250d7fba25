import PicoModel

// ==== ---- Agents, clients and the load balancer ------------------------------------------------------

extension SimWorld {
    /// Adds an agent; it starts connecting now.
    public mutating func addAgent(_ spec: AgentSpec) {
        self.traffic.agents.append(SimTraffic.Agent(spec: spec))
        self.scheduleTraffic(.agentConnect(agent: self.traffic.agents.count - 1), after: .zero)
    }

    /// Adds a client; it sends its first request one interval from now.
    public mutating func addClient(_ spec: ClientSpec) {
        precondition(spec.rate > 0 && !spec.endpoints.isEmpty, "a client needs a positive rate and an endpoint")
        self.traffic.clients.append(spec)
        self.scheduleTraffic(.clientTick(client: self.traffic.clients.count - 1), after: self.interval(of: spec))
    }

    /// Stops every client (no new requests; pending ones still finish).
    public mutating func stopClients() {
        self.traffic.clients = self.traffic.clients.map { spec in
            var stopped = spec
            stopped.rate = 0
            return stopped
        }
    }

    mutating func scheduleTraffic(_ event: TrafficEvent, after delay: Duration) {
        self.queue.schedule(.traffic(event), at: self.now + delay)
    }

    func interval(of spec: ClientSpec) -> Duration {
        .nanoseconds(Int64(1_000_000_000 / spec.rate))
    }

    mutating func handle(_ event: TrafficEvent) {
        switch event {
        case .believe(let beliefs):
            self.traffic.believedReady = beliefs
        case .agentConnect(let agent):
            self.drive(agent: agent, .dialDue)
        case .tunnelArrives(let agent, let pod, let boot):
            self.tunnelArrives(agent: agent, pod: pod, boot: boot)
        case .clientTick(let client):
            self.clientTick(client)
        case .requestArrives(let request, let pod, let boot, let fromHop, let connection):
            self.requestArrives(request, pod: pod, boot: boot, fromHop: fromHop, connection: connection)
        case .streamDone(let request, let hop):
            self.streamDone(request, hop: hop)
        case .exchangeTimer(let request, let hop, let boot):
            self.exchangeTimerFired(ExchangeKey(request: request, hop: hop), boot: boot)
        case .forwardFailed(let request, let hop, let connection, let progress):
            self.forwardFailed(ExchangeKey(request: request, hop: hop), on: connection, progress: progress)
        case .peerAnswered(let request, let hop, let connection, let outcome):
            self.peerAnswered(ExchangeKey(request: request, hop: hop), on: connection, outcome)
        case .forwardUnserved(let request, let hop, let connection):
            self.forwardUnserved(ExchangeKey(request: request, hop: hop), on: connection)
        case .hopHeartbeat(let request, let hop, let connection):
            self.hopHeartbeat(ExchangeKey(request: request, hop: hop), on: connection)
        case .resend(let event, let from, let boot, let request, let hop, let connection, let attempt):
            self.resend(event, from: from, boot: boot, to: ExchangeKey(request: request, hop: hop), on: connection, attempt: attempt)
        case .peerUpgraded(let request, let hop, let connection):
            self.peerUpgraded(ExchangeKey(request: request, hop: hop), on: connection)
        case .streamClosed(let request):
            self.streamClosed(request)
        case .requestTimeout(let request):
            // A TCP connection's timeout bounds the wait for its 101 only.
            if self.traffic.history[Int(request - 1)].outcome == nil, self.traffic.history[Int(request - 1)].stream?.openedAt == nil {
                let timeout = self.traffic.clients[self.traffic.history[Int(request - 1)].client].timeout
                self.finish(request, .unknown("no answer within \(DurationText.format(timeout))"))
                if self.traffic.history[Int(request - 1)].stream != nil { self.streamAbandoned(request) }
            }
        case .rolloutTick:
            self.rolloutTick()
        case .surgeRolloutTick:
            self.surgeRolloutTick()
        }
    }

    // MARK: - Agents

    /// Feeds agent `agent`'s machine and carries out its directives.
    mutating func drive(agent: Int, _ input: AgentMachine.Input) {
        let directives = self.traffic.agents[agent].machine.handle(input, now: self.now, rng: &self.traffic.rng)
        for directive in directives {
            switch directive {
            case .dialNow: self.dial(agent)
            case .retry(let due): self.queue.schedule(.traffic(.agentConnect(agent: agent)), at: due)
            }
        }
    }

    /// Dials through the load balancer: the connection reaches a pod it believes ready.
    mutating func dial(_ agent: Int) {
        guard let pod = self.traffic.pickPod(), self.pods[pod].state.hasProcess else {
            self.drive(agent: agent, .dialFailed)
            return
        }
        self.scheduleTraffic(.tunnelArrives(agent: agent, pod: pod, boot: self.pods[pod].boot), after: self.settings.edgeLatency * 2)
    }

    mutating func tunnelArrives(agent: Int, pod: Int, boot: Int) {
        guard self.isCurrent(pod, boot) else {
            self.drive(agent: agent, .dialFailed)
            return
        }
        guard self.pods[pod].state == .running else {
            // Frozen: the kernel accepted the connection; the upgrade is answered when it thaws.
            self.pods[pod].inbox.append(.traffic(.tunnelArrives(agent: agent, pod: pod, boot: boot)))
            return
        }
        // The upstream port refuses another tenant's agent before the upgrade (409, as the
        // runtime's data loop does from the same routing change); the agent backs off.
        let spec = self.traffic.agents[agent].spec
        if let holder = self.pods[pod].router.tenant(holding: spec.endpoint), holder != spec.tenant {
            self.record("tunnel-refused", self.pods[pod].name, UInt64(agent))
            self.drive(agent: agent, .dialFailed)
            return
        }
        let replacing = self.traffic.agents[agent].machine.isReplacing
        let id = TunnelID(self.traffic.nextTunnel)
        self.traffic.nextTunnel += 1
        self.traffic.placements[id] = SimTraffic.Placement(agent: agent, pod: pod, boot: boot, openedAt: self.now)
        self.noteTunnelChange()
        self.reachabilityMayHaveChanged()
        self.drive(agent: agent, .tunnelOpened(id))
        self.record("tunnel", self.pods[pod].name, id.rawValue)
        // The simulator's wall clock is its virtual time (claims' ages compare across pods).
        let wall = UInt64(clamping: self.now.nanoseconds / 1_000_000)
        let handshake: TunnelAgent = spec.kind == .piko ? .piko : (replacing ? .picoReplacing : .pico)
        self.deliver(.tunnelOpened(id, endpoint: spec.endpoint, tenant: spec.tenant, wallMilliseconds: wall, agent: handshake), to: pod)
    }

    /// The node said GoAway on `tunnel`: Pico's agent opens its replacement; Piko's ignores it
    /// (its yamux session refuses new streams) and dials again once the node closes the tunnel.
    mutating func agentAskedToMove(_ tunnel: TunnelID) {
        guard let placement = self.traffic.placements[tunnel], self.traffic.agents[placement.agent].spec.kind == .pico else { return }
        self.drive(agent: placement.agent, .toldToMove(tunnel))
    }

    mutating func tunnelClosedByNode(_ tunnel: TunnelID, pod: Int) {
        // TCP connections still open on it are cut (the node closes a tunnel with streams only
        // when its drain deadline came).
        for key in self.traffic.exchanges.keys(where: { _, exchange in exchange.pod == pod && exchange.countedTunnel == tunnel })
        where self.isOpenStream(key.request) {
            self.cutStream(key.request, by: pod)
        }
        guard let placement = self.traffic.placements.removeValue(forKey: tunnel) else { return }
        self.noteTunnelChange()
        self.reachabilityMayHaveChanged()
        self.deliver(.tunnelClosed(tunnel), to: pod)
        self.drive(agent: placement.agent, .tunnelClosedByNode(tunnel))
    }

    /// A process stopped: its tunnels break (agents reconnect) and requests on it end unknown.
    mutating func processStopped(_ pod: Int) {
        // The kernel resets the connections of a process that exited or was killed.
        for (stream, pending) in self.pendingStreams.sorted(by: { $0.key < $1.key }) where pending.responder == pod {
            self.resetStream(stream, reason: "connection reset")
        }
        for agent in self.traffic.agents.indices {
            for tunnel in self.traffic.tunnels(of: agent) where tunnel.pod == pod {
                self.traffic.placements[tunnel.id] = nil
                self.noteTunnelChange()
                self.drive(agent: agent, .tunnelBroken(tunnel.id))
            }
        }
        self.reachabilityMayHaveChanged()
        self.exchangesStopped(at: pod)
    }

    // MARK: - Clients and requests

    mutating func clientTick(_ client: Int) {
        let spec = self.traffic.clients[client]
        guard spec.rate > 0 else { return }
        self.scheduleTraffic(.clientTick(client: client), after: self.interval(of: spec))
        let endpoint = spec.pickEndpoint(using: &self.traffic.rng)
        let id = UInt64(self.traffic.history.count + 1)
        var record = RequestRecord(id: id, client: client, endpoint: endpoint, issuedAt: self.now, path: [])
        if let lifetimes = spec.streams { record.stream = StreamRecord(lifetime: lifetimes.draw(using: &self.traffic.rng)) }
        self.traffic.history.append(record)
        self.scheduleTraffic(.requestTimeout(request: id), after: spec.timeout)
        guard let pod = self.traffic.pickPod() else {
            self.finish(id, .failed("no pod behind the load balancer"))
            return
        }
        self.scheduleTraffic(.requestArrives(request: id, pod: pod, boot: self.pods[pod].boot, fromHop: nil, connection: 0), after: self.settings.edgeLatency)
    }

    /// A frozen process's kernel still accepts connections and buffers bytes: work for a paused
    /// pod waits in its inbox (bounded) until it resumes. Returns true when `event` was parked.
    mutating func parkIfPaused(_ event: TrafficEvent, pod: Int, boot: Int) -> Bool {
        guard self.isCurrent(pod, boot), self.pods[pod].state == .paused else { return false }
        if self.pods[pod].inbox.count < self.settings.pausedInboxLimit { self.pods[pod].inbox.append(.traffic(event)) }
        return true
    }

    mutating func finish(_ request: UInt64, _ outcome: RequestOutcome) {
        self.traffic.history[Int(request - 1)].finishedAt = self.now
        // A request that did not succeed is judged on its whole life: it could have been served
        // only if a holder was reachable from its entry pod, without a break, long enough.
        if outcome != .ok, self.traffic.history[Int(request - 1)].reachability != nil {
            self.noteReachability(of: request)
            let longest = self.traffic.history[Int(request - 1)].reachability?.longest(at: self.now) ?? .zero
            self.traffic.history[Int(request - 1)].holderReachable = longest >= Self.servableReachability
        }
        self.traffic.history[Int(request - 1)].outcome = outcome
        switch outcome {
        case .ok: self.record("ok", "", request)
        case .failed(let reason): self.record("failed", reason, request)
        case .unknown(let reason): self.record("unknown", reason, request)
        }
    }
}
