import PicoModel

/// Dials a node (over TLS when given a TLS context: SNI and the certificate check use the URL's
/// host) and performs a WebSocket handshake on `path`: the agent's tunnel on the upstream port,
/// `pico forward tcp`'s TCP route on the proxy port. Reports the connection, the `101` and the
/// bytes after it, or why it failed and whether retrying can help (Piko: network errors, 408,
/// 429 and 5xx retry; other statuses are fatal, except a 401 when the token comes from a file
/// that may be renewed).
final class WebSocketDialer: ConnectionDelegate {
    enum Outcome {
        case connected(Connection, answer: HTTPResponseHead, rest: [UInt8])
        case failed(reason: String, retryable: Bool)
    }

    static let maxErrorBody = 4_096

    private let key: String
    private let request: HTTPRequestHead
    private let unauthorizedIsRetryable: Bool
    private var decoder = HTTP1ResponseDecoder()
    private var status: Int?
    private var errorBody: [UInt8] = []
    private var timer: LoopTimer?
    private var onOutcome: ((Outcome) -> Void)?
    private var connection: Connection?

    /// `token`, when given, goes as `Authorization: Bearer <token>`; `subprotocol`, when given,
    /// is offered in `Sec-WebSocket-Protocol`.
    init(loop: EventLoop, target: Address, tls: TLSContext?, path: String, token: String? = nil, tenant: String? = nil, subprotocol: String? = nil,
         headers: HTTPHeaders = [:], unauthorizedIsRetryable: Bool = false, timeout: Duration, onOutcome: @escaping (Outcome) -> Void) {
        var random = SystemRandomNumberGenerator()
        self.key = Base64.encode((0..<16).map { _ in UInt8.random(in: .min ... .max, using: &random) })
        var extra = HTTPHeaders()
        if let token { extra.add(name: "Authorization", value: "Bearer \(token)") }
        if let tenant { extra.add(name: "x-pico-tenant-id", value: tenant) }
        if let subprotocol { extra.add(name: "Sec-WebSocket-Protocol", value: subprotocol) }
        for field in headers { extra.add(name: field.name, value: field.value) }
        self.request = WebSocketHandshake.request(target: path, host: target.description, key: self.key, headers: extra)
        self.unauthorizedIsRetryable = unauthorizedIsRetryable
        self.onOutcome = onOutcome
        do {
            guard let address = try target.resolve().first else { throw SocketError("resolve \(target): no address", code: 0) }
            let fd = try Sockets.connect(to: address)
            let connection = Connection(fd: fd, loop: loop, connected: false, delegate: self)
            self.connection = connection
            if let tls {
                do {
                    connection.startTLS(try TLSSession(client: tls, serverName: target.host, expectedName: target.host, peer: target.description))
                } catch {
                    connection.close()
                    throw error
                }
            }
            self.timer = loop.schedule(after: timeout) { [weak self] in
                self?.fail("handshake timed out", retryable: true)
            }
        } catch {
            loop.schedule(after: .zero) { [weak self] in self?.fail("\(error)", retryable: true) }
        }
    }

    private func report(_ outcome: Outcome) {
        self.timer?.cancel()
        let callback = self.onOutcome
        self.onOutcome = nil
        callback?(outcome)
    }

    private func fail(_ reason: String, retryable: Bool) {
        guard self.onOutcome != nil else { return }
        let connection = self.connection
        self.report(.failed(reason: reason, retryable: retryable))
        connection?.close()
    }

    func connectionDidConnect(_ connection: Connection) {
        connection.write(HTTP1Encoder.encode(self.request))
        self.decoder.expectResponse(to: "GET")
    }

    func connection(_ connection: Connection, didRead bytes: UnsafeRawBufferPointer) {
        self.decoder.feed(bytes)
        do {
            while self.onOutcome != nil, let part = try self.decoder.next() {
                switch part {
                case .head(let head):
                    if WebSocketHandshake.accepts(head, key: self.key) {
                        let rest = Array(self.decoder.takeUpgradedBytes())
                        self.report(.connected(connection, answer: head, rest: rest))
                        return
                    }
                    if head.isInterim { continue }
                    self.status = head.status
                case .body(let bytes):
                    if self.errorBody.count < Self.maxErrorBody { self.errorBody += bytes.prefix(Self.maxErrorBody - self.errorBody.count) }
                case .end:
                    self.refused()
                    return
                }
            }
        } catch {
            self.fail("invalid handshake response: \(error.message)", retryable: true)
        }
    }

    private func refused() {
        let status = self.status ?? 0
        var message = String(decoding: self.errorBody, as: UTF8.self)
        let marker = Array("\"error\":\"".utf8)
        let body = self.errorBody
        if body.count > marker.count, let start = (0...(body.count - marker.count)).first(where: { body[$0..<($0 + marker.count)].elementsEqual(marker) }) {
            let from = start + marker.count
            let end = body[from...].firstIndex(of: UInt8(ascii: "\"")) ?? body.count
            message = String(decoding: body[from..<end], as: UTF8.self)
        }
        // 409: another tenant holds the endpoint, which it may let go of.
        let retryable = status == 408 || status == 409 || status == 429 || (500...599).contains(status) || (status == 401 && self.unauthorizedIsRetryable)
        self.fail("\(status): \(message.trimmingCharacters(in: " \n"))", retryable: retryable)
    }

    func connection(_ connection: Connection, tlsFailed error: TLSError, peerSentPlainText: Bool) {
        // A certificate the node may yet replace, or a node restarting: retried with back-off.
        self.fail("\(error)", retryable: true)
    }

    func connectionDidReadEOF(_ connection: Connection) {
        if self.status != nil { self.decoder.feedEOF() }
        self.fail("connection closed during the handshake", retryable: true)
    }

    func connectionDidClose(_ connection: Connection, error: SocketError?) {
        self.fail(error.map { "\($0)" } ?? "connection closed", retryable: true)
    }
}
