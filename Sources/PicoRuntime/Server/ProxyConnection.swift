import PicoModel

/// One client connection on the proxy port: decodes requests one at a time (pipelined ones wait
/// in the decoder), routes each through the node, streams it onto a tunnel stream and the answer
/// back, with back-pressure both ways, Piko's JSON errors, and timeouts for slow heads and
/// bodies, idle keep-alive connections and upstreams that do not answer.
final class ProxyConnection: ConnectionDelegate {
    /// What a connection carries when it moves to the loop of its request's tunnel.
    struct Moved: Sendable {
        var head: HTTPRequestHead
        var decoder: HTTP1RequestDecoder
        var clientIP: String?
        var clientFinished: Bool
        /// Moves so far for this request (bounded by `maxMoves`).
        var moves: Int
        /// Nodes a forward of this request already failed on.
        var avoiding: [NodeUID]
        /// Waits for a holder before the move (the request counts once in the waited metric).
        var holderWaits: Int
        /// The decoder gave the request's end already (a retry that moved after its forward
        /// failed): the next part it gives belongs to the next request.
        var requestEnded: Bool
        /// What the request's token allows (checked once, on the loop that read the head).
        var access: RequestAccess
        /// The connection's TLS, which moves with it.
        var tls: TLSTransfer?
    }

    /// A TLS session on its way to another loop: the old loop detached the connection and
    /// never touches the session again, so only one thread uses it at a time.
    struct TLSTransfer: @unchecked Sendable {
        let session: TLSSession
    }

    /// Its loop's shard, which outlives every connection of the loop.
    unowned(unsafe) let shard: LoopShard
    let connection: Connection
    let clientIP: String?
    private var decoder: HTTP1RequestDecoder
    private var exchange: ProxyExchange?
    /// What the client owes (the next request, the rest of a head, more of a body), and by when.
    private var clientWatch: ClientReadWatch
    /// The current exchange's own deadline: its upstream's answer, its next heartbeat, or the
    /// end of its wait for a holder.
    private var exchangeDeadline: Instant?
    /// One timer for both deadlines. Moving a deadline later keeps it (it fires early, finds
    /// nothing due, and re-arms), so a keep-alive request costs a timer allocation only when a
    /// deadline comes nearer than the pending one (a body's read timeout, a forward's silence).
    private var timer: LoopTimer?
    private var clientFinished = false
    /// How long that close lingers: shorter after a timeout (`LingeringClose.slowClient`).
    private var lingering = LingeringClose()
    private var closed = false
    /// True while in its shard's idle list (a keep-alive connection waiting for its next request,
    /// its previous answer written whole: closing it loses nothing).
    private var isIdle = false
    /// Between requests with the previous answer still queued: it joins the idle list once the
    /// queue is written (`connectionDidFlush`).
    private var idleWhenFlushed = false
    /// When it joined the idle list (the node evicts the longest-idle connection first).
    var idleSince = Instant.zero
    /// The idle list's links (see `IdleConnections`).
    var idleNext: ProxyConnection?
    unowned(unsafe) var idlePrevious: ProxyConnection?
    /// Requests this connection began (the first one's forward heartbeats go out at once).
    private var requestsBegun = 0
    /// Leaving for another loop (once the previous answer is written): nothing more happens here.
    /// If the connection closes before it leaves, its request is no longer in flight.
    private var movedAway = false

    /// A connection accepted by this loop (`moved` nil), or one that moved here for the request
    /// `moved.head`, which is routed again here.
    init(fd: Int32, shard: LoopShard, moved: Moved?) {
        self.shard = shard
        if let moved {
            self.clientIP = moved.clientIP
            self.decoder = moved.decoder
            self.clientFinished = moved.clientFinished
        } else {
            self.clientIP = Sockets.peerAddress(fd)?.host
            var limits = HTTPDecoderLimits()
            limits.maxHeadBytes = shard.settings.maxHeaderBytes
            self.decoder = HTTP1RequestDecoder(limits: limits)
        }
        self.clientWatch = moved == nil ? ClientReadWatch(acceptedAt: shard.loop.now, timeouts: shard.clientTimeouts) : ClientReadWatch(owingNothing: shard.clientTimeouts)
        self.connection = Connection(fd: fd, loop: shard.loop, connected: true, delegate: nil)
        self.connection.delegate = self
        self.connection.writeStallTimeout = shard.settings.writeTimeout
        if let tls = moved?.tls {
            self.connection.startTLS(tls.session)
        } else if moved == nil, let credentials = shard.proxyTLS {
            do {
                self.connection.startTLS(try TLSSession(server: credentials.current, peer: self.clientIP ?? "unknown"))
            } catch {
                shard.logTLSFailure(error, port: "proxy", peer: self.clientIP, plainText: false)
                self.connection.close()
                return
            }
        }
        if let moved {
            if moved.clientFinished { self.connection.pauseReading() }
            self.begin(moved.head, moves: moved.moves, avoiding: moved.avoiding, holderWaits: moved.holderWaits, requestEnded: moved.requestEnded,
                       access: moved.access)
            self.processRequests()
        } else {
            self.rearmTimer()
        }
    }

