import PicoModel

/// One `pico server` process on one event loop: owns the `ClusterNode` (membership, endpoint
/// table, upstream registry, router, lifecycle), the three listeners and the tunnels, and carries
/// out the node's directives. Loop-confined: every method runs on `loop`'s thread.
public final class PicoNode {
    /// The loop everything runs on.
    public let loop: EventLoop
    /// The settings it runs with.
    public let settings: ServerSettings
    let log: Logger
    /// The model.
    public private(set) var cluster: ClusterNode
    /// Counters and histograms for `/metrics`.
    let metrics = ServerMetrics()
    private(set) var proxyListener: Listener?
    private(set) var upstreamListener: Listener?
    private(set) var adminListener: Listener?
    /// The upstream address agents are told about (informational; not gossiped).
    public let upstreamAdvertised: HostPort
    var tunnels: [TunnelID: ServerTunnel] = [:]
    private var nextTunnelID: UInt64 = 1
    private var nextRequestID: UInt64 = 1
    private var timers: [TimerID: LoopTimer] = [:]
    /// True while `/ready` answers 200.
    public private(set) var ready = false
    /// Client connections open on the proxy port.
    var proxyConnections = 0
    /// Set when the model asks the process to exit, with the exit status.
    public private(set) var exitStatus: Int32?
    /// Called once when the node wants the process to exit (after a clean leave, or a fatal error).
    public var onExit: ((Int32) -> Void)?

    /// Binds the listeners and creates the model; throws when a port cannot be bound or the
    /// settings are invalid.
    public init(settings: ServerSettings, loop: EventLoop, log: Logger) throws {
        self.loop = loop
        self.settings = settings
        self.log = log
        let proxy = try Listener(address: settings.proxyBind, loop: loop)
        let upstream = try Listener(address: settings.upstreamBind, loop: loop)
        let admin = try Listener(address: settings.adminBind, loop: loop)
        let interfaces = InterfaceAddress.current()
        func advertised(_ explicit: HostPort?, _ bound: HostPort, _ key: String) throws(ConfigError) -> Address {
            let chosen = try AdvertiseAddress.derive(explicit: explicit, bound: bound, interfaces: interfaces, key: key)
            return Address(host: chosen.host, port: chosen.port)
        }
        var configuration = ClusterConfiguration(
            gossipAddress: try advertised(settings.gossipAdvertise, settings.gossipBind, "cluster.gossip.advertise_addr"),
            proxyAddress: try advertised(settings.proxyAdvertise, proxy.address, "proxy.advertise_addr"),
            adminAddress: try advertised(settings.adminAdvertise, admin.address, "admin.advertise_addr"),
            randomSeed: UInt64(bitPattern: MonotonicClock.wallMilliseconds()) ^ UInt64(truncatingIfNeeded: MonotonicClock.now().nanoseconds))
        configuration.nodeName = settings.nodeID
        configuration.nodeNamePrefix = settings.nodeIDPrefix
        configuration.gracePeriod = settings.gracePeriod
        configuration.epoch = UInt64(MonotonicClock.wallMilliseconds())
        configuration.drainMinimum = min(configuration.drainMinimum, settings.gracePeriod / 4)
        self.upstreamAdvertised = try AdvertiseAddress.derive(explicit: settings.upstreamAdvertise, bound: upstream.address, interfaces: interfaces, key: "upstream.advertise_addr")
        self.cluster = try ClusterNode(configuration: configuration)
        self.proxyListener = proxy
        self.upstreamListener = upstream
        self.adminListener = admin
        proxy.onAccept = { [unowned self] fd in self.acceptProxy(fd) }
        upstream.onAccept = { [unowned self] fd in self.acceptUpstream(fd) }
        admin.onAccept = { [unowned self] fd in self.acceptAdmin(fd) }
    }

    /// The bound addresses (actual ports when bound to port 0).
    public var proxyAddress: HostPort? { self.proxyListener?.address }
    public var upstreamAddress: HostPort? { self.upstreamListener?.address }
    public var adminAddress: HostPort? { self.adminListener?.address }

    /// Starts the node (it turns ready once the model says so).
    public func start() {
        let me = self.cluster.me
        self.log.info("starting node", [("node_id", .string(me.name)), ("proxy_addr", .string("\(self.proxyAddress!)")),
                                        ("upstream_addr", .string("\(self.upstreamAddress!)")), ("admin_addr", .string("\(self.adminAddress!)")),
                                        ("advertise_proxy_addr", .string("\(me.proxyAddress)")), ("advertise_upstream_addr", .string("\(self.upstreamAdvertised)")),
                                        ("advertise_admin_addr", .string("\(me.adminAddress)"))])
        self.handle(.start)
    }

    /// SIGTERM: drain gracefully (a second call changes nothing; the caller exits at once on a
    /// second signal).
    public func shutdown() {
        self.handle(.shutdownRequested)
    }

    // MARK: Model

