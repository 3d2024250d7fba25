import PicoModel

// ==== ---- Requests: production's exchange machine and loop router at every pod ----------------------

/// The simulated clients' address as the pod's socket reports it (never a member's).
private let clientHost = "192.0.2.1"

extension SimWorld {
    /// Request `request` reaches pod `pod` from a client, or forwarded by the exchange at hop
    /// `fromHop`: the pod's `RequestExchange` routes it with the pod's `LoopRouter`, as a runtime
    /// proxy connection does.
    mutating func requestArrives(_ request: UInt64, pod: Int, boot: Int, fromHop: Int?, connection: UInt64) {
        guard self.traffic.history[Int(request - 1)].outcome == nil else { return }
        if self.parkIfPaused(.requestArrives(request: request, pod: pod, boot: boot, fromHop: fromHop, connection: connection), pod: pod, boot: boot) { return }
        // Hop 0 at the entry pod; a forward is one hop past the exchange that sent it.
        let hop = fromHop.map { $0 + 1 } ?? 0
        let key = ExchangeKey(request: request, hop: hop)
        if let fromHop {
            // The forwarding exchange gave up on this forward (it went silent, or timed out) before
            // this pod read it: the connection was reset, and nothing of it is served.
            guard self.traffic.exchanges[ExchangeKey(request: request, hop: fromHop)]?.forwardConnection == connection else { return }
            guard self.isCurrent(pod, boot), self.pods[pod].state == .running else {
                // The forwarding pod's dial is refused: it may try another holder.
                self.traffic.history[Int(request - 1)].hops = max(self.traffic.history[Int(request - 1)].hops, hop)
                self.answerPrevious(key, from: pod, on: connection) { .forwardFailed(request: request, hop: fromHop, connection: $0, progress: .unsent) }
                return
            }
            guard self.traffic.exchanges[key] == nil else { return }
        }
        self.traffic.history[Int(request - 1)].hops = max(self.traffic.history[Int(request - 1)].hops, hop)
        guard self.isCurrent(pod, boot), self.pods[pod].state == .running else {
            self.traffic.history[Int(request - 1)].path.append(pod)
            self.finish(request, .failed("connection refused by \(self.pods[pod].name)"))
            return
        }
        self.traffic.history[Int(request - 1)].path.append(pod)
        if hop == 0 {
            let reachable = self.holderReachable(for: self.traffic.history[Int(request - 1)].endpoint, from: pod)
            self.traffic.history[Int(request - 1)].holderReachable = reachable
            self.traffic.history[Int(request - 1)].reachability = ReachabilityStretch(reachable: reachable, now: self.now)
        }
        // The head's fields in one buffer, sized for a forward's four (the same fields, in the
        // same order, as a dictionary literal and `add`s built).
        let endpoint = self.traffic.history[Int(request - 1)].endpoint
        let isStream = self.traffic.history[Int(request - 1)].stream != nil
        var fields: [HTTPHeaders.Field] = isStream ? Self.tcpRouteFields : []
        fields.reserveCapacity(fields.count + 4)
        fields.append(HTTPHeaders.Field(name: "host", value: "sim.invalid"))
        if !isStream { fields.append(HTTPHeaders.Field(name: "x-pico-endpoint", value: endpoint)) }
        var source = clientHost
        // The first forward between two processes is the first on its pooled connection.
        var first = true
        let previousKey = ExchangeKey(request: request, hop: hop - 1)
        if hop > 0, let previous = self.traffic.exchanges[previousKey] {
            fields.append(HTTPHeaders.Field(name: "x-pico-forward", value: "true"))
            if let interval = self.traffic.exchanges.withMachine(previousKey, { $0.heartbeatRequest }) ?? nil {
                fields.append(HTTPHeaders.Field(name: ForwardHeartbeat.header, value: self.traffic.heartbeatFieldValue(every: interval)))
            }
            source = self.pods[previous.pod].nodeInfo()?.proxyAddress.host ?? clientHost
            if let me = self.pods[pod].nodeInfo()?.uid {
                first = self.traffic.pooledConnections.insert(SimTraffic.PooledConnection(from: previous.pod, fromBoot: previous.boot, to: me)).inserted
            }
        }
        let head = HTTPRequestHead(method: "GET", target: isStream ? Self.tcpRouteTarget(endpoint) : "/", headers: HTTPHeaders(fields))
        let settings = self.settings.exchange
        let machine = self.pods[pod].withRouter { router in
            RequestExchange(head: head, framing: .none, clientHost: source, router: router, settings: settings, firstOnConnection: first)
        }
        self.traffic.exchanges.add(key, SimTraffic.Exchange(pod: pod, boot: boot, arrivedOn: connection), machine: machine)
        let mayWait = self.pods[pod].waiting.count < self.settings.maxWaitingRequests
        let action = self.withExchange(key) { machine, router, now in machine.start(router: &router, mayWait: mayWait, now: now) }
        self.follow(action, for: key)
    }

