import PicoModel

/// One connection `pico forward` accepted: it opens the TCP route (`/_pico/v1/tcp/<endpoint>`)
/// on the node's proxy port, offering half-close, and then carries the local connection's bytes
/// in binary WebSocket messages (a client-side `WebSocketStreamBridge`). The local connection is
/// not read until the node answered, and each side is read only while the other can take more,
/// so memory stays at a socket's worth per direction. A refused handshake (no upstream, a refused
/// token, a failed agent dial) is logged with the node's status and message, and the local
/// connection closes. Loop-confined.
final class ForwardConnection: ConnectionDelegate {
    /// Where the connection is.
    enum Phase {
        /// The handshake with the node is under way.
        case dialling
        /// Bytes flow through the bridge.
        case bridging
        /// Over.
        case closed
    }

    unowned(unsafe) let forwarder: PicoForwarder
    let local: Connection
    let port: ForwardSettings.Port
    private var node: Connection?
    private var dialer: WebSocketDialer?
    private var bridge = WebSocketStreamBridge(role: .client, halfClose: false)
    private var phase = Phase.dialling
    private var maskingKeys = MaskingKeys()
    private var closeTimer: LoopTimer?
    /// How long a close handshake this side began may wait for the node's close frame.
    static let closeTimeout: Duration = .seconds(5)

    init(fd: Int32, forwarder: PicoForwarder, port: ForwardSettings.Port, token: String?) {
        self.forwarder = forwarder
        self.port = port
        self.local = Connection(fd: fd, loop: forwarder.loop, connected: true, delegate: nil)
        self.local.delegate = self
        self.local.pauseReading()
        let settings = forwarder.settings.connection
        self.dialer = WebSocketDialer(loop: forwarder.loop, target: settings.address, tls: forwarder.connectTLS?.current,
                                      path: TCPRoute.prefixes[0] + port.endpoint, token: token, subprotocol: TCPRoute.halfCloseSubprotocol,
                                      timeout: settings.timeout) { [weak self] outcome in
            self?.dialed(outcome)
        }
    }

    private func dialed(_ outcome: WebSocketDialer.Outcome) {
        self.dialer = nil
        switch outcome {
        case .connected(let node, let answer, let rest):
            guard self.phase == .dialling else {
                node.close()
                return
            }
            let halfClose = answer.headers.first("sec-websocket-protocol") == TCPRoute.halfCloseSubprotocol
            self.bridge = WebSocketStreamBridge(role: .client, halfClose: halfClose, initialBytes: rest)
            self.node = node
            node.delegate = self
            // A node that vanishes (a crash, a cut network) is noticed within a minute, quiet or not.
            Sockets.setKeepAlive(node.fd, idle: .seconds(30), interval: .seconds(10), count: 3)
            self.phase = .bridging
            self.forwarder.log.debug("connection forwarded", [("endpoint", .string(self.port.endpoint))])
            self.carryOut(self.bridge.decode())
            if self.phase == .bridging { self.local.resumeReading() }
        case .failed(let reason, _):
            self.forwarder.log.warn("forward failed", [("endpoint", .string(self.port.endpoint)), ("error", .string(reason))])
            self.phase = .closed
            self.local.close()
        }
    }

    // MARK: ConnectionDelegate (both sockets)

    func connection(_ connection: Connection, didRead bytes: UnsafeRawBufferPointer) {
        guard self.phase == .bridging, let node = self.node else { return }
        if connection === self.local {
            guard self.bridge.carriesStreamBytes, bytes.count > 0 else { return }
            // Masked straight from the read buffer into one frame.
            var frame: [UInt8] = []
            frame.reserveCapacity(bytes.count + 14)
            WebSocketFrameEncoder.write(.binary, payload: bytes, maskingKey: self.maskingKeys.next(), into: &frame)
            node.write(frame)
            if !node.isWritable { self.local.pauseReading() }
        } else {
            self.carryOut(self.bridge.received(bytes))
        }
    }

    func connectionDidReadEOF(_ connection: Connection) {
        guard self.phase == .bridging else {
            if connection === self.local { self.close() }
            return
        }
        self.carryOut(connection === self.local ? self.bridge.streamEnded() : self.bridge.peerConnectionEnded())
    }

    func connectionDidDrain(_ connection: Connection) {
        guard self.phase == .bridging else { return }
        // The side that drained may take more: read the other again.
        if connection === self.local { self.node?.resumeReading() } else { self.local.resumeReading() }
    }

    func connectionDidClose(_ connection: Connection, error: SocketError?) {
        if connection === self.local {
            guard self.phase == .bridging else {
                self.close()
                return
            }
            self.carryOut(self.bridge.streamFailed(reason: "the forwarded connection closed"))
            self.close()
        } else if connection === self.node {
            self.node = nil
            if self.phase == .bridging {
                self.forwarder.log.debug("node connection closed", [("endpoint", .string(self.port.endpoint))])
            }
            self.close()
        }
    }

    // MARK: Helpers

    private func carryOut(_ outputs: [WebSocketStreamBridge.Output]) {
        for output in outputs {
            guard self.phase == .bridging else { return }
            switch output {
            case .deliver(let bytes):
                self.local.write(bytes)
                if !self.local.isWritable { self.node?.pauseReading() }
            case .finishStream:
                self.local.shutdownWriteWhenFlushed()
            case .write(let frame):
                if let node = self.node { self.write(frame, to: node) }
                if case .close = frame, self.bridge.state == .closeSent { self.armCloseTimer() }
                if case .close(let code, let reason) = frame, code != 1000, code != 1001 {
                    self.forwarder.log.warn("forwarded connection failed", [("endpoint", .string(self.port.endpoint)), ("error", .string("close code \(code): \(reason)"))])
                }
            case .close:
                if let reason = self.bridge.peerCloseReason {
                    self.forwarder.log.warn("node closed the forwarded connection", [("endpoint", .string(self.port.endpoint)), ("error", .string(reason))])
                }
                self.phase = .closed
                self.closeTimer?.cancel()
                self.closeTimer = nil
                self.node?.closeWhenWritten()
                self.local.closeWhenWritten()
                self.forwarder.connectionEnded(self)
            }
        }
    }

    private func write(_ frame: WebSocketStreamBridge.Frame, to node: Connection) {
        var bytes: [UInt8] = []
        WebSocketStreamBridge.encode(frame, maskingKey: self.maskingKeys.next(), into: &bytes)
        node.write(bytes)
    }

    /// Our close frame went out: the node has `closeTimeout` to answer it.
    private func armCloseTimer() {
        guard self.closeTimer == nil else { return }
        self.closeTimer = self.forwarder.loop.schedule(after: Self.closeTimeout) { [weak self] in
            self?.closeTimer = nil
            self?.close()
        }
    }

    /// Ends the connection at once (a socket failed, or the close handshake timed out).
    private func close() {
        guard self.phase != .closed else { return }
        self.phase = .closed
        self.closeTimer?.cancel()
        self.closeTimer = nil
        self.node?.close()
        self.local.close()
        self.forwarder.connectionEnded(self)
    }
}
