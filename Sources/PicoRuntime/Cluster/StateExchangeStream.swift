import PicoModel

/// One state exchange on a TCP connection to or from the gossip port, framed by
/// `LengthPrefixedFrames`: the opener sends its request and reads one reply; the accepting side
/// reads one request, hands it to the model, writes the model's reply and closes. Every exchange
/// is bounded by `timeout` and by the frame limit; it reports exactly once. The accepting side's
/// deadline holds until the connection closes, so a peer that sends a request and never reads
/// the reply cannot keep it (and the reply's buffer) beyond `timeout`.
final class StateExchangeStream: ConnectionDelegate {
    /// Bound on one exchange, as memberlist's `TCPTimeout`.
    static let timeout: Duration = .seconds(10)

    enum Role {
        /// We opened it: report the reply (or the failure) under `id`.
        case opener(ExchangeID, onReply: (ExchangeID, Result<[UInt8], StateExchangeFailure>) -> Void)
        /// A peer opened it: hand its request to `onRequest`, which answers through `reply`.
        case acceptor(onRequest: (StateExchangeStream, [UInt8], Address) -> Void)
    }

    let connection: Connection
    private let role: Role
    private var frames = LengthPrefixedFrames()
    private var timer: LoopTimer?
    private var done = false
    private let peer: Address
    /// Called once when the exchange is over (answered, failed or timed out).
    var onFinished: (() -> Void)?
    /// Called once when its connection has closed (its descriptor is free).
    var onClosed: (() -> Void)?

    /// Dials `address` and sends `request`.
    static func open(_ id: ExchangeID, to address: Address, request: [UInt8], loop: EventLoop,
                     onReply: @escaping (ExchangeID, Result<[UInt8], StateExchangeFailure>) -> Void) {
        guard let resolved = address.numeric() else {
            // Advertised gossip addresses are IP literals; a name here is a misconfiguration.
            loop.schedule(after: .zero) { onReply(id, .failure(StateExchangeFailure("\(address) is not an IP address"))) }
            return
        }
        do {
            let fd = try Sockets.connect(to: resolved)
            let stream = StateExchangeStream(fd: fd, loop: loop, connected: false, role: .opener(id, onReply: onReply), peer: address)
            stream.connection.write(LengthPrefixedFrames.frame(request))
        } catch {
            loop.schedule(after: .zero) { onReply(id, .failure(StateExchangeFailure("\(error)"))) }
        }
    }

    /// Serves an accepted connection.
    @discardableResult
    static func accept(fd: Int32, loop: EventLoop, onRequest: @escaping (StateExchangeStream, [UInt8], Address) -> Void) -> StateExchangeStream {
        let peer = Sockets.peerAddress(fd) ?? Address(host: "", port: 0)
        return StateExchangeStream(fd: fd, loop: loop, connected: true, role: .acceptor(onRequest: onRequest), peer: peer)
    }

    private init(fd: Int32, loop: EventLoop, connected: Bool, role: Role, peer: Address) {
        self.role = role
        self.peer = peer
        self.connection = Connection(fd: fd, loop: loop, connected: connected, delegate: nil)
        self.connection.delegate = self
        self.timer = loop.schedule(after: Self.timeout) { [weak self] in self?.deadlinePassed() }
    }

    /// The model's reply to an accepted exchange: written, then the connection closes (at the
    /// exchange's deadline at the latest, written or not).
    func reply(_ bytes: [UInt8]) {
        guard !self.done else { return }
        self.done = true
        self.finished()
        self.connection.write(LengthPrefixedFrames.frame(bytes))
        self.connection.closeWhenWritten()
    }

    /// `timeout` after the start: an exchange still going fails; a reply still being written
    /// is dropped with its connection.
    private func deadlinePassed() {
        self.timer = nil
        if self.done {
            self.connection.close()
        } else {
            self.fail("timed out")
        }
    }

    private func finished() {
        let action = self.onFinished
        self.onFinished = nil
        action?()
    }

    private func fail(_ reason: String) {
        guard !self.done else { return }
        self.done = true
        self.timer?.cancel()
        self.finished()
        self.connection.close()
        if case .opener(let id, let onReply) = self.role { onReply(id, .failure(StateExchangeFailure(reason))) }
    }

    func connection(_ connection: Connection, didRead bytes: UnsafeRawBufferPointer) {
        guard !self.done else { return }
        self.frames.feed(bytes)
        let message: [UInt8]?
        do {
            message = try self.frames.next()
        } catch {
            self.fail("\(error)")
            return
        }
        guard let message else { return }
        switch self.role {
        case .opener(let id, let onReply):
            self.done = true
            self.timer?.cancel()
            connection.close()
            onReply(id, .success(message))
        case .acceptor(let onRequest):
            connection.pauseReading()
            onRequest(self, message, self.peer)
        }
    }

    func connectionDidReadEOF(_ connection: Connection) {
        self.fail("connection closed before the message ended")
    }

    func connectionDidClose(_ connection: Connection, error: SocketError?) {
        self.fail(error.map { "\($0)" } ?? "connection closed")
        let action = self.onClosed
        self.onClosed = nil
        action?()
    }
}

/// Why a state exchange failed.
struct StateExchangeFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
