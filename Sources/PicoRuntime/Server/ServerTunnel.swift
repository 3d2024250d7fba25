import PicoModel

/// One agent connection on the upstream port: the WebSocket handshake on
/// `GET /pico/v1/upstream/<endpoint>` (or Piko's `/piko/v1/upstream/<endpoint>`), then a `TunnelTransport` the node opens one stream on per
/// proxied request. It lives on one loop (its shard). It enters the node's registry when the
/// handshake completes and leaves it exactly once: when it closes, or earlier when the agent says
/// go-away (no new requests are routed to it; those in flight finish).
///
/// With `upstream.auth`, the handshake needs a token that verifies and lists the endpoint (or
/// lists none); the tunnel lasts until the token expires (unless
/// `disable_disconnect_on_expiry`): then the agent is told to go away (it dials again, with its
/// renewed token, before it lets go of this tunnel), no new request is routed to the tunnel, and
/// it closes when the agent lets go, or at the latest `expiryGrace` later.
final class ServerTunnel: ConnectionDelegate, TunnelTransportOwner {
    static let handshakeTimeout: Duration = .seconds(10)

    unowned(unsafe) let shard: LoopShard
    let connection: Connection
    var id: TunnelID?
    private(set) var transport: TunnelTransport?
    private var decoder = HTTP1RequestDecoder()
    private var handshakeTimer: LoopTimer?
    private var endpoint: String?
    private var pendingKey: String?
    /// When the agent's token stops verifying (Unix milliseconds), if the tunnel must end then.
    private var validUntil: Int64?
    /// The key that verified the agent's token (with `upstream.auth` or a tenant's keys).
    private var keyFingerprint: String?
    /// The verifier that holds that key: the upstream port's, or the agent's tenant's.
    private var keyHolder: VerifierHolder?
    /// The agent's tenant ("" without `upstream.tenants`).
    private var tenant = ""
    /// Who dialled (Piko's agent, Pico's, or Pico's replacing a moved tunnel), from the handshake.
    private var agent = TunnelAgent.pico
    private var expiryTimer: LoopTimer?
    /// How long a tunnel whose token expired may take to let go after its go-away.
    static let expiryGrace: Duration = .seconds(30)
    private var closed = false
    /// The agent asked for a PROXY protocol v2 header at the start of every TCP route stream.
    private(set) var sendsClientAddress = false
    /// True once the connection's place under `upstream.max_connections` is given back.
    private var released = false

    init(fd: Int32, shard: LoopShard) {
        self.shard = shard
        self.connection = Connection(fd: fd, loop: shard.loop, connected: true, delegate: nil)
        self.connection.delegate = self
        // The TLS handshake counts against the same timeout as the WebSocket one.
        self.handshakeTimer = shard.loop.schedule(after: Self.handshakeTimeout) { [weak self] in
            self?.refuse(status: 408, message: "upstream handshake timeout")
        }
        if let credentials = shard.node.upstreamTLS {
            do {
                self.connection.startTLS(try TLSSession(server: credentials.current, peer: Sockets.peerAddress(fd)?.description ?? "unknown"))
            } catch {
                shard.logTLSFailure(error, port: "upstream", peer: nil, plainText: false)
                self.connection.close()
            }
        }
    }

    /// The agent's TLS failed (logged, rate-limited): one that spoke plain HTTP is told so.
    func connection(_ connection: Connection, tlsFailed error: TLSError, peerSentPlainText: Bool) {
        self.shard.logTLSFailure(error, port: "upstream", peer: self.tlsPeer, plainText: peerSentPlainText)
        guard peerSentPlainText else { return }
        self.refuse(status: 400, message: "plain HTTP request sent to a TLS port")
    }

    private var tlsPeer: String? { self.connection.tls?.peerDescription ?? Sockets.peerAddress(self.connection.fd)?.description }

    /// Closes the tunnel (its streams fail) and unregisters it.
    func close(reason: String) {
        if let transport = self.transport {
            transport.close(reason: reason)
        } else {
            self.connection.close()
        }
    }

    private func refuse(status: Int, message: String) {
        guard !self.closed, self.transport == nil else { return }
        self.handshakeTimer?.cancel()
        self.connection.write(ProxyErrors.response(status: status, message: message, keepAlive: false))
        self.connection.closeLingering()
    }