    // MARK: Client side

    func connection(_ connection: Connection, didRead bytes: UnsafeRawBufferPointer) {
        guard !self.movedAway else { return }
        self.leaveIdle()
        self.clientWatch.bodyProgressed(now: self.shard.loop.now)
        if let exchange = self.exchange, exchange.flow.isTunnelling {
            guard let upstream = exchange.upstream else { return }
            upstream.send(bytes)
            if !upstream.canSend {
                exchange.flow.upstreamFull()
                connection.pauseReading()
            }
            return
        }
        self.decoder.feed(bytes)
        self.processRequests()
        // A head that is still partial after this read: it must complete within the header timeout.
        if self.exchange == nil, !self.closed, !self.movedAway, !self.connection.isClosing, !self.decoder.isIdle {
            self.clientWatch.headBytesRead(now: self.shard.loop.now)
            self.rearmTimer()
        }
    }

    func connectionDidReadEOF(_ connection: Connection) {
        guard !self.movedAway else { return }
        self.clientFinished = true
        if let exchange = self.exchange {
            if case .finishUpstream(let thenClose) = exchange.flow.clientEnded() {
                exchange.upstream?.finish()
                // Both directions are done: the upstream's side finished first.
                if thenClose { connection.closeWhenWritten() }
                return
            }
            if exchange.flow.requestEnded { return }
        }
        self.decoder.feedEOF()
        self.processRequests()
        if self.exchange == nil || self.exchange?.flow.requestEnded == false { connection.close() }
    }

    func connectionDidDrain(_ connection: Connection) {
        guard let exchange = self.exchange, exchange.owedConsumption > 0, let upstream = exchange.upstream else { return }
        let owed = exchange.owedConsumption
        exchange.owedConsumption = 0
        upstream.consumed(owed)
    }

    func connectionDidFlush(_ connection: Connection) {
        guard self.idleWhenFlushed else { return }
        self.idleWhenFlushed = false
        guard !self.closed, !self.movedAway, self.exchange == nil, self.decoder.isIdle, self.clientWatch.awaitsNextRequest else { return }
        self.isIdle = true
        self.shard.becameIdle(self)
    }

    /// The client's TLS failed (logged, rate-limited): a client that spoke plain HTTP to the
    /// TLS port is told so in plain text; any other closes.
    func connection(_ connection: Connection, tlsFailed error: TLSError, peerSentPlainText: Bool) {
        self.shard.logTLSFailure(error, port: "proxy", peer: self.clientIP, plainText: peerSentPlainText)
        guard peerSentPlainText, self.exchange == nil else { return }
        self.decoder = HTTP1RequestDecoder()
        self.clientWatch.stopWatching()
        connection.write(ProxyErrors.response(status: 400, message: "plain HTTP request sent to a TLS port", keepAlive: false))
        connection.closeLingering(.slowClient)
    }

    func connectionDidClose(_ connection: Connection, error: SocketError?) {
        self.closed = true
        self.leaveIdle()
        self.timer?.cancel()
        self.timer = nil
        self.exchangeDeadline = nil
        self.clientWatch.stopWatching()
        self.shard.counters.proxyConnections.subtract(1, ordering: .relaxed)
        if self.movedAway { self.shard.counters.inFlight.subtract(1, ordering: .relaxed) }
        if let exchange = self.exchange {
            self.exchange = nil
            self.tearDown(exchange)
            exchange.flow.abort()
            self.release(exchange)
        }
    }

    /// Pulls request parts while the current exchange can take them.
    private func processRequests() {
        do {
            while !self.closed, !self.movedAway, !self.connection.isClosing {
                if let exchange = self.exchange, !exchange.flow.readsRequestParts { return }
                guard let part = try self.decoder.next() else { return }
                switch part {
                case .head(let head): self.begin(head, moves: 0)
                case .body(let bytes): self.forwardBody(bytes)
                case .end(let trailers): self.endRequest(trailers: trailers)
                }
            }
        } catch {
            self.answerAndClose(status: error.statusHint, message: error.message)
        }
    }

