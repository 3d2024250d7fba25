import PicoModel

/// `pico agent`: on each of its event loops, keeps one tunnel per endpoint to the node (through
/// its load balancer), following `AgentMachine`'s rules (backoff, make-before-break moves), and
/// serves each stream the node opens by forwarding it to the local service.
///
/// Every loop runs an independent `AgentWorker` with its own tunnels and backend pool, so the
/// streams of one tunnel never cross threads and a node can serve the tunnels from several of its
/// own loops. Piko opens one tunnel per endpoint; more tunnels spread the work over the node's
/// cores and keep the endpoint reachable while one tunnel reconnects.
///
/// The agent itself is confined to `loops[0]` (the signal loop); workers report to it there.
public final class PicoAgent: @unchecked Sendable {
    /// Its loops; `loops[0]` runs the agent's own bookkeeping.
    public let loops: [EventLoop]
    /// Its settings.
    public let settings: AgentSettings
    let log: Logger
    private var workers: [AgentWorker] = []
    private var drainedWorkers = 0
    private var stopping = false
    private var exiting = false
    /// Called once with the exit status (0 after a drained shutdown, 1 on a fatal refusal).
    public var onExit: ((Int32) -> Void)?

    /// Its TLS to the node (an `https://` or `wss://` URL): each new tunnel uses the files'
    /// current contents (`reloadCertificates`).
    let connectTLS: TLSCredentials?
    /// How often the TLS files are checked for new contents (SIGHUP checks at once).
    static let reloadInterval: Duration = .seconds(10)
    private var reloadTimer: LoopTimer?

    /// Creates the agent over `loops` (at least one); `start` begins dialling. Throws when the
    /// TLS files do not load (naming the file and why).
    public init(settings: AgentSettings, loops: [EventLoop], log: Logger) throws {
        precondition(!loops.isEmpty, "an agent needs a loop")
        self.loops = loops
        self.settings = settings
        self.log = log
        do {
            self.connectTLS = try settings.connectTLS.map { try TLSCredentials.client($0, name: "connect.tls") }
        } catch {
            throw ConfigError("connect.tls: \(error)")
        }
        self.workers = loops.enumerated().map { AgentWorker(agent: self, loop: $1, index: $0) }
    }

    /// Checks the TLS files for new contents (SIGHUP: loads them now) and logs what changed;
    /// tunnels dialled from then on use them, open ones keep theirs. On `loops[0]`.
    public func reloadCertificates(_ trigger: CertificateReload.Trigger) {
        guard let connectTLS else { return }
        TLSCredentials.reload([connectTLS], trigger, log: self.log)
    }

    private func armCertificateReload() {
        guard self.connectTLS != nil, !self.stopping else { return }
        self.reloadTimer = self.loops[0].schedule(after: Self.reloadInterval) { [weak self] in
            self?.reloadCertificates(.periodic)
            self?.armCertificateReload()
        }
    }

    /// The token for the next tunnel handshake (nil: none configured), or why there is none:
    /// a token file that cannot be read or does not hold a token. Any loop may ask (the file is
    /// read again each time, so a renewed token is used from the next dial on).
    func currentToken() -> Result<String?, ConfigError> {
        self.settings.connection.currentToken()
    }

    /// Dials every endpoint from every loop.
    public func start() {
        self.loops[0].execute { self.armCertificateReload() }
        for worker in self.workers {
            nonisolated(unsafe) let confined = worker
            worker.loop.execute { confined.start() }
        }
    }

    /// SIGTERM (on `loops[0]`): stop dialling, say go-away on every tunnel (the node routes
    /// nothing new to it), finish the requests in flight, then exit 0; exit when `gracePeriod`
    /// runs out regardless.
    public func shutdown() {
        guard !self.stopping else { return }
        self.stopping = true
        self.reloadTimer?.cancel()
        self.log.info("shutting down")
        for worker in self.workers {
            nonisolated(unsafe) let confined = worker
            worker.loop.execute { confined.stop() }
        }
        self.loops[0].schedule(after: self.settings.gracePeriod) { [weak self] in
            self?.log.warn("grace period over; exiting with requests in flight")
            self?.exit(0)
        }
    }

    /// A worker finished its requests and closed its tunnels (called on any loop).
    func workerDrained() {
        self.loops[0].execute { [self] in
            self.drainedWorkers += 1
            if self.drainedWorkers == self.workers.count { self.exit(0) }
        }
    }