    // MARK: Handshake

    func connection(_ connection: Connection, didRead bytes: UnsafeRawBufferPointer) {
        self.decoder.feed(bytes)
        do {
            while self.transport == nil, let part = try self.decoder.next() {
                switch part {
                case .head(let head):
                    guard self.accept(head) else { return }
                case .body:
                    break
                case .end:
                    guard let key = self.pendingKey, let endpoint = self.endpoint else { return }
                    self.upgrade(key: key, endpoint: endpoint)
                    return
                }
            }
        } catch {
            self.refuse(status: error.statusHint, message: error.message)
        }
    }

    /// Checks the handshake head; false after a refusal.
    private func accept(_ head: HTTPRequestHead) -> Bool {
        self.sendsClientAddress = ProxyProtocolV2.isRequested(by: head)
        self.agent = TunnelAgent(path: head.path, headers: head.headers)
        let endpoint: String
        switch UpstreamPath.read(head.path) {
        case .endpoint(let named):
            endpoint = named
        case .refused(let status, let message):
            self.refuse(status: status, message: message)
            return false
        }
        var gate = self.shard.upstreamGate
        if !self.shard.tenantGates.isEmpty {
            switch TenantHeader.find(in: head.headers) {
            case .malformed(let message):
                self.refuse(status: 400, message: message)
                return false
            case .none:
                return self.refuseUnknownTenant(endpoint: endpoint, named: nil)
            case .tenant(let id):
                guard let tenantGate = self.shard.tenantGates[id] else { return self.refuseUnknownTenant(endpoint: endpoint, named: id) }
                gate = tenantGate
                self.tenant = id
            }
        }
        if let gate {
            switch gate.access(head.headers, now: MonotonicClock.wallMilliseconds()).restricted(to: endpoint) {
            case .refused(let failure):
                self.shard.metrics.update { $0.authFailures.record(.upstream, failure.reason) }
                self.shard.logRefusal("agent refused", [("endpoint", .string(endpoint)), ("reason", .string(failure.description)), ("peer", .string(self.tlsPeer ?? "unknown"))])
                self.refuse(status: 401, message: failure.message)
                return false
            case .granted(let grant, _):
                // After the token verified (a caller without one learns nothing more than 401).
                if let disagreement = HTTPProxyRules.authorizationDisagreement(in: head.headers) {
                    self.refuse(status: 400, message: disagreement)
                    return false
                }
                if !gate.tunnelsOutliveTokens { self.validUntil = grant.validUntil }
                self.keyFingerprint = grant.keyFingerprint
                self.keyHolder = gate.holder
            case .open:
                break
            }
        }
        // Only a verified agent learns that another tenant holds the endpoint (no one else may
        // map who holds what). The node decides again when the tunnel registers; this spares the
        // agent an upgrade that would close at once, and tells it why.
        if !self.tenant.isEmpty, let holder = self.shard.router.tenant(holding: endpoint), holder != self.tenant {
            self.shard.logRefusal("agent refused", [("endpoint", .string(endpoint)), ("tenant", .string(self.tenant)), ("reason", .string("endpoint held by another tenant")), ("peer", .string(self.tlsPeer ?? "unknown"))])
            self.refuse(status: 409, message: "endpoint held by another tenant")
            return false
        }
        switch WebSocketHandshake.key(of: head) {
        case .failure(let refusal):
            self.refuse(status: refusal.status, message: refusal.message)
            return false
        case .success(let key):
            self.pendingKey = key
            self.endpoint = endpoint
            return true
        }
    }

    /// With tenants, an agent that names none, or one not configured: 401 `unknown tenant`.
    private func refuseUnknownTenant(endpoint: String, named id: String?) -> Bool {
        self.shard.metrics.update { $0.authFailures.record(.upstream, .unknownTenant) }
        self.shard.logRefusal("agent refused", [("endpoint", .string(endpoint)), ("reason", .string(id.map { "unknown tenant \($0)" } ?? "no tenant named")), ("peer", .string(self.tlsPeer ?? "unknown"))])
        self.refuse(status: 401, message: AuthFailure(.unknownTenant).message)
        return false
    }