    private func begin(_ head: HTTPRequestHead, moves: Int, avoiding: [NodeUID] = [], holderWaits: Int = 0, requestEnded: Bool = false,
                       access checked: RequestAccess? = nil) {
        self.leaveIdle()
        self.exchangeDeadline = nil
        let shard = self.shard
        // The wall clock is read only by a request that has a token or a proof to judge.
        var proof = ForwardProof.Check.notApplicable
        if let signer = shard.node.forwardSigner, head.headers.first("x-pico-forward") == "true" {
            proof = signer.check(head.headers.first(ForwardProof.header), method: head.method, target: head.target,
                                 endpoint: HTTPProxyRules.endpoint(of: head), now: MonotonicClock.wallMilliseconds() / 1_000)
        }
        let access = checked ?? shard.proxyGate.map { $0.access(head.headers, now: MonotonicClock.wallMilliseconds()) } ?? .open
        let machine = RequestExchange(head: head, framing: self.decoder.headFraming, clientHost: self.clientIP, router: shard.router,
                                      settings: shard.exchangeSettings, access: access, forwardProof: proof, moves: moves, avoiding: avoiding,
                                      holderWaits: holderWaits, firstOnConnection: self.requestsBegun == 0)
        if case .refused(let failure) = machine.access { shard.metrics.update { $0.authFailures.record(.proxy, failure.reason) } }
        self.requestsBegun += 1
        let flow = ExchangeFlow(head: head, framing: self.decoder.headFraming, requestEnded: requestEnded, clientFinished: self.clientFinished)
        let exchange = ProxyExchange(head: head, requestFraming: self.decoder.headFraming, startedAt: shard.loop.now, machine: machine, flow: flow)
        exchange.owner = self
        self.exchange = exchange
        shard.metrics.update { $0.inFlight += 1 }
        // A moved request is still counted by the process-wide figure (it never stopped).
        if moves == 0 { shard.counters.inFlight.add(1, ordering: .relaxed) }
        let bodyFollows = exchange.requestFraming != .none && exchange.flow.awaitsBody
        self.clientWatch.requestBegan(bodyFollows: bodyFollows, expectsContinue: bodyFollows && head.expectsContinue, now: shard.loop.now)
        self.rearmTimer()
        let action = exchange.machine.start(router: &shard.router, mayWait: shard.mayWait, now: shard.loop.now)
        self.follow(action, exchange)
    }

