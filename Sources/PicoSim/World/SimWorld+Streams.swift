import PicoModel

// ==== ---- Long-lived TCP connections on the proxy port's TCP route -----------------------------------

extension SimWorld {
    /// The WebSocket handshake fields `pico forward tcp` sends (any 16-byte key will do: the
    /// simulated holder answers 101 once the agent accepted, as the runtime's does).
    static let tcpRouteFields: [HTTPHeaders.Field] = [
        HTTPHeaders.Field(name: "connection", value: "Upgrade"),
        HTTPHeaders.Field(name: "upgrade", value: "websocket"),
        HTTPHeaders.Field(name: "sec-websocket-version", value: "13"),
        HTTPHeaders.Field(name: "sec-websocket-key", value: "dGhlIHNhbXBsZSBub25jZQ=="),
        HTTPHeaders.Field(name: "sec-websocket-protocol", value: TCPRoute.halfCloseSubprotocol),
    ]

    /// The TCP route's target for `endpoint`.
    static func tcpRouteTarget(_ endpoint: String) -> String {
        "/_pico/v1/tcp/\(endpoint)"
    }

    /// Whether request `request` is a TCP connection whose client got its 101 and that is not
    /// over yet.
    func isOpenStream(_ request: UInt64) -> Bool {
        let record = self.traffic.history[Int(request - 1)]
        return record.outcome == nil && record.stream?.openedAt != nil
    }

    /// The agent accepted the stream of exchange `key` (a TCP connection): its pod answers 101. At
    /// the entry pod the client's connection is open now; at a forwarded hop the 101 goes back
    /// to the entry pod, which relays it.
    mutating func streamAccepted(_ key: ExchangeKey) {
        guard let exchange = self.traffic.exchanges[key] else { return }
        _ = self.withExchange(key) { machine, router, _ in
            _ = machine.answerStarted(router: router)
            return .none
        }
        // An open connection has no deadline; a timer event still queued finds none and is dropped.
        self.traffic.exchanges.update(key) { $0.timerDue = nil }
        if key.hop == 0 {
            self.streamOpened(key.request)
        } else {
            self.answerPrevious(key, from: exchange.pod, on: exchange.arrivedOn) { .peerUpgraded(request: key.request, hop: key.hop - 1, connection: $0) }
        }
    }

    /// The 101 of the pod exchange `key` forwarded to arrived: the entry pod relays the connection
    /// from now on (its node counts the relay, so its drain waits for it).
    mutating func peerUpgraded(_ key: ExchangeKey, on connection: UInt64) {
        guard let exchange = self.traffic.exchanges[key], exchange.forwardConnection == connection, self.isCurrent(exchange.pod, exchange.boot) else { return }
        if self.parkIfPaused(.peerUpgraded(request: key.request, hop: key.hop, connection: connection), pod: exchange.pod, boot: exchange.boot) { return }
        _ = self.withExchangeReporting(key) { machine, router, _ in (.none, machine.answerStarted(router: router)) }
        self.traffic.exchanges.update(key) { exchange in
            exchange.timerDue = nil
            exchange.relaying = true
        }
        self.pods[exchange.pod].waiting.removeAll { $0 == key }
        self.deliver(.relayStarted, to: exchange.pod)
        self.streamOpened(key.request)
    }

    /// TCP connection `request`'s client got its 101: it stays open for its lifetime.
    mutating func streamOpened(_ request: UInt64) {
        let index = Int(request - 1)
        guard self.traffic.history[index].outcome == nil, let lifetime = self.traffic.history[index].stream?.lifetime else { return }
        self.traffic.history[index].stream?.openedAt = self.now
        self.record("stream-open", "", request)
        self.scheduleTraffic(.streamClosed(request: request), after: lifetime)
    }

    /// The client closes TCP connection `request` at the end of its lifetime: every hop ends,
    /// from the holder back to the entry pod. A frozen pod on its way holds the close until it
    /// thaws (its kernel buffers the FIN).
    mutating func streamClosed(_ request: UInt64) {
        guard self.isOpenStream(request) else { return }
        let keys = [ExchangeKey(request: request, hop: 1), ExchangeKey(request: request, hop: 0)]
        for key in keys {
            guard let exchange = self.traffic.exchanges[key], self.isCurrent(exchange.pod, exchange.boot), self.pods[exchange.pod].state == .paused else { continue }
            // Never dropped, whatever the inbox bound: a close lost would keep the stream open.
            self.pods[exchange.pod].inbox.append(.traffic(.streamClosed(request: request)))
            return
        }
        for key in keys { self.end(key, .ok) }
    }

    /// The client of TCP connection `request` gave up before its 101 (its timeout): it closes its
    /// connection, so every hop ends, and the holder's stream is reset.
    mutating func streamAbandoned(_ request: UInt64) {
        for hop in [1, 0] { self.release(ExchangeKey(request: request, hop: hop), status: 499) }
    }