    private func upgrade(key: String, endpoint: String) {
        self.handshakeTimer?.cancel()
        // The token was checked when the head arrived; its body (if any) may have taken until
        // now, so what changed meanwhile counts: a key that left the key set, or the expiry.
        if let fingerprint = self.keyFingerprint, self.keyHolder?.current.holds(fingerprint) == false {
            self.shard.metrics.update { $0.authFailures.record(.upstream, .unknownKey) }
            self.refuse(status: 401, message: AuthFailure(.unknownKey).message)
            return
        }
        if let validUntil = self.validUntil, MonotonicClock.wallMilliseconds() >= validUntil {
            self.shard.metrics.update { $0.authFailures.record(.upstream, .expired) }
            self.refuse(status: 401, message: AuthFailure(.expired).message)
            return
        }
        guard self.decoder.state == .upgradePending else {
            self.refuse(status: 400, message: "expected a WebSocket upgrade")
            return
        }
        let rest = Array(self.decoder.takeUpgradedBytes())
        self.connection.write(HTTP1Encoder.encode(WebSocketHandshake.switchingProtocols(key: key)))
        let transport = TunnelTransport(
            connection: self.connection, role: .server, initialBytes: rest, owner: self,
            keepaliveInterval: self.shard.settings.keepaliveInterval, keepaliveTimeout: self.shard.settings.keepaliveTimeout)
        self.transport = transport
        self.id = self.shard.register(self, endpoint: endpoint, tenant: self.tenant, agent: self.agent)
        self.shard.metrics.update { $0.upstreamsConnected += 1 }
        transport.start()
        self.armExpiry()
    }

    /// Arms the timer for the token's expiry (a day at most at a time: a far `exp` is checked
    /// again then, so no timer reaches past what the clock can add).
    private func armExpiry() {
        guard let validUntil = self.validUntil else { return }
        let left = validUntil - MonotonicClock.wallMilliseconds()
        guard left > 0 else { return self.tokenExpired() }
        self.expiryTimer = self.shard.loop.schedule(after: .milliseconds(min(left, 86_400_000))) { [weak self] in self?.armExpiry() }
    }

    /// A key set changed: a tunnel whose token's key left the set that verified it (the upstream
    /// port's, or its tenant's) ends as if its token expired.
    func keysChanged() {
        guard let fingerprint = self.keyFingerprint, let holder = self.keyHolder, !holder.current.holds(fingerprint) else { return }
        self.keyFingerprint = nil
        self.tokenExpired(reason: "the key that verified its token left the key set")
    }

    /// The agent's token expired (or its key was removed): no new request goes to the tunnel,
    /// the agent is told to go away (and dials again with its renewed token), and the tunnel
    /// closes once the agent lets go, or after `expiryGrace` at the latest.
    private func tokenExpired(reason: String = "token expired") {
        guard !self.closed, let transport = self.transport else { return }
        self.expiryTimer?.cancel()
        self.shard.log.info("tunnel token no longer valid; asking the agent to reconnect", [("endpoint", .string(self.endpoint ?? "")), ("reason", .string(reason))])
        transport.goAway()
        if let id = self.id { self.shard.unregister(id) }
        self.expiryTimer = self.shard.loop.schedule(after: Self.expiryGrace) { [weak self] in self?.close(reason: "token expired") }
    }

    func connectionDidReadEOF(_ connection: Connection) {
        connection.close()
    }

    func connectionDidClose(_ connection: Connection, error: SocketError?) {
        self.closed = true
        self.handshakeTimer?.cancel()
        self.expiryTimer?.cancel()
        self.release()
    }

    /// Gives the connection's place under the upstream cap back (once).
    private func release() {
        guard !self.released else { return }
        self.released = true
        self.shard.counters.upstreamConnections.subtract(1, ordering: .relaxed)
    }

    // MARK: TunnelTransportOwner

    func transport(_ transport: TunnelTransport, peerOpened id: UInt32) {
        // Agents never open streams.
        transport.reset(id)
    }

    func transportToldToGoAway(_ transport: TunnelTransport) {
        if let id = self.id { self.shard.unregister(id) }
    }

    func transportClosed(_ transport: TunnelTransport, reason: String) {
        self.closed = true
        self.expiryTimer?.cancel()
        self.release()
        self.shard.metrics.update { $0.upstreamsConnected -= 1 }
        self.shard.log.debug("tunnel closed", [("reason", .string(reason))])
        if let id = self.id { self.shard.unregister(id) }
    }
}