    /// Carries out what the exchange machine decided.
    private func follow(_ action: ExchangeAction, _ exchange: ProxyExchange) {
        let shard = self.shard
        switch action {
        case .openStream, .forward, .move, .wait:
            // The exchange goes elsewhere (or waits): a forward it had (one that went silent, or
            // whose holders all failed) is abandoned first.
            if exchange.upstream != nil { self.tearDown(exchange) }
        default:
            break
        }
        switch action {
        case .openStream(let id, let deadline):
            guard let tunnel = shard.usableTunnel(id) else {
                // Closing or gone, and the node's change has not arrived yet: route without it.
                self.follow(exchange.machine.tunnelUnavailable(id, router: &shard.router, mayWait: shard.mayWait, now: shard.loop.now), exchange)
                return
            }
            // The TCP route's stream goes to a TCP service: the node answers the handshake itself.
            var route: TCPRouteUpstream?
            if case .handshake(let handshake) = exchange.machine.tcpRoute, let transport = tunnel.transport {
                route = TCPRouteUpstream(transport: transport, handshake: handshake, exchange: exchange, idleTimeout: shard.settings.tcpIdleTimeout)
            }
            if let transport = tunnel.transport, !transport.isClosed, !transport.peerSaidGoAway, transport.isFull {
                // Busy, not closing: it stays in routing, and this request is told so.
                self.follow(exchange.machine.tunnelFull(id, router: &shard.router), exchange)
                return
            }
            guard let transport = tunnel.transport, let stream = transport.openStream(handler: route ?? exchange) else {
                // The tunnel refused a stream (its session is closing, as in a hand-over): nothing
                // was sent, so the request routes again without it (another tunnel, another
                // holder, or, forwarded here, an unserved answer the forwarding node retries).
                self.follow(exchange.machine.tunnelUnavailable(id, router: &shard.router, mayWait: shard.mayWait, now: shard.loop.now), exchange)
                return
            }
            exchange.countedTunnel = id
            shard.toModel(.routedByLoop(.local(id)))
            shard.metrics.update { $0.upstreamRequests += 1 }
            if let route {
                route.stream = stream
                if tunnel.sendsClientAddress {
                    // The agent's service reads the client's address first (PROXY protocol v2).
                    let ends = TCPRoute.connectionAddresses(of: exchange.head, arrivedFromPeer: exchange.machine.arrivedFromPeer,
                                                            socketPeer: Sockets.peerAddress(self.connection.fd), socketLocal: Sockets.localAddress(self.connection.fd))
                    transport.send(ProxyProtocolV2.header(source: ends.client, destination: ends.server), on: stream)
                }
                shard.metrics.update { $0.tcpRouteStreams += 1 }
                self.start(exchange, on: route, deadline: deadline)
            } else {
                self.start(exchange, on: TunnelStreamUpstream(transport: transport, stream: stream), deadline: deadline)
            }
        case .forward(let uid, let name, let address, let deadline):
            guard let upstream = shard.peers.open(to: address, handler: exchange) else {
                self.follow(exchange.machine.forwardRefused(router: &shard.router, now: shard.loop.now), exchange)
                return
            }
            shard.toModel(.routedByLoop(.forward(uid: uid, name: name, proxyAddress: address)))
            shard.metrics.update { $0.remoteRequests.add(1, to: name) }
            if !exchange.machine.avoiding.isEmpty { shard.metrics.update { $0.forwardRetries += 1 } }
            self.start(exchange, on: upstream, deadline: deadline)
        case .move(let loop):
            self.move(exchange, to: shard.node.shards[loop])
        case .wait(let until):
            shard.startWaiting(self)
            shard.holderWanted()
            self.setExchangeDeadline(until)
        case .armTimer(let deadline):
            self.setExchangeDeadline(deadline)
        case .watchRouting(let until):
            // The forward went silent: keep its connection, and hear of routing changes.
            shard.startWaiting(self)
            if let until { self.setExchangeDeadline(until) }
        case .heartbeat(let next):
            // The forwarding node's silence clock starts again (it swallows this interim answer).
            self.connection.write(ForwardHeartbeat.interimBytes)
            self.setExchangeDeadline(next)
        case .answer(let status, let message, let close):
            // The upstream failed or timed out (`close`): a body still arriving is not read to its
            // end, and the flow's completion abandons the upstream.
            self.answer(exchange, exchange.flow.answeredByPico(status: status, close: close), status: status, message: message)
        case .answerUnserved(let status, let message):
            // A forwarded request that found no tunnel here: the forwarding node may try another holder.
            self.answer(exchange, exchange.flow.answeredByPico(status: status, close: false), status: status, message: message,
                        extra: [UnservedForward.header: "1"])
        case .closeConnection:
            // Part of the answer went out: the client can only learn of the failure by the close.
            self.tearDown(exchange)
            exchange.flow.abort()
            self.release(exchange)
            self.exchange = nil
            self.connection.close()
        case .none:
            break
        }
    }

    /// Routing changed while this connection's request waited for a holder.
    func routingChanged() {
        guard let exchange = self.exchange, !self.closed, !self.movedAway else { return }
        let action = exchange.machine.routingChanged(router: &self.shard.router, now: self.shard.loop.now)
        switch action {
        case .wait, .watchRouting:
            // Still waiting, on the same deadline.
            self.shard.startWaiting(self)
            return
        case .none:
            // Nothing to watch any more (the shard dropped it from its list already).
            return
        default:
            break
        }
        self.exchangeDeadline = nil
        self.follow(action, exchange)
    }

    /// Tells the node what an exchange learned about reachability.
    private func report(_ report: ReachabilityReport?) {
        switch report {
        case .unreachable(let uid)?: self.shard.toModel(.forwardFailed(uid))
        case .reachable(let uid)?: self.shard.toModel(.forwardAnswered(uid))
        case .heartbeats(let uid, let wasUnreachable)?:
            self.shard.toModel(.forwardHeartbeats(uid))
            if wasUnreachable { self.shard.toModel(.forwardAnswered(uid)) }
        case nil: break
        }
    }