    /// A node refused a tunnel for good (called on any loop).
    func workerRefused() {
        self.loops[0].execute { [self] in self.exit(1) }
    }

    /// Exits a moment later: output is written at the end of each loop's turn, so the last
    /// responses and the tunnels' closing frames reach their sockets first. On `loops[0]`.
    private func exit(_ status: Int32) {
        guard !self.exiting else { return }
        self.exiting = true
        let callback = self.onExit
        self.onExit = nil
        self.loops[0].schedule(after: .milliseconds(50)) { callback?(status) }
    }
}

/// The agent's work on one loop: a tunnel per endpoint, each with its own backend pool.
/// Loop-confined.
final class AgentWorker {
    /// The agent, which outlives its workers.
    unowned(unsafe) let agent: PicoAgent
    let loop: EventLoop
    let index: Int
    let log: Logger
    private var endpoints: [AgentEndpoint] = []
    private var stopping = false
    private var reportedDrained = false

    init(agent: PicoAgent, loop: EventLoop, index: Int) {
        self.agent = agent
        self.loop = loop
        self.index = index
        self.log = agent.log.child("agent")
    }

    var settings: AgentSettings { self.agent.settings }

    func start() {
        for listener in self.settings.listeners {
            let endpoint = AgentEndpoint(worker: self, listener: listener)
            self.endpoints.append(endpoint)
            endpoint.start()
        }
    }

    /// Requests in flight on this loop.
    var inFlight: Int { self.endpoints.reduce(0) { $0 + $1.inFlight } }

    func stop() {
        guard !self.stopping else { return }
        self.stopping = true
        self.log.info("loop draining", [("loop", .int(self.index)), ("in_flight", .int(self.inFlight))])
        for endpoint in self.endpoints { endpoint.stop() }
        self.checkDrained()
    }

    func checkDrained() {
        guard self.stopping, !self.reportedDrained, self.inFlight == 0 else { return }
        self.reportedDrained = true
        for endpoint in self.endpoints { endpoint.closeAll() }
        self.agent.workerDrained()
    }
}

/// One endpoint's tunnels, dialler and backend pool.
final class AgentEndpoint: TunnelTransportOwner {
    /// The worker, which outlives its endpoints.
    unowned(unsafe) let worker: AgentWorker
    let listener: AgentSettings.Listener
    let pool: BackendPool
    private var machine = AgentMachine()
    private var random: SplitMix64
    private var tunnels: [TunnelID: TunnelTransport] = [:]
    private var nextTunnelID: UInt64 = 1
    private var dialer: WebSocketDialer?
    private var retryTimer: LoopTimer?
    private var stopped = false
    private(set) var inFlight = 0
    private let log: Logger

    init(worker: AgentWorker, listener: AgentSettings.Listener) {
        self.worker = worker
        self.listener = listener
        self.pool = BackendPool(loop: worker.loop, address: listener.backend)
        self.random = SplitMix64(seed: UInt64(bitPattern: MonotonicClock.now().nanoseconds) &+ UInt64(worker.index))
        self.log = worker.log
    }

    func start() { self.handle(.dialDue) }

    func stop() {
        self.stopped = true
        self.retryTimer?.cancel()
        for id in self.tunnels.keys.sorted() { self.tunnels[id]?.goAway() }
    }

    func closeAll() {
        for id in self.tunnels.keys.sorted() { self.tunnels[id]?.close(reason: "agent shut down") }
    }

    private func handle(_ input: AgentMachine.Input) {
        for directive in self.machine.handle(input, now: self.worker.loop.now, rng: &self.random) {
            switch directive {
            case .dialNow:
                self.dial()
            case .retry(let deadline):
                self.retryTimer?.cancel()
                self.retryTimer = self.worker.loop.schedule(at: deadline) { [weak self] in self?.handle(.dialDue) }
            }
        }
    }

    private func dial() {
        guard !self.stopped else { return }
        let token: String?
        switch self.worker.agent.currentToken() {
        case .success(let current): token = current
        case .failure(let reason):
            self.log.warn("connect failed; retrying", [("endpoint", .string(self.listener.endpoint)), ("error", .string(reason.message))])
            self.handle(.dialFailed)
            return
        }
        // A token from a file may be renewed there: a node's 401 is then worth retrying.
        var renewable = false
        if case .file? = self.worker.settings.connectToken { renewable = true }
        self.dialer = WebSocketDialer(loop: self.worker.loop, target: self.worker.settings.connect, tls: self.worker.agent.connectTLS?.current,
                                  path: "/pico/v1/upstream/\(self.listener.endpoint)", token: token,
                                  tenant: self.worker.settings.connectTenant,
                                  headers: self.handshakeHeaders, unauthorizedIsRetryable: renewable,
                                  timeout: self.worker.settings.connectTimeout) { [weak self] outcome in
            self?.dialed(outcome)
        }
    }

