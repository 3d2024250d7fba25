import PicoModel

/// The TCP route (`TCPRoute`) at a node that holds a tunnel for the endpoint: a stream on that
/// tunnel, whose agent pipes it to a TCP service, presented to the proxy connection as an
/// upstream that answers the WebSocket handshake itself. The `101` goes out once the agent
/// accepted the stream (Pico's agent accepts once its service accepted the connection; Piko's at
/// once); a stream reset before that is the upstream's failure (502), no acceptance within
/// `proxy.timeout` a 504, as for any request. After the `101`, a `WebSocketStreamBridge` turns
/// the client's frames into stream bytes and the stream's bytes into frames.
///
/// Back-pressure: the connection stops reading the client while the stream is full (`canSend`),
/// and the stream's window is given back only as the framed bytes reach the client's socket
/// (`consumed`). Loop-confined.
final class TCPRouteUpstream: ExchangeUpstream, TunnelStreamHandler {
    /// How long a close handshake we began may wait for the client's close frame.
    static let closeTimeout: Duration = .seconds(5)
    /// How long a stream whose client went away after our direction ended cleanly may keep
    /// sending what it queued for the agent, while the agent's direction is still open (its
    /// bytes are dropped), before it is reset.
    static let finishLinger: Duration = .seconds(30)

    /// Where the route is.
    enum Phase {
        /// The stream was opened; the agent has not accepted it yet.
        case awaitingAcceptance
        /// The `101` went to the connection; it switches to the bridge next (`upgraded`).
        case accepted
        /// Bytes flow through the bridge.
        case bridging
        /// The WebSocket or the exchange is over: nothing more is reported.
        case over
    }

    let transport: TunnelTransport
    let handshake: TCPRoute.Handshake
    /// The stream (set once `openStream` gave it).
    var stream: UInt32 = 0
    private weak var exchange: ProxyExchange?
    private var phase = Phase.awaitingAcceptance
    private var bridge: WebSocketStreamBridge
    /// Framed bytes handed to the connection and not yet reported written, and the stream bytes
    /// among them not yet given back to the stream's window. Each written framed byte gives back
    /// at most one stream byte, and the last one gives back the rest, so the window opens only
    /// as the client takes the bytes (early by at most the few control frames' and the 101's
    /// bytes), in constant memory whatever the sizes of the pieces.
    private var framedOutstanding = 0
    private var streamOutstanding = 0
    private var closeTimer: LoopTimer?
    /// `proxy.tcp.idle_timeout` (zero: none), when a byte last went either way, and its timer.
    private let idleTimeout: Duration
    private var lastActivity = Instant.zero
    private var idleTimer: LoopTimer?
    /// Our direction of the stream ended (FIN requested: what was queued still goes out).
    private var streamFinishRequested = false
    /// The agent's direction of the stream ended.
    private var streamInputEnded = false
    private var lingerTimer: LoopTimer?

    init(transport: TunnelTransport, handshake: TCPRoute.Handshake, exchange: ProxyExchange, idleTimeout: Duration) {
        self.transport = transport
        self.handshake = handshake
        self.exchange = exchange
        self.idleTimeout = idleTimeout
        self.bridge = WebSocketStreamBridge(role: .server, halfClose: handshake.halfClose)
    }

    // MARK: ExchangeUpstream (the connection's side)

    /// Before the upgrade, the only bytes sent are the request head, which the agent's TCP
    /// service must not see; after it, the client's frames.
    func send(raw bytes: UnsafeRawBufferPointer) {
        guard self.phase == .bridging else { return }
        self.lastActivity = self.transport.connection.loop.now
        self.carryOut(self.bridge.received(bytes))
    }

    func sendWhole(raw bytes: UnsafeRawBufferPointer) {}

    var canSend: Bool { self.phase != .bridging || self.transport.canSend(on: self.stream) }

    /// The client's connection ended (its end of stream).
    func finish() {
        guard self.phase == .bridging || self.phase == .accepted else { return }
        self.carryOut(self.bridge.peerConnectionEnded())
    }

    /// The exchange is over (its connection closed). A stream whose direction ended cleanly is
    /// not reset, which would drop what is still queued for the agent: it finishes by itself
    /// (both directions ended), or lingers, dropping what the agent still sends, for at most
    /// `finishLinger`. Any other stream is reset at once.
    func reset() {
        self.phase = .over
        self.exchange = nil
        self.cancelTimers()
        guard self.streamFinishRequested else {
            self.transport.reset(self.stream)
            return
        }
        guard !self.streamInputEnded, self.lingerTimer == nil else { return }
        // A strong capture: the timer keeps the handler until the stream closed or was reset.
        self.lingerTimer = self.transport.connection.loop.schedule(after: Self.finishLinger) { [self] in
            self.lingerTimer = nil
            self.transport.reset(self.stream)
        }
    }

    func consumed(_ count: Int) {
        self.framedOutstanding -= count
        var give = min(self.streamOutstanding, count)
        if self.framedOutstanding <= 0 {
            self.framedOutstanding = 0
            give = self.streamOutstanding
        }
        self.streamOutstanding -= give
        if give > 0 { self.transport.consumed(give, on: self.stream) }
    }

