import PicoModel

/// One stream the node opened on an agent's tunnel, run by an `AgentRequestExchange`: this
/// class only decodes the stream and the backend connection, offers the parts and events to
/// the machine and carries out its actions (stream and socket I/O, the pool, the timer, flow
/// control). Every status, framing, keep-alive, upgrade and timeout rule is the machine's.
final class AgentExchange: TunnelStreamHandler, ConnectionDelegate {
    let transport: TunnelTransport
    let streamID: UInt32
    let pool: BackendPool
    let log: Logger
    private var machine: AgentRequestExchange
    private var request = HTTP1RequestDecoder()
    private var response = HTTP1ResponseDecoder()
    private var backend: Connection?
    /// Stream bytes the node sent while the backend connection was full: credited to the
    /// stream's window once the connection drains.
    private var owed = 0
    private var timer: LoopTimer?
    /// Answer bytes that go into the stream together: a small response's head, body and end
    /// leave in one data frame that also carries the FIN.
    private var pending: [UInt8] = []

    /// Told when the exchange ends (for the agent's in-flight count).
    var onFinish: (() -> Void)?

    init(transport: TunnelTransport, streamID: UInt32, pool: BackendPool, timeout: Duration, log: Logger) {
        self.transport = transport
        self.streamID = streamID
        self.pool = pool
        self.log = log
        self.machine = AgentRequestExchange(timeout: timeout)
    }

    // MARK: From the tunnel

    func streamReceived(_ bytes: ArraySlice<UInt8>) {
        guard !self.machine.isFinished else {
            self.transport.consumed(bytes.count, on: self.streamID)
            return
        }
        if let backend = self.backend, !backend.isWritable {
            self.owed += bytes.count
        } else {
            self.transport.consumed(bytes.count, on: self.streamID)
        }
        if self.machine.isPiping {
            self.backend?.write(bytes)
            return
        }
        self.request.feed(bytes)
        self.pullRequest()
    }

    func streamInputFinished() {
        if self.machine.isPiping {
            self.carryOut(self.machine.streamInputFinished())
            return
        }
        self.request.feedEOF()
        self.pullRequest()
    }

    func streamFailed(reason: String) {
        self.carryOut(self.machine.streamFailed())
    }

    func streamWritable() {
        self.backend?.resumeReading()
    }

    private func pullRequest() {
        do {
            while self.machine.wantsRequestParts, let part = try self.request.next() {
                switch part {
                case .head(let head): self.carryOut(self.machine.requestHead(head, framing: self.request.headFraming, now: self.transport.connection.loop.now))
                case .body(let bytes): self.carryOut(self.machine.requestBody(bytes))
                case .end(let trailers): self.carryOut(self.machine.requestEnd(trailers: trailers))
                }
            }
        } catch {
            self.carryOut(self.machine.requestBroken(status: error.statusHint, message: error.message))
        }
    }

    // MARK: From the local service

    func connection(_ connection: Connection, didRead bytes: UnsafeRawBufferPointer) {
        if self.machine.isPiping {
            self.transport.send(bytes, on: self.streamID)
        } else {
            self.response.feed(bytes)
            self.pullResponse()
        }
        if !self.machine.isFinished, !self.transport.canSend(on: self.streamID) { connection.pauseReading() }
    }

    func connectionDidReadEOF(_ connection: Connection) {
        let action = self.machine.backendReadEOF()
        guard !self.machine.isFinished, !self.machine.isPiping else {
            self.carryOut(action)
            return
        }
        self.response.feedEOF()
        self.pullResponse()
        self.carryOut(self.machine.backendFailed())
    }

    func connectionDidDrain(_ connection: Connection) {
        guard self.owed > 0 else { return }
        self.transport.consumed(self.owed, on: self.streamID)
        self.owed = 0
    }

    func connectionDidClose(_ connection: Connection, error: SocketError?) {
        guard connection === self.backend else { return }
        self.backend = nil
        self.carryOut(self.machine.backendFailed())
    }

    private func pullResponse() {
        do {
            while !self.machine.isFinished, !self.machine.isPiping, let part = try self.response.next() {
                switch part {
                case .head(let head): self.carryOut(self.machine.responseHead(head, framing: self.response.headFraming, into: &self.pending))
                case .body(let bytes): self.carryOut(self.machine.responseBody(bytes, into: &self.pending))
                case .end(let trailers): self.carryOut(self.machine.responseEnd(trailers: trailers, into: &self.pending))
                }
            }
        } catch {
            self.log.warn("invalid response from the local service", [("error", .string("\(error)"))])
            self.carryOut(self.machine.backendFailed())
        }
        if !self.machine.isFinished { self.sendPending() }
    }

    // MARK: Carrying out

    private func carryOut(_ action: AgentExchangeAction) {
        switch action {
        case .none:
            break
        case .openBackend(let head, let deadline):
            self.open(head, deadline: deadline)
        case .sendToBackend(let bytes):
            self.backend?.write(bytes)
        case .cancelTimeout:
            self.timer?.cancel()
            self.timer = nil
        case .sendToStream(let bytes):
            self.sendPending()
            self.transport.send(bytes, on: self.streamID)
        case .startPipe:
            self.startPipe()
        case .shutdownBackendWrite:
            self.backend?.shutdownWriteWhenFlushed()
        case .finish(let keepBackend):
            self.sendPending(finishing: true)
            self.end(keepBackend: keepBackend)
        case .answer(let status, let message):
            self.transport.send(ProxyErrors.response(status: status, message: message, keepAlive: false), on: self.streamID)
            self.transport.finish(self.streamID)
            self.end(keepBackend: false)
        case .reset:
            self.transport.reset(self.streamID)
            self.end(keepBackend: false)
        case .abandon:
            self.end(keepBackend: false)
        }
    }

    private func open(_ head: HTTPRequestHead, deadline: Instant?) {
        do {
            let (connection, _) = try self.pool.checkout(delegate: self)
            self.backend = connection
            connection.write(HTTP1Encoder.encode(head))
        } catch {
            self.log.warn("upstream unreachable", [("error", .string("\(error)"))])
            self.carryOut(self.machine.backendUnavailable())
            return
        }
        self.response.expectResponse(to: head.method)
        if let deadline {
            // A strong capture: `end` cancels the timer.
            self.timer = self.transport.connection.loop.schedule(at: deadline) { [self] in
                self.timer = nil
                self.carryOut(self.machine.timerFired())
            }
        }
    }

    /// The `101` head is pending: it goes out, then what either side sent after its head.
    private func startPipe() {
        self.sendPending()
        let rest = self.response.takeUpgradedBytes()
        if !rest.isEmpty { self.transport.send(rest, on: self.streamID) }
        if self.request.state == .upgradePending {
            let early = self.request.takeUpgradedBytes()
            if !early.isEmpty { self.backend?.write(early) }
        }
    }

    private func sendPending(finishing: Bool = false) {
        guard !self.pending.isEmpty else {
            if finishing { self.transport.finish(self.streamID) }
            return
        }
        self.transport.send(self.pending, on: self.streamID, finishing: finishing)
        self.pending.removeAll(keepingCapacity: true)
    }

    private func end(keepBackend: Bool) {
        self.timer?.cancel()
        self.timer = nil
        if let backend = self.backend {
            self.backend = nil
            if keepBackend { self.pool.checkin(backend) } else { backend.close() }
        }
        self.onFinish?()
        self.onFinish = nil
    }
}