    /// The handshake's extra headers: the PROXY header request of a TCP route, and whether this
    /// dial replaces a tunnel its node asked to move (a node holding more than its share may
    /// refuse it while the old tunnel serves).
    private var handshakeHeaders: HTTPHeaders {
        var headers: HTTPHeaders = [:]
        if self.listener.proxyProtocol { headers.add(name: ProxyProtocolV2.requestField, value: ProxyProtocolV2.requestValue) }
        if self.machine.isReplacing { headers.add(name: TunnelAgent.replacingHeader, value: "1") }
        return headers
    }

    private func dialed(_ outcome: WebSocketDialer.Outcome) {
        self.dialer = nil
        switch outcome {
        case .connected(let connection, _, let rest):
            guard !self.stopped else {
                connection.close()
                return
            }
            let id = TunnelID(self.nextTunnelID)
            self.nextTunnelID += 1
            let transport = TunnelTransport(
                connection: connection, role: .client, initialBytes: rest, owner: self,
                keepaliveInterval: self.worker.settings.keepaliveInterval, keepaliveTimeout: self.worker.settings.keepaliveTimeout,
                // A TCP stream is acknowledged once its service accepted the connection.
                acknowledgesStreamsOnOpen: self.listener.serviceProtocol == .http)
            self.tunnels[id] = transport
            self.log.info("connected", [("endpoint", .string(self.listener.endpoint)), ("tunnel", .int(Int(id.rawValue))), ("loop", .int(self.worker.index))])
            self.handle(.tunnelOpened(id))
            transport.start()
        case .failed(let reason, let retryable):
            if !retryable {
                self.log.error("node refused the tunnel; not retrying", [("endpoint", .string(self.listener.endpoint)), ("error", .string(reason))])
                self.worker.agent.workerRefused()
                return
            }
            self.log.warn("connect failed; retrying", [("endpoint", .string(self.listener.endpoint)), ("error", .string(reason))])
            self.handle(.dialFailed)
        }
    }

    private func id(of transport: TunnelTransport) -> TunnelID? {
        self.tunnels.first { $0.value === transport }?.key
    }

    // MARK: TunnelTransportOwner

    func transport(_ transport: TunnelTransport, peerOpened streamID: UInt32) {
        if self.listener.serviceProtocol == .tcp {
            let stream = AgentTCPStream(transport: transport, streamID: streamID, address: self.listener.backend, timeout: self.listener.timeout,
                                        expectsProxyHeader: self.listener.proxyProtocol, log: self.log)
            self.inFlight += 1
            // Strong captures: the stream drops `onFinish` when it ends.
            stream.onFinish = { [self] in
                self.inFlight -= 1
                if let id = self.id(of: transport) { self.handle(.requestSucceeded(id)) }
                self.worker.checkDrained()
            }
            transport.attach(stream, to: streamID)
            stream.start()
            return
        }
        let exchange = AgentExchange(transport: transport, streamID: streamID, pool: self.pool, timeout: self.listener.timeout, log: self.log)
        self.inFlight += 1
        // Strong captures: the exchange drops `onFinish` when it finishes.
        exchange.onFinish = { [self] in
            self.inFlight -= 1
            if let id = self.id(of: transport) { self.handle(.requestSucceeded(id)) }
            self.worker.checkDrained()
        }
        transport.attach(exchange, to: streamID)
    }

    func transportToldToGoAway(_ transport: TunnelTransport) {
        guard let id = self.id(of: transport) else { return }
        self.log.info("node asked the tunnel to move", [("endpoint", .string(self.listener.endpoint))])
        self.handle(.toldToMove(id))
    }

    func transportClosed(_ transport: TunnelTransport, reason: String) {
        guard let id = self.id(of: transport) else { return }
        self.tunnels[id] = nil
        self.log.info("disconnected", [("endpoint", .string(self.listener.endpoint)), ("reason", .string(reason))])
        guard !self.stopped else { return }
        let moving = self.machine.tunnels.first { $0.id == id }?.moving ?? false
        self.handle(moving ? .tunnelClosedByNode(id) : .tunnelBroken(id))
    }
}