    /// Sends the rewritten request head upstream and arms `proxy.timeout` (not for upgrades).
    private func start(_ exchange: ProxyExchange, on upstream: any ExchangeUpstream, deadline: Instant?) {
        exchange.upstream = upstream
        // A fresh decoder for every upstream: one that replaces a failed or silent forward may
        // follow a decoder left mid-answer (interim heads, or part of a head).
        if exchange.response.state != .idle || exchange.response.bufferedByteCount > 0 { exchange.response = HTTP1ResponseDecoder() }
        exchange.response.expectResponse(to: exchange.head.method)
        let toPeer = exchange.machine.peer != nil
        let proof = toPeer ? self.shard.node.forwardSigner?.proof(method: exchange.head.method, target: exchange.head.target,
                                                                  endpoint: exchange.machine.endpoint, now: MonotonicClock.wallMilliseconds() / 1_000) : nil
        var upstreamHead = HTTPProxyRules.upstreamRequest(
            exchange.head, clientIP: self.clientIP, scheme: "http", to: toPeer ? .peer : .tunnel,
            arrivedFromPeer: exchange.machine.arrivedFromPeer, framing: exchange.requestFraming, heartbeat: exchange.machine.heartbeatRequest,
            credentialHeader: exchange.machine.access.consumedHeader, proof: proof)
        if toPeer, case .handshake = exchange.machine.tcpRoute {
            // The holder may owe its agent the client's address (PROXY protocol v2): this
            // node's socket knows it, the holder's sees this node.
            let client = Sockets.peerAddress(self.connection.fd).map { "\($0)" } ?? ""
            let server = Sockets.localAddress(self.connection.fd).map { "\($0)" } ?? ""
            upstreamHead.headers.replaceOrAdd(name: TCPRoute.forwardedClientField, value: client)
            upstreamHead.headers.replaceOrAdd(name: TCPRoute.forwardedServerField, value: server)
        }
        let request = HTTP1Encoder.encode(upstreamHead)
        if exchange.flow.headIsWholeRequest {
            request.withUnsafeBytes { upstream.sendWhole(raw: $0) }
        } else {
            upstream.send(request)
        }
        if let deadline { self.setExchangeDeadline(deadline) }
    }

    /// Abandons the exchange's upstream (a reset stream, or a peer connection closed).
    private func tearDown(_ exchange: ProxyExchange) {
        exchange.upstream?.reset()
        exchange.upstream = nil
    }

    /// Hands the connection, its decoder and the request head to `target`, the loop of the tunnel
    /// the request routes to, once the previous answer is written; the request starts over there.
    private func move(_ exchange: ProxyExchange, to target: LoopShard) {
        self.exchange = nil
        exchange.owner = nil
        self.clientWatch.stopWatching()
        self.exchangeDeadline = nil
        // Nothing more happens here: the timer would only keep this connection alive.
        self.timer?.cancel()
        self.timer = nil
        self.shard.metrics.update { $0.inFlight -= 1 }
        self.connection.pauseReading()
        self.movedAway = true
        self.connection.whenFlushed { [self] in
            let moved = Moved(
                head: exchange.head, decoder: self.decoder, clientIP: self.clientIP, clientFinished: self.clientFinished,
                moves: exchange.machine.moves, avoiding: exchange.machine.avoiding, holderWaits: exchange.machine.holderWaits,
                requestEnded: exchange.flow.requestEnded, access: exchange.machine.access, tls: self.connection.tls.map(TLSTransfer.init)
            )
            let fd = self.connection.detach()
            self.shard.metrics.update { $0.connectionMoves += 1 }
            target.loop.execute { target.adoptMoved(fd, moved) }
        }
    }

    private func forwardBody(_ bytes: ArraySlice<UInt8>) {
        guard let exchange = self.exchange else { return }
        exchange.requestBytes += bytes.count
        guard exchange.flow.sendsBody, let upstream = exchange.upstream else { return }
        if exchange.requestFraming == .chunked {
            var chunk: [UInt8] = []
            HTTP1Encoder.writeChunk(bytes, into: &chunk)
            upstream.send(chunk)
        } else {
            upstream.send(bytes)
        }
        if !upstream.canSend {
            exchange.flow.upstreamFull()
            self.connection.pauseReading()
        }
    }

    private func endRequest(trailers: HTTPHeaders) {
        guard let exchange = self.exchange else { return }
        self.clientWatch.stopWatching()
        switch exchange.flow.requestEnd() {
        case .endUpstreamRequest(let lastChunk, let finish):
            guard let upstream = exchange.upstream else { return }
            if lastChunk {
                var last: [UInt8] = []
                HTTP1Encoder.writeLastChunk(trailers: trailers, into: &last)
                upstream.send(last)
            }
            if finish { upstream.finish() }
        case .completed(let completion):
            self.complete(exchange, completion)
        case .none:
            break
        }
    }

    // MARK: Stream side (called by the current exchange only)

    func isCurrent(_ exchange: ProxyExchange) -> Bool { self.exchange === exchange }

    func streamReceived(_ bytes: ArraySlice<UInt8>, for exchange: ProxyExchange) {
        guard let upstream = exchange.upstream else { return }
        if self.connection.isWritable {
            upstream.consumed(bytes.count)
        } else {
            exchange.owedConsumption += bytes.count
        }
        if exchange.flow.isTunnelling {
            self.connection.write(bytes)
            return
        }
        exchange.response.feed(bytes)
        self.processResponse(exchange)
    }

