import PicoModel

/// One stream the node opened on an agent's tunnel: one HTTP request, forwarded to the local
/// service over a pooled keep-alive connection, and its response streamed back, then FIN.
/// Upgrades (101) turn the stream into a byte pipe. Errors before a response head answer with
/// Piko's JSON (502 `upstream unreachable`, 504 `upstream timeout`).
final class AgentExchange: TunnelStreamHandler, ConnectionDelegate {
    let transport: TunnelTransport
    let streamID: UInt32
    let pool: BackendPool
    let timeout: Duration
    let log: Logger
    private var request = HTTP1RequestDecoder()
    private var response = HTTP1ResponseDecoder()
    private var head: HTTPRequestHead?
    private var backend: Connection?
    private var requestFraming: HTTPBodyFraming = .none
    private var responseChunked = false
    private var responseKeepAlive = true
    private var requestEnded = false
    private var responseStarted = false
    private var upgraded = false
    private var done = false
    private var owed = 0
    private var timer: LoopTimer?
    /// Answer bytes that go into the stream together: a small response's head, body and end
    /// leave in one data frame that also carries the FIN.
    private var pending: [UInt8] = []

    /// Bodies up to this size join the head's frame; larger ones go out as they are (no copy).
    static let coalesceLimit = 16 * 1_024
    /// Told when the exchange ends (for the agent's in-flight count).
    var onFinish: (() -> Void)?

    init(transport: TunnelTransport, streamID: UInt32, pool: BackendPool, timeout: Duration, log: Logger) {
        self.transport = transport
        self.streamID = streamID
        self.pool = pool
        self.timeout = timeout
        self.log = log
    }

    // MARK: From the tunnel

    func streamReceived(_ bytes: ArraySlice<UInt8>) {
        guard !self.done else {
            self.transport.consumed(bytes.count, on: self.streamID)
            return
        }
        if let backend = self.backend, !backend.isWritable {
            self.owed += bytes.count
        } else {
            self.transport.consumed(bytes.count, on: self.streamID)
        }
        if self.upgraded {
            self.backend?.write(bytes)
            return
        }
        self.request.feed(bytes)
        self.pullRequest()
    }

    func streamInputFinished() {
        if self.upgraded {
            self.backend?.shutdownWriteWhenFlushed()
            return
        }
        self.request.feedEOF()
        self.pullRequest()
    }

    func streamFailed(reason: String) {
        self.finish(closeBackend: true)
    }

    func streamWritable() {
        self.backend?.resumeReading()
    }

    private func pullRequest() {
        do {
            while !self.done, let part = try self.request.next() {
                switch part {
                case .head(let head): self.begin(head)
                case .body(let bytes):
                    if self.requestFraming == .chunked {
                        var chunk: [UInt8] = []
                        HTTP1Encoder.writeChunk(bytes, into: &chunk)
                        self.backend?.write(chunk)
                    } else {
                        self.backend?.write(bytes)
                    }
                case .end(let trailers):
                    if self.requestFraming == .chunked {
                        var last: [UInt8] = []
                        HTTP1Encoder.writeLastChunk(trailers: trailers, into: &last)
                        self.backend?.write(last)
                    }
                    self.requestEnded = true
                    return
                }
            }
        } catch {
            self.answer(status: error.statusHint, message: error.message)
        }
    }

    private func begin(_ head: HTTPRequestHead) {
        self.head = head
        self.requestFraming = self.request.headFraming
        var headers = HTTPProxyRules.endToEnd(head.headers, keepUpgrade: head.isUpgrade)
        if self.requestFraming == .chunked { headers.add(name: "Transfer-Encoding", value: "chunked") }
        let outgoing = HTTPRequestHead(method: head.method, target: head.target, version: .http1_1, headers: headers)
        do {
            let (connection, _) = try self.pool.checkout(delegate: self)
            self.backend = connection
            connection.write(HTTP1Encoder.encode(outgoing))
        } catch {
            self.log.warn("upstream unreachable", [("error", .string("\(error)"))])
            self.answer(status: 502, message: "upstream unreachable")
            return
        }
        self.response.expectResponse(to: head.method)
        if !head.isUpgrade, self.timeout > .zero {
            // A strong capture: `finish` cancels the timer.
            self.timer = self.transport.connection.loop.schedule(after: self.timeout) { [self] in
                guard !self.responseStarted, !self.done else { return }
                self.answer(status: 504, message: "upstream timeout")
            }
        }
    }