    /// How long a holder must be reachable from a request's entry pod, without a break, for the
    /// request to count as one the cluster could have served (`excuse: no-reachable-holder`).
    /// The protocol judges a way in about a second (the forward dial and silence timeouts, a
    /// probe round): a holder reachable only for the few milliseconds before a cut that took
    /// the answer, and the moments between a heal and the client's deadline, is not one any
    /// request could count on.
    static let servableReachability: Duration = .seconds(1)

    /// The network, a pod's process or the tunnels changed: every request in flight at its entry
    /// pod notes whether a holder is reachable from there now (by the network's real state).
    /// Each request is updated on its own, so the dictionary's order does not matter.
    mutating func reachabilityMayHaveChanged() {
        for key in self.traffic.exchanges.keys(where: { key, _ in key.hop == 0 }) {
            self.noteReachability(of: key.request)
        }
    }

    /// Updates request `request`'s unbroken stretch of holder reachability at its entry pod.
    mutating func noteReachability(of request: UInt64) {
        let index = Int(request - 1)
        guard self.traffic.history[index].outcome == nil, self.traffic.history[index].reachability != nil,
              let entry = self.traffic.history[index].path.first else { return }
        let reachable = self.holderReachable(for: self.traffic.history[index].endpoint, from: entry)
        self.traffic.history[index].reachability?.note(reachable: reachable, now: self.now)
    }

    /// Whether a running pod with a tunnel of `endpoint` is `pod` itself or linked with it both
    /// ways right now. `mutating` only because a call from a mutating method would otherwise
    /// copy the whole world (seen in profiles).
    mutating func holderReachable(for endpoint: String, from pod: Int) -> Bool {
        for placement in self.traffic.placements.values where self.traffic.agents[placement.agent].spec.endpoint == endpoint {
            guard self.isCurrent(placement.pod, placement.boot), self.pods[placement.pod].state == .running else { continue }
            if placement.pod == pod { return true }
            let out = SimNetwork.Link(from: pod, to: placement.pod)
            let back = SimNetwork.Link(from: placement.pod, to: pod)
            if !self.network.blocked.contains(out), !self.network.blocked.contains(back) { return true }
        }
        return false
    }

    /// Runs `step` on the exchange `key` with its pod's router; `.none` when it is gone.
    mutating func withExchange(_ key: ExchangeKey, _ step: (inout RequestExchange, inout LoopRouter, Instant) -> ExchangeAction) -> ExchangeAction {
        // Both mutated in place: a copy of the router would copy its tables on every request.
        let now = self.now
        return self.traffic.exchanges.withMachineAndPod(key) { machine, pod in step(&machine, &self.pods[pod].router, now) } ?? .none
    }

    /// Runs `step` as `withExchange` does, and tells the exchange's node what it learned about
    /// reachability.
    mutating func withExchangeReporting(_ key: ExchangeKey, _ step: (inout RequestExchange, inout LoopRouter, Instant) -> (ExchangeAction, ReachabilityReport?)) -> ExchangeAction {
        guard let pod = self.traffic.exchanges[key]?.pod else { return .none }
        var report: ReachabilityReport?
        let action = self.withExchange(key) { machine, router, now in
            let (action, learned) = step(&machine, &router, now)
            report = learned
            return action
        }
        self.tell(report, to: pod)
        return action
    }

