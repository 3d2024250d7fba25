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
            guard let exchange = self.traffic.exchanges[key] else { continue }
            if self.parkIfPaused(.streamClosed(request: request), pod: exchange.pod, boot: exchange.boot) { return }
        }
        for key in keys { self.end(key, .ok) }
    }

    /// Cuts open TCP connection `request` because pod `pod`'s process stopped, or its node closed
    /// the tunnel under it: every hop ends, and the client sees its connection closed before its
    /// lifetime ended (`StreamCut` says whether that was early).
    mutating func cutStream(_ request: UInt64, by pod: Int) {
        let index = Int(request - 1)
        guard self.isOpenStream(request), let stream = self.traffic.history[index].stream, let opened = stream.openedAt else { return }
        for hop in [1, 0] {
            let key = ExchangeKey(request: request, hop: hop)
            guard let removed = self.traffic.exchanges.remove(key) else { continue }
            let exchange = removed.exchange
            var machine = removed.machine
            machine.finished(status: 101, router: &self.pods[exchange.pod].router)
            self.pods[exchange.pod].waiting.removeAll { $0 == key }
            guard self.isCurrent(exchange.pod, exchange.boot) else { continue }
            if let tunnel = exchange.countedTunnel { self.deliver(.streamFinished(tunnel), to: exchange.pod) }
            if exchange.relaying { self.deliver(.relayEnded, to: exchange.pod) }
        }
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