    func streamInputFinished(for exchange: ProxyExchange) {
        if exchange.flow.isTunnelling {
            let clientFinishedToo = exchange.flow.upstreamFinished()
            self.connection.shutdownWriteWhenFlushed()
            if clientFinishedToo { self.connection.closeWhenWritten() }
            return
        }
        exchange.response.feedEOF()
        self.processResponse(exchange)
        if self.exchange === exchange, exchange.flow.awaitsAnswerEnd {
            self.failUpstream(exchange)
        }
    }

    func streamFailed(for exchange: ProxyExchange) {
        let progress = exchange.upstream?.progress ?? .answered
        exchange.upstream = nil
        if exchange.flow.isTunnelling {
            self.connection.closeWhenWritten()
            return
        }
        let (action, learned) = exchange.machine.upstreamFailed(progress: progress, router: &self.shard.router, mayWait: self.shard.mayWait, now: self.shard.loop.now)
        self.report(learned)
        self.follow(action, exchange)
    }

    /// The TCP route's WebSocket is over (its close handshake ended, or timed out): the
    /// connection closes once its last frame is written.
    func tunnelOver(for exchange: ProxyExchange) {
        self.connection.closeWhenWritten()
    }

    /// The exchange's stream never reached the agent (its tunnel said go-away while the stream
    /// waited to open): the machine routes it again or fails it (`RequestExchange.streamRefused`).
    func streamRefused(for exchange: ProxyExchange) {
        exchange.upstream = nil
        if let counted = exchange.countedTunnel {
            exchange.countedTunnel = nil
            self.shard.streamFinished(on: counted)
        }
        self.follow(exchange.machine.streamRefused(router: &self.shard.router, mayWait: self.shard.mayWait, now: self.shard.loop.now), exchange)
    }

    func streamWritable(for exchange: ProxyExchange) {
        guard exchange.flow.upstreamHasRoom() else { return }
        self.clientWatch.bodyProgressed(now: self.shard.loop.now)
        self.connection.resumeReading()
        if !exchange.flow.isTunnelling { self.processRequests() }
    }

    private func processResponse(_ exchange: ProxyExchange) {
        do {
            while self.exchange === exchange, exchange.flow.awaitsAnswerEnd, let part = try exchange.response.next() {
                switch part {
                case .head(let head):
                    if head.isInterim {
                        switch exchange.machine.interimAnswer(head, router: &self.shard.router, now: self.shard.loop.now) {
                        case .heartbeat(let action, let learned):
                            self.report(learned)
                            self.follow(action, exchange)
                        case .relay(let interim, let action):
                            self.connection.write(HTTP1Encoder.encode(interim))
                            self.clientWatch.answerHeadSent(status: interim.status, now: self.shard.loop.now)
                            self.rearmTimer()
                            self.follow(action, exchange)
                        }
                        continue
                    }
                    if exchange.machine.peer != nil, UnservedForward.isUnserved(head) {
                        // The node forwarded to reached no upstream: its connection is abandoned,
                        // and the request may go to another holder.
                        let action = exchange.machine.forwardUnserved(router: &self.shard.router, mayWait: self.shard.mayWait, now: self.shard.loop.now)
                        if action != .none {
                            self.tearDown(exchange)
                            self.follow(action, exchange)
                            return
                        }
                    }
                    self.sendResponseHead(head, exchange)
                    if exchange.flow.isTunnelling { return }
                case .body(let bytes):
                    exchange.responseBytes += bytes.count
                    if exchange.flow.clientFraming == .chunked {
                        var chunk: [UInt8] = []
                        HTTP1Encoder.writeChunk(bytes, into: &chunk)
                        self.connection.write(chunk)
                    } else {
                        self.connection.write(bytes)
                    }
                case .end:
                    if exchange.flow.clientFraming == .chunked {
                        var last: [UInt8] = []
                        HTTP1Encoder.writeLastChunk(into: &last)
                        self.connection.write(last)
                    }
                    guard let completion = exchange.flow.answerEnded() else { return }
                    self.complete(exchange, completion)
                }
            }
        } catch {
            self.failUpstream(exchange)
        }
    }

    private func sendResponseHead(_ head: HTTPResponseHead, _ exchange: ProxyExchange) {
        self.exchangeDeadline = nil
        self.clientWatch.answerHeadSent(status: head.status, now: self.shard.loop.now)
        self.rearmTimer()
        self.report(exchange.machine.answerStarted(router: self.shard.router))
        switch exchange.flow.answerHead(head, upstreamFraming: exchange.response.headFraming) {
        case .upgrade(let upgraded, let finishUpstream):
            exchange.responseHeaders = upgraded.headers
            self.clientWatch.stopWatching()
            self.connection.write(HTTP1Encoder.encode(upgraded))
            exchange.upstream?.upgraded()
            if exchange.machine.peer != nil {
                exchange.relayCounted = true
                self.shard.toModel(.relayStarted)
            }
            self.connection.write(exchange.response.takeUpgradedBytes())
            if self.decoder.state == .upgradePending, let upstream = exchange.upstream {
                let early = self.decoder.takeUpgradedBytes()
                if !early.isEmpty { upstream.send(early) }
            }
            // The client finished sending before the upgrade was accepted.
            if finishUpstream { exchange.upstream?.finish() }
        case .relay(let client, let refuseUpgrade):
            if refuseUpgrade, self.decoder.state == .upgradePending { self.decoder.refuseUpgrade() }
            exchange.responseHeaders = client.headers
            self.connection.write(HTTP1Encoder.encode(client))
        case .none:
            break
        }
    }