    /// Removes exchange `key`, finished with `status`, and tells its pod's node what it no longer
    /// counts (a finished stream, an ended relay). Returns the removed exchange (nil: none).
    @discardableResult
    mutating func release(_ key: ExchangeKey, status: Int) -> SimTraffic.Exchange? {
        guard let removed = self.traffic.exchanges.remove(key) else { return nil }
        let exchange = removed.exchange
        var machine = removed.machine
        machine.finished(status: status, router: &self.pods[exchange.pod].router)
        self.pods[exchange.pod].waiting.removeAll { $0 == key }
        if let tunnel = exchange.countedTunnel { self.deliverAccounting(.streamFinished(tunnel), to: exchange.pod, boot: exchange.boot) }
        if exchange.relaying { self.deliverAccounting(.relayEnded, to: exchange.pod, boot: exchange.boot) }
        return exchange
    }

    /// Delivers a request's accounting (a finished stream, an ended relay) to process `boot` of
    /// pod `pod`: at once while it runs, kept for its thaw while it is frozen (never dropped,
    /// whatever the inbox bound: a count it never got would hold its drain until the deadline),
    /// nothing once the process is gone.
    mutating func deliverAccounting(_ input: ClusterInput, to pod: Int, boot: Int) {
        guard self.isCurrent(pod, boot) else { return }
        switch self.pods[pod].state {
        case .running: self.deliver(input, to: pod)
        case .paused: self.pods[pod].inbox.append(.input(pod: pod, boot: boot, input))
        case .down, .exited: break
        }
    }

    /// Pod `pod`'s process stopped: TCP connections through it end. An open one is cut; one whose
    /// holder here had sent its 101 is cut as it reaches the client (the reset follows it); one
    /// whose entry was here and had forwarded its handshake resets the holder's stream.
    mutating func streamsStopped(at pod: Int) {
        for key in self.traffic.exchanges.keys(where: { _, exchange in exchange.pod == pod }) where self.traffic.history[Int(key.request - 1)].stream != nil {
            if self.isOpenStream(key.request) {
                self.cutStream(key.request, by: pod)
            } else if key.hop > 0, self.traffic.exchanges.withMachine(key, { machine -> Bool in
                if case .answering = machine.state { return true } else { return false }
            }) == true {
                self.traffic.history[Int(key.request - 1)].stream?.openedAt = self.now
                self.cutStream(key.request, by: pod)
            } else if key.hop == 0, let connection = self.traffic.exchanges[key]?.forwardConnection {
                self.abandonForward(of: key, on: connection)
            }
        }
    }

    /// Cuts open TCP connection `request` because pod `pod`'s process stopped, or its node closed
    /// the tunnel under it: every hop ends, and the client sees its connection closed before its
    /// lifetime ended (`StreamCut` says whether that was early).
    mutating func cutStream(_ request: UInt64, by pod: Int) {
        let index = Int(request - 1)
        guard self.isOpenStream(request), let stream = self.traffic.history[index].stream, let opened = stream.openedAt else { return }
        for hop in [1, 0] { self.release(ExchangeKey(request: request, hop: hop), status: 101) }
        let cut = StreamCut(at: self.now, pod: pod, crashed: self.pods[pod].state == .down, drainDeadline: self.pods[pod].node?.drainDeadline)
        self.traffic.history[index].stream?.cut = cut
        let how = cut.crashed ? "killed" : cut.drainDeadline == nil ? "not shutting down" : cut.early ? "before its drain deadline" : "at its drain deadline"
        self.finish(request, .unknown("TCP connection cut by \(self.pods[pod].name) (\(how)) after \(DurationText.format(self.now - opened)) of its \(DurationText.format(stream.lifetime))"))
    }

    /// TCP connection `request` is about to open on `tunnel`: when that tunnel's pod is shutting
    /// down although its agent's replacement tunnel, on a pod the entry pod reaches, has been
    /// open for the hand-over settle time, routing kept a new connection on the old tunnel
    /// (`new-streams-on-new-tunnels`).
    mutating func noteStreamPlacement(_ request: UInt64, on tunnel: TunnelID) {
        guard let placement = self.traffic.placements[tunnel], self.isShuttingDown(placement.pod),
              let entry = self.traffic.history[Int(request - 1)].path.first else { return }
        let settled = self.now - self.settings.node.handoverSettleTime
        for other in self.traffic.tunnels(of: placement.agent) where other.id != tunnel && !other.moving {
            guard let since = self.traffic.placements[other.id]?.openedAt, since <= settled,
                  self.isCurrent(other.pod, other.boot), self.pods[other.pod].state == .running, !self.isShuttingDown(other.pod) else { continue }
            let reachable = other.pod == entry
                || (!self.network.blocked.contains(SimNetwork.Link(from: entry, to: other.pod)) && !self.network.blocked.contains(SimNetwork.Link(from: other.pod, to: entry)))
            guard reachable else { continue }
            if self.traffic.streamsOnOldTunnels.count < 16 {
                self.traffic.streamsOnOldTunnels.append((self.now, request, placement.pod, since))
            }
            return
        }
    }
}
