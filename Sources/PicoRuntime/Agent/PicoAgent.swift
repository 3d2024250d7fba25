import PicoModel

/// `pico agent http`: keeps one tunnel per endpoint to the node (through its load balancer),
/// following `AgentMachine`'s rules (backoff, make-before-break moves), and serves each stream
/// the node opens by forwarding it to the local service. Loop-confined.
public final class PicoAgent {
    /// The loop it runs on.
    public let loop: EventLoop
    /// Its settings.
    public let settings: AgentSettings
    let log: Logger
    private var endpoints: [AgentEndpoint] = []
    private var stopping = false
    /// Called once with the exit status (0 after a drained shutdown, 1 on a fatal refusal).
    public var onExit: ((Int32) -> Void)?

    /// Creates the agent; `start` begins dialling.
    public init(settings: AgentSettings, loop: EventLoop, log: Logger) {
        self.loop = loop
        self.settings = settings
        self.log = log
    }

    /// Dials every endpoint.
    public func start() {
        for listener in self.settings.listeners {
            let endpoint = AgentEndpoint(agent: self, listener: listener)
            self.endpoints.append(endpoint)
            endpoint.start()
        }
    }

    /// Requests in flight over all endpoints.
    public var inFlight: Int { self.endpoints.reduce(0) { $0 + $1.inFlight } }

    /// Tunnels open over all endpoints.
    public var tunnelCount: Int { self.endpoints.reduce(0) { $0 + $1.tunnelCount } }

    /// SIGTERM: stop dialling, say go-away on every tunnel (the node routes nothing new to it),
    /// finish the requests in flight, then exit 0; exit when `gracePeriod` runs out regardless.
    public func shutdown() {
        guard !self.stopping else { return }
        self.stopping = true
        self.log.info("shutting down", [("in_flight", .int(self.inFlight))])
        for endpoint in self.endpoints { endpoint.stop() }
        self.loop.schedule(after: self.settings.gracePeriod) { [weak self] in
            self?.log.warn("grace period over; exiting with requests in flight")
            self?.exit(0)
        }
        self.checkDrained()
    }

    func checkDrained() {
        guard self.stopping, self.inFlight == 0 else { return }
        for endpoint in self.endpoints { endpoint.closeAll() }
        self.exit(0)
    }

    /// Exits a moment later: output is written at the end of the loop's turn, so the last
    /// responses and the tunnels' closing frames reach their sockets first.
    func exit(_ status: Int32) {
        let callback = self.onExit
        self.onExit = nil
        self.loop.schedule(after: .milliseconds(50)) { callback?(status) }
    }
}

/// One endpoint's tunnels, dialler and backend pool.
final class AgentEndpoint: TunnelTransportOwner {
    unowned let agent: PicoAgent
    let listener: AgentSettings.Listener
    let pool: BackendPool
    private var machine = AgentMachine()
    private var random: SplitMix64
    private var tunnels: [TunnelID: TunnelTransport] = [:]
    private var nextTunnelID: UInt64 = 1
    private var dialer: AgentDialer?
    private var retryTimer: LoopTimer?
    private var stopped = false
    private(set) var inFlight = 0
    private let log: Logger

    init(agent: PicoAgent, listener: AgentSettings.Listener) {
        self.agent = agent
        self.listener = listener
        self.pool = BackendPool(loop: agent.loop, address: listener.backend)
        self.random = SplitMix64(seed: UInt64(bitPattern: MonotonicClock.now().nanoseconds))
        self.log = agent.log.child("agent")
    }

    var tunnelCount: Int { self.tunnels.count }

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
        for directive in self.machine.handle(input, now: self.agent.loop.now, rng: &self.random) {
            switch directive {
            case .dialNow:
                self.dial()
            case .retry(let deadline):
                self.retryTimer?.cancel()
                self.retryTimer = self.agent.loop.schedule(at: deadline) { [weak self] in self?.handle(.dialDue) }
            }
        }
    }

    private func dial() {
        guard !self.stopped else { return }
        self.dialer = AgentDialer(loop: self.agent.loop, target: self.agent.settings.connect, endpoint: self.listener.endpoint,
                                  timeout: self.agent.settings.connectTimeout) { [weak self] outcome in
            self?.dialed(outcome)
        }
    }

    private func dialed(_ outcome: AgentDialer.Outcome) {
        self.dialer = nil
        switch outcome {
        case .connected(let connection, let rest):
            guard !self.stopped else {
                connection.close()
                return
            }
            let id = TunnelID(self.nextTunnelID)
            self.nextTunnelID += 1
            let transport = TunnelTransport(
                connection: connection, role: .client, initialBytes: rest, owner: self,
                keepaliveInterval: self.agent.settings.keepaliveInterval, keepaliveTimeout: self.agent.settings.keepaliveTimeout)
            self.tunnels[id] = transport
            self.log.info("connected", [("endpoint", .string(self.listener.endpoint)), ("tunnel", .int(Int(id.rawValue)))])
            self.handle(.tunnelOpened(id))
            transport.start()
        case .failed(let reason, let retryable):
            if !retryable {
                self.log.error("node refused the tunnel; not retrying", [("endpoint", .string(self.listener.endpoint)), ("error", .string(reason))])
                self.agent.exit(1)
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
        let exchange = AgentExchange(transport: transport, streamID: streamID, pool: self.pool, timeout: self.listener.timeout, log: self.log)
        self.inFlight += 1
        exchange.onFinish = { [weak self, weak transport] in
            guard let self else { return }
            self.inFlight -= 1
            if let transport, let id = self.id(of: transport) { self.handle(.requestSucceeded(id)) }
            self.agent.checkDrained()
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