    // MARK: Ending an exchange

    /// Writes Pico's own answer (an error before any upstream answer), as the flow machine
    /// decided: then the exchange completes, or the rest of the body is read and dropped first.
    private func answer(_ exchange: ProxyExchange, _ own: ExchangeFlow.OwnAnswer, status: Int, message: String, extra: HTTPHeaders = [:]) {
        self.connection.write(ProxyErrors.response(status: status, message: message, keepAlive: own.keepAlive, extra: extra))
        self.clientWatch.answerHeadSent(status: status, now: self.shard.loop.now)
        self.rearmTimer()
        if let completion = own.completion { self.complete(exchange, completion) }
    }

    /// The upstream failed after the request went out (its answer broke off, or could not be
    /// parsed): the machine answers 502, or closes once the answer started.
    private func failUpstream(_ exchange: ProxyExchange) {
        guard self.exchange === exchange else { return }
        // A peer that closed before one byte of its answer (it exited, or closed an idle
        // connection as we reused it) reports so: the request may go elsewhere.
        let progress = exchange.upstream?.progress ?? .answered
        let (action, learned) = exchange.machine.upstreamFailed(progress: progress, router: &self.shard.router, mayWait: self.shard.mayWait, now: self.shard.loop.now)
        self.report(learned)
        self.follow(action, exchange)
    }

    /// The response is written (or queued): account for it, then go on as the flow machine
    /// decided (serve the next request, or close).
    private func complete(_ exchange: ProxyExchange, _ completion: ExchangeFlow.Completion) {
        guard self.exchange === exchange else { return }
        self.exchange = nil
        self.exchangeDeadline = nil
        self.clientWatch.stopWatching()
        switch completion.upstream {
        case .completed(let reusable):
            // Sent whole and answered whole: a peer connection may serve another request.
            exchange.upstream?.completed(reusable: reusable)
            exchange.upstream = nil
        case .abandoned:
            self.tearDown(exchange)
        }
        self.release(exchange)
        switch completion.ending {
        case .closeLingering:
            self.connection.closeLingering(self.lingering)
        case .closeWhenWritten:
            self.connection.closeWhenWritten()
        case .nextRequest:
            self.awaitNextRequest()
            self.processRequests()
        }
    }

    /// Ends `exchange`'s accounting with the status its client got (`flow.clientStatus`).
    private func release(_ exchange: ProxyExchange) {
        let status = exchange.flow.clientStatus
        exchange.owner = nil
        self.shard.metrics.update { $0.inFlight -= 1 }
        self.shard.counters.inFlight.subtract(1, ordering: .relaxed)
        self.shard.stopWaiting(self)
        if exchange.machine.holderWaits > 0 { self.shard.metrics.update { $0.requestsWaited += 1 } }
        exchange.machine.finished(status: status, router: &self.shard.router)
        if let tunnel = exchange.countedTunnel {
            exchange.countedTunnel = nil
            self.shard.streamFinished(on: tunnel)
        }
        if exchange.relayCounted {
            exchange.relayCounted = false
            self.shard.toModel(.relayEnded)
        }
        let seconds = Double((self.shard.loop.now - exchange.startedAt).nanosecondsClamped) / 1e9
        self.shard.metrics.update { $0.recordRequest(method: exchange.head.method, status: status, seconds: seconds, requestBytes: exchange.requestBytes, responseBytes: exchange.responseBytes) }
        let settings = self.shard.settings
        guard !settings.accessLogDisabled, !exchange.machine.isPicoPath else { return }
        let level = status >= 500 ? max(settings.accessLogLevel, .warn) : settings.accessLogLevel
        let log = self.shard.accessLog
        guard log.enabled(level) else { return }
        let fields: [(String, LogValue)] = [
            ("request", .object([
                ("proto", .string("\(exchange.head.version)")), ("method", .string(exchange.head.method)),
                ("host", .string(exchange.head.headers.first("host") ?? "")), ("path", .string(exchange.head.path)),
                ("request_headers", settings.accessLogRequestHeaders.logValue(exchange.head.headers)),
                ("response_headers", settings.accessLogResponseHeaders.logValue(exchange.responseHeaders)),
                ("status", .int(status)), ("duration", .string("\(Int(seconds * 1_000_000))µs")),
                ("endpoint", .string(exchange.machine.endpoint ?? "")), ("request_bytes", .int(exchange.requestBytes)), ("response_bytes", .int(exchange.responseBytes)),
            ])),
        ]
        log.log(level, "request", fields)
    }