    /// Carries out an exchange's action.
    mutating func follow(_ action: ExchangeAction, for key: ExchangeKey) {
        guard let exchange = self.traffic.exchanges[key] else { return }
        let pod = exchange.pod
        let request = key.request
        switch action {
        case .openStream(let tunnel, let deadline):
            guard let placement = self.traffic.placements[tunnel], placement.pod == pod else {
                // The tunnel is gone and the node has not heard yet: route without it.
                let mayWait = self.pods[pod].waiting.count < self.settings.maxWaitingRequests
                let next = self.withExchange(key) { machine, router, now in machine.tunnelUnavailable(tunnel, router: &router, mayWait: mayWait, now: now) }
                self.follow(next, for: key)
                return
            }
            self.traffic.exchanges.update(key) { exchange in
                exchange.countedTunnel = tunnel
                // A forward it had (that went silent) is abandoned: nothing on it counts any more.
                exchange.forwardConnection = nil
            }
            self.deliver(.routedByLoop(.local(tunnel)), to: pod)
            if self.traffic.history[Int(request - 1)].stream != nil {
                // A TCP connection: the agent dials its service and accepts the stream.
                self.noteStreamPlacement(request, on: tunnel)
                self.scheduleTraffic(.streamDone(request: request, hop: key.hop), after: self.settings.edgeLatency * 2)
            } else {
                let service = self.traffic.clients[self.traffic.history[Int(request - 1)].client].serviceTime
                self.scheduleTraffic(.streamDone(request: request, hop: key.hop), after: self.settings.edgeLatency * 2 + service)
            }
            if let deadline { self.scheduleExchangeTimer(key, at: deadline) }
        case .forward(let uid, let name, let address, let deadline):
            self.deliver(.routedByLoop(.forward(uid: uid, name: name, proxyAddress: address)), to: pod)
            if let deadline { self.scheduleExchangeTimer(key, at: deadline) }
            self.dialForward(key, from: pod, to: uid)
        case .move:
            // One data loop per simulated process: a router never names another loop.
            self.end(key, .failed("moved to a loop the simulated process does not have"))
        case .wait(let until):
            if !self.pods[pod].waiting.contains(key) {
                self.pods[pod].waiting.append(key)
                // The node may try to reach the members it declared dead (it bounds how often).
                self.deliver(.holderWanted, to: pod)
            }
            self.scheduleExchangeTimer(key, at: until)
        case .armTimer(let deadline):
            self.scheduleExchangeTimer(key, at: deadline)
        case .watchRouting(let until):
            // A silent forward: its connection is kept, and routing changes are offered.
            if !self.pods[pod].waiting.contains(key) { self.pods[pod].waiting.append(key) }
            if let until { self.scheduleExchangeTimer(key, at: until) }
        case .heartbeat(let next):
            self.answerPrevious(key, from: pod, on: exchange.arrivedOn) { .hopHeartbeat(request: request, hop: key.hop - 1, connection: $0) }
            self.scheduleExchangeTimer(key, at: next)
        case .answer(let status, let message, _):
            self.end(key, .failed("\(status) \(message)"))
        case .answerUnserved(let status, let message):
            self.end(key, .failed("\(status) \(message)"), unserved: true)
        case .closeConnection:
            self.end(key, .unknown("connection closed after the answer started"))
        case .none:
            break
        }
    }

    /// The pod exchange `key` forwarded to answered that the request reached no upstream there.
    mutating func forwardUnserved(_ key: ExchangeKey, on connection: UInt64) {
        guard let exchange = self.traffic.exchanges[key], exchange.forwardConnection == connection, self.isCurrent(exchange.pod, exchange.boot) else { return }
        if self.parkIfPaused(.forwardUnserved(request: key.request, hop: key.hop, connection: connection), pod: exchange.pod, boot: exchange.boot) { return }
        let mayWait = self.pods[exchange.pod].waiting.count < self.settings.maxWaitingRequests
        let action = self.withExchange(key) { machine, router, now in machine.forwardUnserved(router: &router, mayWait: mayWait, now: now) }
        self.follow(action, for: key)
    }

    /// Exchange `key`'s pod dials the pod that runs `uid`. A dial to an address no process
    /// answers, or across a cut link, fails after the forward dial timeout.
    mutating func dialForward(_ key: ExchangeKey, from pod: Int, to uid: NodeUID) {
        let connection = self.traffic.nextConnection
        self.traffic.nextConnection += 1
        self.traffic.exchanges.update(key) { $0.forwardConnection = connection }
        var target: Int?
        for index in self.pods.indices where self.pods[index].runs(uid) {
            target = index
            break
        }
        // A TCP dial needs both directions (the SYN and its SYN-ACK).
        guard let target, let delay = self.network.streamDelay(from: pod, to: target), self.network.streamDelay(from: target, to: pod) != nil else {
            self.scheduleTraffic(.forwardFailed(request: key.request, hop: key.hop, connection: connection, progress: .unsent), after: self.settings.exchange.forwardDialTimeout)
            return
        }
        self.scheduleTraffic(.requestArrives(request: key.request, pod: target, boot: self.pods[target].boot, fromHop: key.hop, connection: connection), after: delay)
    }

