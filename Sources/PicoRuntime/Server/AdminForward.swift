import PicoModel

/// `?forward=<node-id>` on the admin port: one `GET` to another node's admin address, on the
/// loop (over TLS when `tls` is given: peers' admin ports serve what ours serves), bounded by
/// `timeout` and `maxBody`; reports the answer (or nil) exactly once.
final class AdminForward: ConnectionDelegate {
    /// The forwarded answer.
    struct Answer {
        var status: Int
        var contentType: String
        var body: [UInt8]
    }

    static let timeout: Duration = .seconds(15)
    static let maxBody = 16 * 1_024 * 1_024

    private var decoder = HTTP1ResponseDecoder()
    private var answer: Answer?
    private var completion: ((Answer?) -> Void)?
    private var timer: LoopTimer?
    private var connection: Connection?
    private var onTLSFailure: ((TLSError) -> Void)?

    /// Asks `address` for `target` and calls `completion` once, on the loop.
    @discardableResult
    /// `credential`, when given, is the header field (name and value) whose token the node
    /// verified: the member verifies it again.
    static func get(_ target: String, from address: Address, loop: EventLoop, tls: ForwardTLS?, credential: (String, String)? = nil,
                    onTLSFailure: ((TLSError) -> Void)? = nil, completion: @escaping (Answer?) -> Void) -> AdminForward {
        AdminForward(target, from: address, loop: loop, tls: tls, credential: credential, onTLSFailure: onTLSFailure, completion: completion)
    }

    private init(_ target: String, from address: Address, loop: EventLoop, tls: ForwardTLS?, credential: (String, String)?,
                 onTLSFailure: ((TLSError) -> Void)?, completion: @escaping (Answer?) -> Void) {
        self.completion = completion
        self.onTLSFailure = onTLSFailure
        self.decoder.expectResponse(to: "GET")
        guard let resolved = address.numeric(), let fd = try? Sockets.connect(to: resolved) else {
            loop.schedule(after: .zero) { [self] in self.finish(nil) }
            return
        }
        let connection = Connection(fd: fd, loop: loop, connected: false, delegate: nil)
        connection.delegate = self
        self.connection = connection
        if let tls {
            do {
                connection.startTLS(try tls.session(to: address))
            } catch {
                loop.schedule(after: .zero) { [self] in self.finish(nil) }
                return
            }
        }
        // The credential's value came through the request decoder, which refuses CR and LF.
        let credentialLine = credential.map { "\($0.0): \($0.1)\r\n" } ?? ""
        connection.write(Array("GET \(target) HTTP/1.1\r\nHost: \(address)\r\nConnection: close\r\nUser-Agent: pico-forward\r\n\(credentialLine)\r\n".utf8))
        self.timer = loop.schedule(after: Self.timeout) { [weak self] in self?.finish(nil) }
    }

    private func finish(_ answer: Answer?) {
        self.timer?.cancel()
        let completion = self.completion
        self.completion = nil
        self.connection?.close()
        completion?(answer)
    }

    func connection(_ connection: Connection, didRead bytes: UnsafeRawBufferPointer) {
        self.decoder.feed(bytes)
        self.drain()
    }

    func connectionDidReadEOF(_ connection: Connection) {
        self.decoder.feedEOF()
        self.drain()
        self.finish(nil)
    }

    func connectionDidClose(_ connection: Connection, error: SocketError?) {
        self.finish(nil)
    }

    func connection(_ connection: Connection, tlsFailed error: TLSError, peerSentPlainText: Bool) {
        self.onTLSFailure?(error)
        self.finish(nil)
    }

    private func drain() {
        do {
            while self.completion != nil, let part = try self.decoder.next() {
                switch part {
                case .head(let head):
                    if !head.isInterim {
                        self.answer = Answer(status: head.status, contentType: head.headers.first("content-type") ?? "application/json", body: [])
                    }
                case .body(let bytes):
                    self.answer?.body += bytes
                    if (self.answer?.body.count ?? 0) > Self.maxBody { self.finish(nil) }
                case .end:
                    self.finish(self.answer)
                }
            }
        } catch {
            self.finish(nil)
        }
    }
}