    /// An error that ends the connection (a malformed request, a timeout): the answer is sent
    /// and the connection closes lingering, so a client still sending reads the answer.
    private func answerAndClose(status: Int, message: String) {
        if status == 408 { self.lingering = .slowClient }
        self.exchangeDeadline = nil
        self.clientWatch.stopWatching()
        // Nothing more is decoded: its buffer (up to a whole head) is given back now.
        self.decoder = HTTP1RequestDecoder()
        if let exchange = self.exchange {
            let action = exchange.machine.requestBroken(status: status, message: message, router: &self.shard.router)
            guard case .answer(let status, let message, _) = action else {
                // The answer (ours or the upstream's) went out already: close, lingering so a
                // client still sending reads it; nothing after this is read as a request.
                self.tearDown(exchange)
                exchange.flow.abort()
                self.release(exchange)
                self.exchange = nil
                self.connection.closeLingering(self.lingering)
                return
            }
            self.tearDown(exchange)
            self.answer(exchange, exchange.flow.requestBroke(status: status), status: status, message: message)
        } else {
            self.connection.write(ProxyErrors.response(status: status, message: message, keepAlive: false))
            self.connection.closeLingering(self.lingering)
        }
    }

    /// Between requests: the idle timeout (and, once the previous answer is written whole, a
    /// place in the shard's idle list, which the node closes first when it needs room at its
    /// cap), or the read-header timeout once a head has started.
    private func awaitNextRequest() {
        let started = !self.decoder.isIdle
        self.clientWatch.awaitNextRequest(headStarted: started, now: self.shard.loop.now)
        self.rearmTimer()
        if started {
            self.leaveIdle()
        } else if !self.isIdle, !self.idleWhenFlushed {
            // A slow reader with an answer still queued is not idle: evicting it would cut the answer.
            if self.connection.reportFlushed() {
                self.isIdle = true
                self.shard.becameIdle(self)
            } else {
                self.idleWhenFlushed = true
            }
        }
    }

    private func leaveIdle() {
        self.idleWhenFlushed = false
        guard self.isIdle else { return }
        self.isIdle = false
        self.shard.leftIdle(self)
    }

    /// The exchange waits until `deadline` (replacing its previous deadline).
    private func setExchangeDeadline(_ deadline: Instant) {
        self.exchangeDeadline = deadline
        self.rearmTimer()
    }

    /// Makes the timer fire no later than the earlier deadline. A pending timer that fires no
    /// later is kept: it re-checks and re-arms.
    private func rearmTimer() {
        let deadline: Instant?
        switch (self.exchangeDeadline, self.clientWatch.deadline) {
        case (let exchange?, let client?): deadline = min(exchange, client)
        case (let exchange?, nil): deadline = exchange
        case (nil, let client): deadline = client
        }
        guard let deadline else { return }
        if let timer = self.timer, timer.isPending, timer.deadline <= deadline { return }
        self.timer?.cancel()
        // A strong capture: closing the connection cancels the timer.
        self.timer = self.shard.loop.schedule(at: deadline) { [self] in self.timerFired() }
    }

    private func timerFired() {
        self.timer = nil
        guard !self.closed, !self.movedAway else { return }
        let now = self.shard.loop.now
        if let deadline = self.exchangeDeadline, now >= deadline {
            self.exchangeDeadline = nil
            if let exchange = self.exchange, exchange.flow.awaitsAnswerHead {
                self.shard.stopWaiting(self)
                let (action, learned) = exchange.machine.timerFired(router: &self.shard.router, now: now)
                self.report(learned)
                self.follow(action, exchange)
                guard !self.closed, !self.movedAway else { return }
            }
        }
        switch self.clientWatch.expired(now: now, bodyHeldBack: self.exchange?.flow.isHeldBack ?? false) {
        case .closeSilently:
            // Whatever of the last answer a slow reader has not taken yet is still written (a
            // reader that stops taking it is cut off by the write-stall timeout).
            self.connection.closeWhenWritten()
            return
        case .answer(let status, let message):
            self.answerAndClose(status: status, message: message)
            return
        case .notYet, .none:
            break
        }
        self.rearmTimer()
    }
}