    func upgraded() {
        guard self.phase == .accepted else { return }
        self.phase = .bridging
        self.lastActivity = self.transport.connection.loop.now
        self.armIdleTimer()
    }

    func completed(reusable: Bool) {}

    /// A tunnel stream is not tried again elsewhere (as `TunnelStreamUpstream`).
    var progress: UpstreamProgress { .answered }

    // MARK: TunnelStreamHandler (the agent's side)

    func streamAccepted() {
        guard self.phase == .awaitingAcceptance, let exchange = self.exchange else { return }
        self.phase = .accepted
        let answer = HTTP1Encoder.encode(self.handshake.switchingProtocols)
        self.framedOutstanding += answer.count
        exchange.streamReceived(answer[...])
    }

    func streamReceived(_ bytes: ArraySlice<UInt8>) {
        // Bytes before the acknowledgement: the agent accepted (a peer may skip the ACK flag).
        if self.phase == .awaitingAcceptance { self.streamAccepted() }
        if self.phase == .bridging { self.lastActivity = self.transport.connection.loop.now }
        guard self.phase == .bridging, let exchange = self.exchange, self.bridge.carriesStreamBytes, !bytes.isEmpty else {
            self.transport.consumed(bytes.count, on: self.stream)
            return
        }
        // The frame's header, then the bytes as they are (not copied into a frame first).
        var header: [UInt8] = []
        header.reserveCapacity(10)
        WebSocketFrameEncoder.writeUnmaskedHeader(.binary, length: bytes.count, into: &header)
        self.framedOutstanding += header.count + bytes.count
        self.streamOutstanding += bytes.count
        exchange.streamReceived(header[...])
        exchange.streamReceived(bytes)
    }

    func streamInputFinished() {
        self.streamInputEnded = true
        switch self.phase {
        case .awaitingAcceptance, .accepted:
            // The agent ended the stream before the upgrade: the upstream failed.
            self.exchange?.streamInputFinished()
        case .bridging:
            self.carryOut(self.bridge.streamEnded())
        case .over:
            // Both directions ended: the stream closes by itself.
            self.lingerTimer?.cancel()
            self.lingerTimer = nil
        }
    }

    func streamFailed(reason: String) {
        switch self.phase {
        case .awaitingAcceptance, .accepted:
            self.phase = .over
            self.exchange?.streamFailed(reason: reason)
        case .bridging:
            self.carryOut(self.bridge.streamFailed(reason: "the upstream connection was reset"))
        case .over:
            self.lingerTimer?.cancel()
            self.lingerTimer = nil
        }
    }

    func streamWritable() {
        self.exchange?.streamWritable()
    }

    /// The stream never reached the agent: the handshake may go elsewhere (nothing of it is sent
    /// before the 101).
    func streamRefused() {
        guard self.phase == .awaitingAcceptance else { return }
        self.phase = .over
        self.exchange?.streamRefused()
    }

    // MARK: Helpers

    private func carryOut(_ outputs: [WebSocketStreamBridge.Output]) {
        for output in outputs {
            guard self.phase != .over else { return }
            switch output {
            case .deliver(let bytes):
                bytes.withUnsafeBytes { self.transport.send($0, on: self.stream) }
            case .finishStream:
                self.streamFinishRequested = true
                self.transport.finish(self.stream)
            case .write(let frame):
                // A client that sends pings faster than it reads the pongs gets no more of them
                // while its socket is backed up (RFC 6455 §5.5.3 allows answering only some):
                // pongs are the one thing it could make the node queue without a window.
                if case .pong = frame, self.exchange?.clientIsBackedUp == true { continue }
                var framed: [UInt8] = []
                WebSocketStreamBridge.encode(frame, maskingKey: nil, into: &framed)
                self.framedOutstanding += framed.count
                self.exchange?.streamReceived(framed[...])
                if case .close = frame, self.bridge.state == .closeSent { self.armCloseTimer() }
            case .close:
                self.phase = .over
                self.cancelTimers()
                self.exchange?.tunnelOver()
            }
        }
    }

    private func cancelTimers() {
        self.closeTimer?.cancel()
        self.closeTimer = nil
        self.idleTimer?.cancel()
        self.idleTimer = nil
    }

    /// Fires `idleTimeout` after the last byte either way (re-armed when bytes moved since).
    private func armIdleTimer() {
        guard self.idleTimeout > .zero, self.phase == .bridging else { return }
        self.idleTimer = self.transport.connection.loop.schedule(at: self.lastActivity + self.idleTimeout) { [weak self] in
            guard let self, self.phase == .bridging else { return }
            self.idleTimer = nil
            if self.transport.connection.loop.now - self.lastActivity >= self.idleTimeout {
                self.carryOut(self.bridge.idleTimedOut())
            } else {
                self.armIdleTimer()
            }
        }
    }

    /// Our close frame went out: the client has `closeTimeout` to answer it.
    private func armCloseTimer() {
        guard self.closeTimer == nil else { return }
        self.closeTimer = self.transport.connection.loop.schedule(after: Self.closeTimeout) { [weak self] in
            guard let self, self.phase != .over else { return }
            self.closeTimer = nil
            self.phase = .over
            self.exchange?.tunnelOver()
        }
    }
}