    /// Sends an event from pod `pod`, which ran (or refused) exchange `key`, back over forward
    /// connection `connection` to the exchange that forwarded it (dropped when that exchange
    /// abandoned the connection). Across a cut link TCP retransmits it (`resend`).
    mutating func answerPrevious(_ key: ExchangeKey, from pod: Int, on connection: UInt64, with event: (UInt64) -> TrafficEvent) {
        guard key.hop > 0, let previous = self.traffic.exchanges[ExchangeKey(request: key.request, hop: key.hop - 1)],
              previous.forwardConnection == connection else { return }
        let event = event(connection)
        guard let delay = self.network.streamDelay(from: pod, to: previous.pod) else {
            self.scheduleTraffic(.resend(event, from: pod, boot: self.pods[pod].boot, request: key.request, hop: key.hop - 1, connection: connection, attempt: 0),
                                 after: Self.firstRetransmission)
            return
        }
        self.scheduleTraffic(event, after: delay)
    }

    /// Linux's minimum retransmission timeout; each retransmission doubles it, up to
    /// `lastRetransmission`.
    static let firstRetransmission: Duration = .milliseconds(200)
    static let lastRetransmission: Duration = .seconds(120)

    /// A retransmission of `event` from pod `pod` to the exchange `key`: delivered when the way
    /// is open again, while both ends still hold `connection` (the sender's process runs, and the
    /// exchange still waits on it); otherwise tried again later.
    mutating func resend(_ event: TrafficEvent, from pod: Int, boot: Int, to key: ExchangeKey, on connection: UInt64, attempt: Int) {
        guard self.isCurrent(pod, boot), let waiting = self.traffic.exchanges[key], waiting.forwardConnection == connection else { return }
        if let delay = self.network.streamDelay(from: pod, to: waiting.pod) {
            self.scheduleTraffic(event, after: delay)
            return
        }
        let backoff = min(Self.firstRetransmission * (1 << min(attempt + 1, 10)), Self.lastRetransmission)
        self.scheduleTraffic(.resend(event, from: pod, boot: boot, request: key.request, hop: key.hop, connection: connection, attempt: attempt + 1), after: backoff)
    }

    /// Arms exchange `key`'s timer for `deadline`: a pending one due no later is kept (it
    /// re-arms when it fires early), else one event is scheduled.
    mutating func scheduleExchangeTimer(_ key: ExchangeKey, at deadline: Instant) {
        let deadline = max(deadline, self.now)
        // One lookup: the timer is read and set in place.
        guard let boot = self.traffic.exchanges.update(key, { exchange -> Int? in
            if let due = exchange.timerDue, due <= deadline { return nil }
            exchange.timerDue = deadline
            return exchange.boot
        }) ?? nil else { return }
        self.queue.schedule(.traffic(.exchangeTimer(request: key.request, hop: key.hop, boot: boot)), at: deadline)
    }

    mutating func exchangeTimerFired(_ key: ExchangeKey, boot: Int) {
        guard let exchange = self.traffic.exchanges[key], exchange.boot == boot else { return }
        if self.parkIfPaused(.exchangeTimer(request: key.request, hop: key.hop, boot: boot), pod: exchange.pod, boot: boot) { return }
        // An event a nearer deadline replaced: the timer that replaced it rules.
        guard exchange.timerDue.map({ $0 <= self.now }) ?? false else { return }
        self.traffic.exchanges.update(key) { $0.timerDue = nil }
        defer {
            // A forward that went silent or timed out is abandoned: its connection is reset.
            if let connection = exchange.forwardConnection, self.traffic.exchanges[key]?.forwardConnection != connection || self.traffic.exchanges.withMachine(key, { $0.peer }) == nil {
                self.abandonForward(of: key, on: connection)
            }
        }
        let action = self.withExchangeReporting(key) { machine, router, now in machine.timerFired(router: &router, now: now) }
        if case .wait = action {
            self.follow(action, for: key)
            return
        }
        self.pods[exchange.pod].waiting.removeAll { $0 == key }
        self.follow(action, for: key)
    }

