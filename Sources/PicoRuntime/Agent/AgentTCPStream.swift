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
    /// With `expectsProxyHeader`: the check of the stream's PROXY protocol header (nil: none
    /// expected).
    private var headerCheck: ProxyHeaderCheck?

    /// Told once when the connection ends (for the agent's in-flight count).
    var onFinish: (() -> Void)?

    init(transport: TunnelTransport, streamID: UInt32, address: Address, timeout: Duration, expectsProxyHeader: Bool, log: Logger) {
        self.headerCheck = expectsProxyHeader ? ProxyHeaderCheck() : nil
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
        if var check = self.headerCheck, !check.isPassed {
            // The header's bytes are few (bounded): their window goes back at once.
            self.transport.consumed(bytes.count, on: self.streamID)
            guard !self.machine.isFinished else { return }
            var accepted = false
            if case .piping = self.machine.state { accepted = true }
            let verdict = check.received(bytes, serviceAccepted: accepted)
            self.headerCheck = check
            self.follow(verdict)
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
            if var check = self.headerCheck {
                let verdict = check.serviceAccepted()
                self.headerCheck = check
                self.follow(verdict)
            }
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

    /// Carries out the header check's verdict (`ProxyHeaderCheck`).
    private func follow(_ verdict: ProxyHeaderCheck.Verdict) {
        switch verdict {
        case .wait:
            break
        case .pass(let header):
            self.service?.write(header)
        case .refuse(let reason):
            self.log.warn("the node did not start the stream with the client's address (PROXY protocol v2)",
                          [("addr", .string("\(self.address)")), ("error", .string(reason))])
            self.carryOut(self.machine.serviceFailed("no PROXY protocol header: \(reason)"))
        }
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
