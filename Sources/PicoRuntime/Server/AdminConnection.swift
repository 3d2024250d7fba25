import PicoModel

/// One connection on the admin port: `/health`, `/ready`, `/metrics` and the `/status/…` JSON
/// routes, with `?forward=<node-id>`: answered here for the local ID, asked of that node's admin
/// address for an alive member (502 when it does not answer), 404 for unknown IDs. Requests are
/// answered in order; reading waits while a forwarded one is out, and while answers the client
/// has not read fill the write queue (pipelined requests cannot queue answers without bound).
/// On a TLS admin port with client CAs, every route but `/health` and `/ready` needs a verified
/// client certificate (403 without one): probes carry none.
final class AdminConnection: ConnectionDelegate {
    unowned let node: PicoNode
    let connection: Connection
    private var decoder = HTTP1RequestDecoder()
    private var pending: HTTPRequestHead?
    private var idleTimer: LoopTimer?
    /// False until the client's first byte: a silent connection gets the header timeout.
    private var heardFromClient = false
    private var forwarding = false
    /// Reading stopped until the client reads the answers queued for it.
    private var pausedForOutput = false

    init(fd: Int32, node: PicoNode) {
        self.node = node
        self.connection = Connection(fd: fd, loop: node.loop, connected: true, delegate: nil)
        self.connection.delegate = self
        if let credentials = node.adminTLS {
            do {
                self.connection.startTLS(try TLSSession(server: credentials.current, peer: Sockets.peerAddress(fd)?.description ?? "unknown"))
            } catch {
                node.shards[0].logTLSFailure(error, port: "admin", peer: nil, plainText: false)
                self.connection.close()
                return
            }
        }
        // The first byte is due within the header timeout (as on the proxy port), so silent
        // connections cannot hold `admin.max_connections` and keep probes out.
        self.armIdleTimer(after: node.settings.readHeaderTimeout)
    }

    func connection(_ connection: Connection, didRead bytes: UnsafeRawBufferPointer) {
        if !self.heardFromClient {
            self.heardFromClient = true
            self.armIdleTimer()
        }
        self.decoder.feed(bytes)
        self.serve()
    }

    private func serve() {
        let connection = self.connection
        do {
            while !self.forwarding, connection.isWritable, let part = try self.decoder.next() {
                switch part {
                case .head(let head): self.pending = head
                case .body: break
                case .end:
                    guard let head = self.pending else { continue }
                    self.pending = nil
                    self.respond(to: head)
                    if self.forwarding { return }
                    if !head.keepAlive {
                        connection.closeWhenWritten()
                        return
                    }
                    self.armIdleTimer()
                }
            }
            if self.decoder.state == .upgradePending { self.decoder.refuseUpgrade() }
            if !connection.isWritable {
                self.pausedForOutput = true
                connection.pauseReading()
            }
        } catch {
            connection.write(ProxyErrors.response(status: error.statusHint, message: error.message, keepAlive: false))
            connection.closeLingering()
        }
    }

    func connectionDidReadEOF(_ connection: Connection) { connection.closeWhenWritten() }

    /// The client's TLS failed (logged, rate-limited): one that spoke plain HTTP is told so.
    func connection(_ connection: Connection, tlsFailed error: TLSError, peerSentPlainText: Bool) {
        self.node.shards[0].logTLSFailure(error, port: "admin", peer: Sockets.peerAddress(connection.fd)?.description, plainText: peerSentPlainText)
        guard peerSentPlainText else { return }
        connection.write(ProxyErrors.response(status: 400, message: "plain HTTP request sent to a TLS port", keepAlive: false))
        connection.closeWhenWritten()
    }

    /// False on a TLS port with client CAs unless the client presented a verified certificate
    /// (and false when the session is gone: it fails closed).
    private var clientMayAskEverything: Bool {
        guard self.node.adminTLS != nil, self.node.settings.adminTLS.clientCAsPath != nil else { return true }
        return self.connection.tls?.peerCertificateVerified == true
    }

    /// An error answer; a `HEAD` gets its head only.
    private func refuse(_ status: Int, _ message: String, head: HTTPRequestHead, extra: HTTPHeaders = [:]) {
        self.connection.write(ProxyErrors.response(status: status, message: message, keepAlive: head.keepAlive, extra: extra, headOnly: head.method == "HEAD"))
    }

    func connectionDidDrain(_ connection: Connection) {
        guard self.pausedForOutput, connection.state == .open else { return }
        self.pausedForOutput = false
        connection.resumeReading()
        self.serve()
    }

    func connectionDidClose(_ connection: Connection, error: SocketError?) {
        self.idleTimer?.cancel()
        self.node.adminConnectionClosed()
    }

    /// How long a connection may wait between requests (and a started request for its end).
    static let idleTimeout: Duration = .seconds(60)

    private func armIdleTimer(after delay: Duration = AdminConnection.idleTimeout) {
        self.idleTimer?.cancel()
        self.idleTimer = self.node.loop.schedule(after: delay) { [weak self] in self?.connection.close() }
    }

