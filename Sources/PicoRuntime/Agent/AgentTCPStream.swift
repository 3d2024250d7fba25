import PicoModel

/// One stream the node opened on a TCP listener's tunnel, run by an `AgentTCPConnection`: this
/// class dials the local service, acknowledges the stream once it accepted, and pipes bytes both
/// ways with back-pressure (the service is not read while the stream is full; the stream's window
/// is given back only as the service's socket takes the bytes). Every rule is the machine's.
final class AgentTCPStream: TunnelStreamHandler, ConnectionDelegate {
    let transport: TunnelTransport
    let streamID: UInt32
    let address: Address
    let log: Logger
    private var machine: AgentTCPConnection
    private var service: Connection?
    /// Stream bytes written to the service while its socket was full: credited once it drains.
    private var owed = 0
    private var timer: LoopTimer?
    /// With `expectsProxyHeader`: the stream's first bytes until they hold a whole PROXY
    /// protocol v2 header (at most `ProxyProtocolV2.maxHeaderBytes`), then what goes to the
    /// service first; nil once passed on (or when no header is expected).
    private var preamble: [UInt8]?
    /// The header was read whole and checked.
    private var preambleChecked: Bool

    /// Told once when the connection ends (for the agent's in-flight count).
    var onFinish: (() -> Void)?

    init(transport: TunnelTransport, streamID: UInt32, address: Address, timeout: Duration, expectsProxyHeader: Bool, log: Logger) {
        self.preamble = expectsProxyHeader ? [] : nil
        self.preambleChecked = !expectsProxyHeader
        self.transport = transport
        self.streamID = streamID
        self.address = address
        self.log = log
        self.machine = AgentTCPConnection(timeout: timeout)
    }

    /// Dials the service (once the handler is attached).
    func start() {
        self.carryOut(self.machine.start(now: self.transport.connection.loop.now))
    }

    // MARK: From the tunnel

    func streamReceived(_ bytes: ArraySlice<UInt8>) {
        if !self.preambleChecked {
            self.readPreamble(bytes)
            return
        }
        guard let service = self.service, case .piping = self.machine.state else {
            // Nothing may reach a service that has not accepted: the node sends only after the
            // acknowledgement, so these are dropped (and their window given back).
            self.transport.consumed(bytes.count, on: self.streamID)
            return
        }
        service.write(bytes)
        if service.isWritable {
            self.transport.consumed(bytes.count, on: self.streamID)
        } else {
            self.owed += bytes.count
        }
    }

    func streamInputFinished() {
        self.carryOut(self.machine.streamEnded())
    }

    func streamFailed(reason: String) {
        self.carryOut(self.machine.streamFailed())
    }

    func streamWritable() {
        self.service?.resumeReading()
    }

    // MARK: From the service

    func connectionDidConnect(_ connection: Connection) {
        self.carryOut(self.machine.connected())
    }

    func connection(_ connection: Connection, didRead bytes: UnsafeRawBufferPointer) {
        guard case .piping = self.machine.state else { return }
        self.transport.send(bytes, on: self.streamID)
        if !self.transport.canSend(on: self.streamID) { connection.pauseReading() }
    }

    func connectionDidReadEOF(_ connection: Connection) {
        for action in self.machine.serviceEnded() { self.carryOut(action) }
    }

    func connectionDidDrain(_ connection: Connection) {
        guard self.owed > 0 else { return }
        self.transport.consumed(self.owed, on: self.streamID)
        self.owed = 0
    }

    func connectionDidClose(_ connection: Connection, error: SocketError?) {
        guard connection === self.service else { return }
        self.service = nil
        let reason = error.map { "\($0)" } ?? "the service closed the connection"
        self.carryOut(self.machine.serviceFailed(reason))
    }

    // MARK: Carrying out

    private func carryOut(_ action: AgentTCPConnection.Action?) {
        guard let action else { return }
        switch action {
        case .dial(let deadline):
            self.dial(deadline: deadline)
        case .acknowledgeAndPipe:
            self.cancelTimer()
            self.transport.acknowledge(self.streamID)
            self.passPreambleOn()
        case .shutdownServiceWrite:
            self.service?.shutdownWriteWhenFlushed()
        case .finishStream:
            self.transport.finish(self.streamID)
        case .close:
            let service = self.service
            self.service = nil
            service?.closeWhenWritten()
            self.end()
        case .resetAndClose:
            if case .finished(.dialFailed(let reason)) = self.machine.state {
                self.log.warn("tcp service unreachable", [("addr", .string("\(self.address)")), ("error", .string(reason))])
            } else if case .finished(.serviceFailed(let reason)) = self.machine.state {
                self.log.debug("tcp service connection broke", [("addr", .string("\(self.address)")), ("error", .string(reason))])
            }
            self.transport.reset(self.streamID)
            self.closeService()
            self.end()
        case .closeService:
            self.closeService()
            self.end()
        }
    }

    /// The node starts the stream with the client's address (PROXY protocol v2, asked for in the
    /// tunnel handshake): it is checked whole before anything reaches the service, which must
    /// never read a connection without it. Bytes up to the header's end are held (bounded).
    private func readPreamble(_ bytes: ArraySlice<UInt8>) {
        self.transport.consumed(bytes.count, on: self.streamID)
        guard !self.machine.isFinished else { return }
        var held = self.preamble ?? []
        held += bytes
        switch ProxyProtocolV2.read(held) {
        case .needMore:
            self.preamble = held
        case .header(let length):
            // The client's bytes follow the header only once the service accepted (the node
            // sends them after its 101, which waits for the acknowledgement).
            let piping: Bool
            if case .piping = self.machine.state { piping = true } else { piping = false }
            guard held.count == length || piping else {
                self.refusePreamble("bytes after the PROXY protocol header before the service accepted")
                return
            }
            self.preamble = held
            self.preambleChecked = true
            if piping { self.passPreambleOn() }
        case .invalid(let reason):
            self.refusePreamble(reason)
        }
    }

    private func passPreambleOn() {
        guard self.preambleChecked, let preamble = self.preamble, let service = self.service else { return }
        self.preamble = nil
        service.write(preamble)
    }

    private func refusePreamble(_ reason: String) {
        self.log.warn("the node did not start the stream with the client's address (PROXY protocol v2)", [("addr", .string("\(self.address)")), ("error", .string(reason))])
        self.preamble = nil
        self.carryOut(self.machine.serviceFailed("no PROXY protocol header: \(reason)"))
    }

    private func dial(deadline: Instant?) {
        do {
            guard let target = try self.address.resolve().first else { throw SocketError("resolve \(self.address): no address", code: 0) }
            let fd = try Sockets.connect(to: target)
            self.service = Connection(fd: fd, loop: self.transport.connection.loop, connected: false, delegate: self)
        } catch {
            self.carryOut(self.machine.dialFailed("\(error)"))
            return
        }
        if let deadline {
            // A strong capture: `end` cancels the timer.
            self.timer = self.transport.connection.loop.schedule(at: deadline) { [self] in
                self.timer = nil
                self.carryOut(self.machine.timerFired(now: self.transport.connection.loop.now))
            }
        }
    }

    private func closeService() {
        let service = self.service
        self.service = nil
        service?.close()
    }

    private func cancelTimer() {
        self.timer?.cancel()
        self.timer = nil
    }

    private func end() {
        self.cancelTimer()
        self.onFinish?()
        self.onFinish = nil
    }
}