    /// Pod `pod`'s routing changed: requests waiting there for a holder try again, and those
    /// waiting on a silent forward look for a way out.
    mutating func offerRoutingChange(at pod: Int) {
        guard !self.pods[pod].waiting.isEmpty else { return }
        for key in self.pods[pod].waiting {
            let silent = self.traffic.exchanges[key]?.forwardConnection
            let action = self.withExchange(key) { machine, router, now in machine.routingChanged(router: &router, now: now) }
            switch action {
            case .wait, .watchRouting:
                continue
            case .none:
                self.pods[pod].waiting.removeAll { $0 == key }
                continue
            default:
                break
            }
            self.pods[pod].waiting.removeAll { $0 == key }
            // The silent forward's connection is abandoned before the request goes out again.
            if let silent { self.abandonForward(of: key, on: silent) }
            self.follow(action, for: key)
        }
    }

    /// The upstream answered the stream of `request` at hop `hop`.
    mutating func streamDone(_ request: UInt64, hop: Int) {
        let key = ExchangeKey(request: request, hop: hop)
        guard let exchange = self.traffic.exchanges[key], let tunnel = self.traffic.exchanges.withMachine(key, { $0.tunnel }) ?? nil else { return }
        // The answer comes back through the node: a frozen node holds it until it thaws.
        if self.parkIfPaused(.streamDone(request: request, hop: hop), pod: exchange.pod, boot: exchange.boot) { return }
        if self.traffic.history[Int(request - 1)].stream != nil {
            guard self.traffic.placements[tunnel] != nil else {
                // The tunnel closed before its agent accepted: the stream was reset with it.
                let action = self.withExchangeReporting(key) { machine, router, now in machine.upstreamFailed(progress: .answered, router: &router, now: now) }
                self.follow(action, for: key)
                return
            }
            self.streamAccepted(key)
            return
        }
        if let placement = self.traffic.placements[tunnel] {
            self.drive(agent: placement.agent, .requestSucceeded(tunnel))
            self.noteAnsweringTenant(self.traffic.agents[placement.agent].spec)
        }
        _ = self.withExchange(key) { machine, router, _ in
            _ = machine.answerStarted(router: router)
            return .none
        }
        self.end(key, .ok)
    }

    /// An agent of `spec.tenant` answered a request for `spec.endpoint`: the first fixes the
    /// endpoint's tenant for `one-tenant-per-endpoint`.
    mutating func noteAnsweringTenant(_ spec: AgentSpec) {
        guard let first = self.traffic.servingTenant[spec.endpoint] else {
            self.traffic.servingTenant[spec.endpoint] = spec.tenant
            return
        }
        if first != spec.tenant, self.traffic.crossTenantAnswers.count < 16 {
            self.traffic.crossTenantAnswers.append((self.now, spec.name, spec.endpoint, first))
        }
    }

    /// Exchange `key`'s forward failed.
    mutating func forwardFailed(_ key: ExchangeKey, on connection: UInt64, progress: UpstreamProgress) {
        guard let exchange = self.traffic.exchanges[key], exchange.forwardConnection == connection, self.isCurrent(exchange.pod, exchange.boot) else { return }
        if self.parkIfPaused(.forwardFailed(request: key.request, hop: key.hop, connection: connection, progress: progress), pod: exchange.pod, boot: exchange.boot) { return }
        let mayWait = self.pods[exchange.pod].waiting.count < self.settings.maxWaitingRequests
        let action = self.withExchangeReporting(key) { machine, router, now in
            machine.upstreamFailed(progress: progress, router: &router, mayWait: mayWait, now: now)
        }
        self.follow(action, for: key)
    }

    /// The answer of the pod exchange `key` forwarded to arrived.
    mutating func peerAnswered(_ key: ExchangeKey, on connection: UInt64, _ outcome: RequestOutcome) {
        guard let exchange = self.traffic.exchanges[key], exchange.forwardConnection == connection, self.isCurrent(exchange.pod, exchange.boot) else { return }
        if self.parkIfPaused(.peerAnswered(request: key.request, hop: key.hop, connection: connection, outcome: outcome), pod: exchange.pod, boot: exchange.boot) { return }
        _ = self.withExchangeReporting(key) { machine, router, _ in (.none, machine.answerStarted(router: router)) }
        self.end(key, outcome)
    }