    /// Feeds one input to the model and carries out its directives; returns the routing decision
    /// when the input was a route request.
    @discardableResult
    func handle(_ input: ClusterInput) -> RouteDecision? {
        var decision: RouteDecision?
        for directive in self.cluster.handle(input, now: self.loop.now) {
            switch directive {
            case .route(_, let routed):
                decision = routed
            case .schedule(let timer, let deadline):
                self.timers[timer]?.cancel()
                self.timers[timer] = self.loop.schedule(at: deadline) { [unowned self] in
                    self.timers[timer] = nil
                    self.handle(.timerFired(timer))
                }
            case .setReadiness(let ready):
                self.ready = ready
                self.log.info(ready ? "node ready" : "node not ready")
            case .tellAgentToMove(let id):
                self.tunnels[id]?.transport?.goAway()
            case .closeTunnel(let id):
                self.tunnels[id]?.close(reason: "closed by the node")
            case .exit(let reason):
                self.exit(reason)
            case .event(let event):
                self.record(event)
            case .sendDatagram, .resolveSeeds:
                // Gossip on real sockets lands with clustering (issue 6); a node without
                // `cluster.join` never asks for these.
                break
            case .openStateExchange(let id, _, _):
                let failed = ClusterInput.stateExchangeFailed(id, reason: "clustering is not available yet")
                self.loop.schedule(after: .zero) { [unowned self] in self.handle(failed) }
            case .replyStateExchange:
                break
            }
        }
        return decision
    }

    private func exit(_ reason: Lifecycle.ExitReason) {
        guard self.exitStatus == nil else { return }
        let status: Int32
        switch reason {
        case .left: status = 0
        case .joinFailed: status = 1
        }
        self.exitStatus = status
        self.log.info("node exiting", [("reason", .string("\(reason)")), ("status", .int(Int(status))), ("in_flight", .int(self.metrics.inFlight))])
        for listener in [self.proxyListener, self.upstreamListener, self.adminListener] { listener?.close() }
        // Requests still being answered finish first (bounded), so no accepted request is cut.
        self.loop.schedule(after: Self.exitFlushLimit) { [unowned self] in self.finishExit() }
        self.exitIfIdle()
    }

    /// The longest the process waits, after the model said exit, for answers still being written.
    static let exitFlushLimit: Duration = .seconds(5)

    /// Exits once nothing is in flight, after the model asked to exit.
    func exitIfIdle() {
        guard self.exitStatus != nil, self.metrics.inFlight == 0 else { return }
        // One more turn lets queued response bytes reach the sockets.
        self.loop.schedule(after: .milliseconds(50)) { [unowned self] in self.finishExit() }
    }

    private func finishExit() {
        guard let status = self.exitStatus else { return }
        let callback = self.onExit
        self.onExit = nil
        callback?(status)
    }

    private func record(_ event: ClusterEvent) {
        switch event {
        case .tunnelRegistered(let id, let endpoint):
            self.log.info("upstream connected", [("endpoint", .string(endpoint)), ("tunnel", .int(Int(id.rawValue)))])
        case .tunnelRemoved(let id, let endpoint):
            self.log.info("upstream disconnected", [("endpoint", .string(endpoint)), ("tunnel", .int(Int(id.rawValue)))])
        case .tunnelRejected(let id, let reason):
            self.log.warn("upstream rejected", [("reason", .string(reason)), ("tunnel", .int(Int(id.rawValue)))])
        case .phaseChanged(let from, let to):
            self.log.info("lifecycle", [("from", .string("\(from)")), ("to", .string("\(to)"))])
        default:
            self.log.debug("cluster event", [("event", .string("\(event)"))])
        }
    }

    // MARK: Routing and tunnels (called by connections)

    /// Routes a request for `endpoint`.
    func route(endpoint: String?, forwarded: Bool) -> RouteDecision {
        let id = RequestID(self.nextRequestID)
        self.nextRequestID += 1
        return self.handle(.routeRequest(id, endpoint: endpoint, forwarded: forwarded)) ?? .reject(.noAvailableUpstreams)
    }

    /// A routed request's stream on tunnel `id` finished.
    func streamFinished(on id: TunnelID) {
        self.handle(.streamFinished(id))
    }

    /// A tunnel completed its handshake: register it. False when the model refused it.
    func register(_ tunnel: ServerTunnel, endpoint: String) -> Bool {
        let id = TunnelID(self.nextTunnelID)
        self.nextTunnelID += 1
        tunnel.id = id
        self.tunnels[id] = tunnel
        self.handle(.tunnelOpened(id, endpoint: endpoint))
        guard self.cluster.upstreams.tunnel(id) != nil else {
            self.tunnels[id] = nil
            return false
        }
        return true
    }

    /// A tunnel closed (reported once per tunnel).
    func unregister(_ tunnel: ServerTunnel) {
        guard let id = tunnel.id, self.tunnels.removeValue(forKey: id) != nil else { return }
        self.handle(.tunnelClosed(id))
    }

    /// The tunnel a local route picked.
    func tunnel(_ id: TunnelID) -> ServerTunnel? { self.tunnels[id] }

    // MARK: Accepting

    private func acceptProxy(_ fd: Int32) {
        guard self.proxyConnections < self.settings.maxConnections else {
            // Over the cap: answer 503 and close rather than let the client hang.
            let connection = Connection(fd: fd, loop: self.loop, connected: true, delegate: nil)
            connection.write(ProxyErrors.response(status: 503, message: "too many connections", keepAlive: false))
            connection.closeWhenWritten()
            return
        }
        self.proxyConnections += 1
        _ = ProxyConnection(fd: fd, node: self)
    }

    private func acceptUpstream(_ fd: Int32) {
        _ = ServerTunnel(fd: fd, node: self)
    }

    private func acceptAdmin(_ fd: Int32) {
        _ = AdminConnection(fd: fd, node: self)
    }
}