    // MARK: From the local service

    func connection(_ connection: Connection, didRead bytes: UnsafeRawBufferPointer) {
        if self.upgraded {
            self.transport.send(bytes, on: self.streamID)
        } else {
            self.response.feed(bytes)
            self.pullResponse()
        }
        if !self.done, !self.transport.canSend(on: self.streamID) { connection.pauseReading() }
    }

    func connectionDidReadEOF(_ connection: Connection) {
        if self.upgraded {
            self.transport.finish(self.streamID)
            self.finish(closeBackend: true)
            return
        }
        self.responseKeepAlive = false
        self.response.feedEOF()
        self.pullResponse()
        if !self.done { self.failBackend() }
    }

    func connectionDidDrain(_ connection: Connection) {
        guard self.owed > 0 else { return }
        self.transport.consumed(self.owed, on: self.streamID)
        self.owed = 0
    }

    func connectionDidClose(_ connection: Connection, error: SocketError?) {
        guard !self.done, connection === self.backend else { return }
        self.backend = nil
        if self.upgraded {
            self.transport.finish(self.streamID)
            self.finish(closeBackend: false)
            return
        }
        self.failBackend()
    }

    private func failBackend() {
        guard !self.done else { return }
        if self.responseStarted {
            self.transport.reset(self.streamID)
            self.finish(closeBackend: true)
        } else {
            self.answer(status: 502, message: "upstream unreachable")
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

    private func pullResponse() {
        defer { if !self.done { self.sendPending() } }
        do {
            while !self.done, let part = try self.response.next() {
                switch part {
                case .head(let head):
                    if head.isInterim {
                        HTTP1Encoder.write(head, into: &self.pending)
                        continue
                    }
                    self.timer?.cancel()
                    self.responseStarted = true
                    if head.status == 101, self.head?.isUpgrade == true {
                        self.upgraded = true
                        HTTP1Encoder.write(head, into: &self.pending)
                        self.sendPending()
                        let rest = self.response.takeUpgradedBytes()
                        if !rest.isEmpty { self.transport.send(rest, on: self.streamID) }
                        if self.request.state == .upgradePending {
                            let early = self.request.takeUpgradedBytes()
                            if !early.isEmpty { self.backend?.write(early) }
                        }
                        return
                    }
                    let framing = self.response.headFraming
                    var headers = HTTPProxyRules.endToEnd(head.headers, keepUpgrade: false)
                    self.responseChunked = framing == .chunked
                    if self.responseChunked { headers.add(name: "Transfer-Encoding", value: "chunked") }
                    if framing == .untilClose { self.responseKeepAlive = false }
                    if head.headers.hasToken("connection", "close") || head.version < .http1_1 { self.responseKeepAlive = false }
                    HTTP1Encoder.write(HTTPResponseHead(version: .http1_1, status: head.status, reason: head.reason, headers: headers), into: &self.pending)
                case .body(let bytes):
                    if self.responseChunked {
                        HTTP1Encoder.writeChunk(bytes, into: &self.pending)
                    } else if bytes.count <= Self.coalesceLimit {
                        self.pending.append(contentsOf: bytes)
                    } else {
                        self.sendPending()
                        self.transport.send(bytes, on: self.streamID)
                    }
                case .end(let trailers):
                    if self.responseChunked { HTTP1Encoder.writeLastChunk(trailers: trailers, into: &self.pending) }
                    self.sendPending(finishing: true)
                    self.finish(closeBackend: !(self.responseKeepAlive && self.requestEnded))
                }
            }
        } catch {
            self.log.warn("invalid response from the local service", [("error", .string("\(error)"))])
            self.failBackend()
        }
    }

    // MARK: Ending

    private func answer(status: Int, message: String) {
        guard !self.done else { return }
        self.transport.send(ProxyErrors.response(status: status, message: message, keepAlive: false), on: self.streamID)
        self.transport.finish(self.streamID)
        self.finish(closeBackend: true)
    }

    private func finish(closeBackend: Bool) {
        guard !self.done else { return }
        self.done = true
        self.timer?.cancel()
        if let backend = self.backend {
            self.backend = nil
            if closeBackend { backend.close() } else { self.pool.checkin(backend) }
        }
        self.onFinish?()
        self.onFinish = nil
    }
}