    /// Exchange `key` gave up on its forward on `connection`: the forwarded-to pod sees it reset, so
    /// the exchange there ends unanswered (its stream released) and nothing of it comes back.
    mutating func abandonForward(of key: ExchangeKey, on connection: UInt64) {
        let next = ExchangeKey(request: key.request, hop: key.hop + 1)
        guard self.traffic.exchanges[next]?.arrivedOn == connection else { return }
        self.release(next, status: 499)
    }

    /// A heartbeat of the pod exchange `key` forwarded to arrived: the hop is alive.
    mutating func hopHeartbeat(_ key: ExchangeKey, on connection: UInt64) {
        guard let exchange = self.traffic.exchanges[key], exchange.forwardConnection == connection, self.isCurrent(exchange.pod, exchange.boot) else { return }
        if self.parkIfPaused(.hopHeartbeat(request: key.request, hop: key.hop, connection: connection), pod: exchange.pod, boot: exchange.boot) { return }
        // The same interim answer the runtime decodes from `ForwardHeartbeat.interimBytes`.
        let action = self.withExchangeReporting(key) { machine, router, now in
            // A heartbeat from a hop the exchange left behind is nothing to it (on a forward, a
            // heartbeat is never relayed).
            guard machine.peer != nil, case .heartbeat(let action, let report) = machine.interimAnswer(ForwardHeartbeat.interimHead, router: &router, now: now) else {
                return (.none, nil)
            }
            return (action, report)
        }
        self.follow(action, for: key)
    }

    /// The node learns what an exchange found out about reachability (as a runtime loop reports it).
    mutating func tell(_ report: ReachabilityReport?, to pod: Int) {
        switch report {
        case .unreachable(let uid)?: self.deliver(.forwardFailed(uid), to: pod)
        case .reachable(let uid)?: self.deliver(.forwardAnswered(uid), to: pod)
        case .heartbeats(let uid, let wasUnreachable)?:
            self.deliver(.forwardHeartbeats(uid), to: pod)
            if wasUnreachable { self.deliver(.forwardAnswered(uid), to: pod) }
        case nil: break
        }
    }

    /// Exchange `key` ended with `outcome`: its tunnel stream finishes, and the outcome goes to
    /// the client (entry hop) or back to the entry pod (forwarded hop; `unserved`: as an answer
    /// saying the request reached no upstream here).
    mutating func end(_ key: ExchangeKey, _ outcome: RequestOutcome, unserved: Bool = false) {
        guard let exchange = self.release(key, status: outcome == .ok ? 200 : 502) else { return }
        if key.hop == 0 {
            if self.traffic.history[Int(key.request - 1)].outcome == nil { self.finish(key.request, outcome) }
        } else if unserved {
            self.answerPrevious(key, from: exchange.pod, on: exchange.arrivedOn) { .forwardUnserved(request: key.request, hop: key.hop - 1, connection: $0) }
        } else {
            self.answerPrevious(key, from: exchange.pod, on: exchange.arrivedOn) { .peerAnswered(request: key.request, hop: key.hop - 1, connection: $0, outcome: outcome) }
        }
    }

    /// A process stopped: requests it held end as its clients see them. A stream in flight on it
    /// ends unknown (the upstream may have served it); a forwarded request it held resets the
    /// entry pod's connection, which may try another holder; a request waiting for a holder
    /// fails (it reached no upstream).
    mutating func exchangesStopped(at pod: Int) {
        self.streamsStopped(at: pod)
        for key in self.traffic.exchanges.keys(where: { _, exchange in exchange.pod == pod }) {
            guard let removed = self.traffic.exchanges.remove(key) else { continue }
            let (exchange, machine) = (removed.exchange, removed.machine)
            if key.hop > 0 {
                // The forwarding pod's connection is reset before any answer byte.
                self.answerPrevious(key, from: pod, on: exchange.arrivedOn) { .forwardFailed(request: key.request, hop: key.hop - 1, connection: $0, progress: .unanswered) }
            } else if self.traffic.history[Int(key.request - 1)].outcome == nil {
                self.finish(key.request, machine.tunnel != nil || machine.peer != nil
                    ? .unknown("node stopped with the request in flight") : .failed("connection reset by \(self.pods[pod].name)"))
            }
        }
    }
}