    private func respond(to head: HTTPRequestHead) {
        let (path, query) = Self.split(head.target)
        // Without a client certificate only the probes' own answers: no route, and no dial to
        // another node on the client's behalf.
        guard ((path == "/health" || path == "/ready") && query["forward"] == nil) || self.clientMayAskEverything else {
            self.refuse(403, "client certificate required", head: head)
            return
        }
        // With admin.auth, the same: only the probes' own answers without a token.
        var credential: (String, String)?
        if let gate = self.node.adminGate, !((path == "/health" || path == "/ready") && query["forward"] == nil) {
            switch gate.access(head.headers, now: MonotonicClock.wallMilliseconds()) {
            case .refused(let failure):
                self.node.shards[0].metrics.update { $0.authFailures.record(.admin, failure.reason) }
                self.refuse(401, failure.message, head: head)
                return
            case .granted(_, let header):
                credential = head.headers.first(header).map { (header, $0) }
            case .open:
                break
            }
        }
        if let forward = query["forward"], forward != self.node.cluster.me.name {
            guard let member = self.node.cluster.membership.memberList.first(where: { $0.info.name == forward && $0.state.status == .alive }) else {
                self.refuse(404, "node not found", head: head)
                return
            }
            self.forward(head, path: path, to: member.info.adminAddress, credential: credential)
            return
        }
        guard head.method == "GET" || head.method == "HEAD" else {
            self.refuse(405, "method not allowed", head: head, extra: ["Allow": "GET, HEAD"])
            return
        }
        let status = AdminRoutes(node: self.node)
        switch path {
        case "/health":
            self.write(200, "", type: "text/plain", head: head)
        case "/ready":
            self.write(self.node.ready ? 200 : 503, "", type: "text/plain", head: head)
        case "/metrics":
            self.write(200, status.metrics(), type: "text/plain; version=0.0.4; charset=utf-8", head: head)
        case "/status/upstream/endpoints":
            self.write(200, status.upstreamEndpoints(), type: "application/json", head: head)
        case "/status/gossip/keys":
            self.write(200, status.gossipKeys(), type: "application/json", head: head)
        case "/status/upstream/tenants":
            self.write(200, status.endpointTenants(), type: "application/json", head: head)
        case "/status/cluster/nodes":
            self.write(200, status.clusterNodes(), type: "application/json", head: head)
        case "/status/gossip/nodes":
            self.write(200, status.gossipNodes(), type: "application/json", head: head)
        case "/status/cluster/tunnels":
            self.write(200, status.clusterTunnels(), type: "application/json", head: head)
        default:
            if path.hasPrefix("/status/cluster/nodes/"), let body = status.clusterNode(String(path.dropFirst("/status/cluster/nodes/".count))) {
                self.write(200, body, type: "application/json", head: head)
            } else {
                self.refuse(404, "not found", head: head)
            }
        }
    }

    /// Asks the member's admin port for `path` and relays its answer; reading resumes after.
    private func forward(_ head: HTTPRequestHead, path: String, to address: Address, credential: (String, String)?) {
        self.forwarding = true
        self.connection.pauseReading()
        let shard = self.node.shards[0]
        AdminForward.get(path, from: address, loop: self.node.loop, tls: self.node.forwardTLS?.admin == true ? self.node.forwardTLS : nil,
                         credential: credential, onTLSFailure: { shard.logTLSFailure($0, port: "proxy.tls.client", peer: "\(address)", plainText: false) }) { [weak self] answer in
            guard let self, self.connection.state == .open else { return }
            if let answer {
                self.write(answer.status, answer.body, type: answer.contentType, head: head)
            } else {
                self.refuse(502, "node unreachable", head: head)
            }
            self.forwarding = false
            if !head.keepAlive {
                self.connection.closeWhenWritten()
                return
            }
            self.connection.resumeReading()
            self.armIdleTimer()
            self.serve()
        }
    }

    private func write(_ status: Int, _ body: String, type: String, head: HTTPRequestHead) {
        self.write(status, Array(body.utf8), type: type, head: head)
    }

    private func write(_ status: Int, _ bytes: [UInt8], type: String, head: HTTPRequestHead) {
        var headers: HTTPHeaders = ["Content-Type": type, "Content-Length": String(bytes.count)]
        if !head.keepAlive { headers.add(name: "Connection", value: "close") }
        var output = HTTP1Encoder.encode(HTTPResponseHead(status: status, headers: headers))
        if head.method != "HEAD" { output += bytes }
        self.connection.write(output)
    }

    /// The path and the query parameters (first value wins; `+` and `%XX` decoded).
    static func split(_ target: String) -> (String, [String: String]) {
        guard let mark = target.firstIndex(of: "?") else { return (target, [:]) }
        var query: [String: String] = [:]
        for pair in target[target.index(after: mark)...].split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let key = Self.percentDecoded(parts[0])
            if query[key] == nil { query[key] = parts.count > 1 ? Self.percentDecoded(parts[1]) : "" }
        }
        return (String(target[..<mark]), query)
    }

    static func percentDecoded(_ text: Substring) -> String {
        var bytes: [UInt8] = []
        var iterator = Array(text.utf8).makeIterator()
        while let byte = iterator.next() {
            if byte == UInt8(ascii: "+") {
                bytes.append(UInt8(ascii: " "))
            } else if byte == UInt8(ascii: "%"), let high = iterator.next(), let low = iterator.next(),
                      let value = UInt8(String(decoding: [high, low], as: UTF8.self), radix: 16) {
                bytes.append(value)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
