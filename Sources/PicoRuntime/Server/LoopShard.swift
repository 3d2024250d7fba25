import PicoModel
import Synchronization

/// Figures every loop of a server shares, kept in atomics.
final class ServerCounters: Sendable {
    /// Client connections open on the proxy port (all loops).
    let proxyConnections = Atomic<Int>(0)
    /// Agent connections open on the upstream port (all loops).
    let upstreamConnections = Atomic<Int>(0)
    /// Requests being answered (all loops); the process exits only once this is zero.
    let inFlight = Atomic<Int>(0)
    private let tunnelIDs = Atomic<UInt64>(0)

    /// A tunnel ID no other loop hands out.
    func nextTunnelID() -> TunnelID { TunnelID(self.tunnelIDs.add(1, ordering: .relaxed).newValue) }
}

/// One event loop's part of a server: the tunnels that live on it, the client connections it
/// serves, its own `LoopRouter` and its metrics. Loop-confined: its mutable state is touched on
/// `loop`'s thread only; the control loop (which owns the `ClusterNode`) reaches it through
/// `loop.execute`, and it reaches the control loop the same way. Request bytes never cross loops:
/// a client connection whose request routes to a tunnel on another loop moves there between
/// requests.
///
/// Reports to the control loop are batched: everything a turn reports leaves in one post at the
/// end of the turn, in order, instead of one cross-thread wake-up per request.
final class LoopShard: @unchecked Sendable, TurnEndHandler {
    let index: Int
    let loop: EventLoop
    let settings: ServerSettings
    let log: Logger
    /// The `proxy.access` logger (made once, not per request).
    let accessLog: Logger
    let metrics = ServerMetrics()
    /// Keep-alive connections to other nodes, for forwarded requests.
    lazy var peers: PeerPool = {
        let pool = PeerPool(loop: self.loop, maxPerPeer: self.settings.forwardMaxConnections, dialTimeout: self.settings.forwardDialTimeout,
                            source: self.forwardSource, tls: self.node.forwardTLS,
                            idleTimeout: PeerPool.idleTimeout(peerIdleTimeout: self.settings.idleTimeout))
        pool.onTLSFailure = { [unowned self] error, peer in self.logTLSFailure(error, port: "proxy.tls.client", peer: "\(peer)", plainText: false) }
        return pool
    }()
    /// This node's advertised proxy IP, which forwards leave from.
    private let forwardSource: SocketAddressStorage?
    let counters: ServerCounters
    /// The node, which outlives its shards.
    unowned(unsafe) let node: PicoNode
    /// This loop's routing, kept current by the node's `.routingChanged` directives; the
    /// exchanges of this loop's connections decide with it.
    var router: LoopRouter
    /// What this loop's exchanges run with.
    let exchangeSettings: ExchangeSettings
    /// What this loop's proxy connections' clients owe, and by when.
    let clientTimeouts: ClientReadWatch.Timeouts
    /// The proxy port's TLS, if it has one.
    let proxyTLS: TLSCredentials?
    /// The proxy port's token check on this loop, when `proxy.auth` is on.
    let proxyGate: TokenGate?
    /// The upstream port's token check on this loop, when `upstream.auth` is on.
    let upstreamGate: TokenGate?
    /// Each tenant's token check (`upstream.tenants`), by tenant ID.
    let tenantGates: [String: TokenGate]
    /// TLS failures logged in the current second, and when that second began (at most
    /// `refusalLogLimit` lines a second per loop: a flood of bad handshakes cannot flood the log).
    private var refusalLog: (since: Instant, lines: Int, suppressed: Int) = (.zero, 0, 0)
    static let refusalLogLimit = 5
    /// Connections whose request waits for routing to learn a holder, oldest first (bounded by
    /// `proxy.max_waiting_requests`).
    private var waiting: [ProxyConnection] = []
    /// When this loop last told the node a request wants a holder.
    private var lastHolderWanted: Instant?
    private var tunnels: [TunnelID: ServerTunnel] = [:]
    private var closingTunnels: Set<TunnelID> = []
    /// Reports waiting for the end of this turn.
    private var controlBatch: [ControlReport] = []
    /// Keep-alive client connections waiting for their next request, longest-idle first.
    private var idle = IdleConnections()
    /// When the longest-idle of them became idle (monotonic nanoseconds; `Int64.max` when there is
    /// none), for the control loop's accept at the cap: it picks the loop whose oldest is oldest.
    private let oldestIdle = Atomic<Int64>(.max)

    /// One report to the control loop.
    enum ControlReport: Sendable {
        /// A model input (per-request routing accounting).
        case input(ClusterInput)
        /// Anything else.
        case work(@Sendable (PicoNode) -> Void)
    }

    init(index: Int, loop: EventLoop, node: PicoNode, counters: ServerCounters, seed: UInt64) {
        self.index = index
        self.loop = loop
        self.node = node
        self.settings = node.settings
        self.log = node.log
        self.accessLog = node.log.child("proxy.access")
        self.counters = counters
        self.router = LoopRouter(loop: index, seed: seed)
        self.exchangeSettings = node.settings.exchangeSettings
        self.clientTimeouts = node.settings.clientTimeouts
        self.proxyTLS = node.proxyTLS
        self.proxyGate = node.proxyAuth.map { TokenGate(port: .proxy, holder: $0) }
        self.upstreamGate = node.upstreamAuth.map { TokenGate(port: .upstream, holder: $0) }
        self.upstreamGate?.tunnelsOutliveTokens = node.settings.upstreamAuth.disableDisconnectOnExpiry
        var tenantGates: [String: TokenGate] = [:]
        for tenant in node.settings.tenants {
            guard let holder = node.tenantAuth[tenant.id] else { continue }
            let gate = TokenGate(port: .upstream, holder: holder)
            gate.tunnelsOutliveTokens = tenant.auth.disableDisconnectOnExpiry
            tenantGates[tenant.id] = gate
        }
        self.tenantGates = tenantGates
        let me = node.cluster.me.proxyAddress
        self.forwardSource = Address(host: me.host, port: 0).numeric()
        let tenantLabels = node.settings.tenants.enumerated().map { (self.tenantGates[$0.element.id], TenantSettings.label($0.offset)) }
        for (gate, label) in [(self.proxyGate, "proxy"), (self.upstreamGate, "upstream")] + tenantLabels {
            gate?.onUnknownKey = { [unowned self] in self.toControl { $0.refreshKeySet(label, reason: "unknown kid") } }
        }
    }

    /// Runs `work` on the control loop (posted at the end of this turn, also when this is the
    /// control loop, so the model is never re-entered from inside one of its own directives).
    func toControl(_ work: @escaping @Sendable (PicoNode) -> Void) {
        self.report(.work(work))
    }

    /// Logs a failed TLS connection on `port` (rate-limited; the lines say how many were left out).
    func logTLSFailure(_ error: TLSError, port: String, peer: String?, plainText: Bool) {
        var fields: [(String, LogValue)] = [("port", .string(port)), ("peer", .string(peer ?? "unknown")), ("error", .string("\(error)"))]
        if plainText { fields.append(("plain_text", .bool(true))) }
        self.logRefusal("TLS connection failed", fields)
    }

    /// Logs a refused connection or handshake (a failed TLS handshake, an agent's refused
    /// token): at most `refusalLogLimit` lines a second per loop, the next line saying how
    /// many were left out, so a flood of refusals cannot flood the log.
    func logRefusal(_ message: String, _ fields: [(String, LogValue)]) {
        let now = self.loop.now
        if now - self.refusalLog.since >= .seconds(1) { self.refusalLog = (now, 0, self.refusalLog.suppressed) }
        guard self.refusalLog.lines < Self.refusalLogLimit else {
            self.refusalLog.suppressed += 1
            return
        }
        self.refusalLog.lines += 1
        var fields = fields
        if self.refusalLog.suppressed > 0 {
            fields.append(("not_logged_before", .int(self.refusalLog.suppressed)))
            self.refusalLog.suppressed = 0
        }
        self.log.info(message, fields)
    }

    /// Hands `input` to the model on the control loop (at the end of this turn, in order).
    func toModel(_ input: ClusterInput) {
        self.report(.input(input))
    }

    private func report(_ report: ControlReport) {
        if self.controlBatch.isEmpty { self.loop.runAtEndOfTurn(self) }
        self.controlBatch.append(report)
    }

    /// The end of this loop's turn: one post carries the turn's reports. On the control loop
    /// itself they run here: the turn's end is outside every model call, so nothing is
    /// re-entered, and the loop saves waking itself through its eventfd.
    func loopTurnEnded() {
        guard !self.controlBatch.isEmpty else { return }
        let batch = self.controlBatch
        self.controlBatch = []
        let node = self.node
        if self.loop === node.loop {
            Self.run(batch, on: node)
        } else {
            node.loop.execute { Self.run(batch, on: node) }
        }
    }

    private static func run(_ batch: [ControlReport], on node: PicoNode) {
        for report in batch {
            switch report {
            case .input(let input): node.handle(input)
            case .work(let work): work(node)
            }
        }
    }

    /// Routing changes from the control loop, in order; requests waiting for a holder try again.
    func apply(_ changes: [RoutingChange]) {
        for change in changes { self.router.apply(change) }
        guard !self.waiting.isEmpty else { return }
        let waiting = self.waiting
        self.waiting = []
        for connection in waiting { connection.routingChanged() }
    }

    /// Whether one more request may wait for a holder on this loop.
    var mayWait: Bool { self.waiting.count < self.settings.maxWaitingRequests }

    /// `connection`'s request waits for routing to learn a holder (it counts in
    /// `pico_proxy_requests_waited_total` when it ends).
    func startWaiting(_ connection: ProxyConnection) {
        if !self.waiting.contains(where: { $0 === connection }) { self.waiting.append(connection) }
    }

    /// A request began waiting for a holder: the node may try to reach the members it declared
    /// dead (`.holderWanted`; the node bounds how often, and so does this loop, so a flood of
    /// requests for unknown endpoints posts one report per interval).
    func holderWanted() {
        let now = self.loop.now
        if let last = self.lastHolderWanted, now - last < ClusterNode.holderWantedInterval { return }
        self.lastHolderWanted = now
        self.toModel(.holderWanted)
    }

    /// `connection`'s request stopped waiting (routed, answered, or closed).
    func stopWaiting(_ connection: ProxyConnection) {
        guard !self.waiting.isEmpty else { return }
        self.waiting.removeAll { $0 === connection }
    }

    /// Tunnel `id` is registered on this loop and neither closing nor gone.
    func usableTunnel(_ id: TunnelID) -> ServerTunnel? {
        guard let tunnel = self.tunnels[id], !self.closingTunnels.contains(id) else { return nil }
        return tunnel
    }

    /// A stream on tunnel `id` finished (the exchange released it from the router already).
    func streamFinished(on id: TunnelID) {
        self.toModel(.streamFinished(id))
        if self.closingTunnels.contains(id), let tunnel = self.tunnels[id], (tunnel.transport?.streamCount ?? 0) == 0 {
            tunnel.close(reason: "released by the node")
        }
    }

    // MARK: Tunnels

    /// A tunnel completed its handshake on this loop: it gets an ID and the model hears of it.
    func register(_ tunnel: ServerTunnel, endpoint: String, tenant: String, agent: TunnelAgent) -> TunnelID {
        let id = self.counters.nextTunnelID()
        self.tunnels[id] = tunnel
        let index = self.index
        self.toControl { $0.tunnelOpened(id, endpoint: endpoint, loop: index, tenant: tenant, agent: agent) }
        return id
    }

    /// A tunnel closed, or its agent said go-away (reported once per tunnel).
    func unregister(_ id: TunnelID) {
        guard self.tunnels.removeValue(forKey: id) != nil else { return }
        self.closingTunnels.remove(id)
        self.toControl { $0.tunnelClosed(id) }
    }

    /// The upstream port's (or a tenant's) key set changed: tunnels whose token's key is gone
    /// are closed.
    func upstreamKeysChanged() {
        for id in self.tunnels.keys.sorted() { self.tunnels[id]?.keysChanged() }
    }

    /// The model asked the agent of `id` to move.
    func tellAgentToMove(_ id: TunnelID) {
        self.tunnels[id]?.transport?.goAway()
    }

    /// The model released `id`: it closes once the streams this loop still runs on it finish
    /// (a loop may have routed a request to it just before the release reached it).
    func closeTunnel(_ id: TunnelID) {
        guard let tunnel = self.tunnels[id] else { return }
        if (tunnel.transport?.streamCount ?? 0) == 0 {
            tunnel.close(reason: "closed by the node")
        } else {
            self.closingTunnels.insert(id)
        }
    }

    // MARK: Connections

    /// A client connection accepted for this loop; with `evictingIdle` (the node is at its
    /// cap) the longest-idle keep-alive connection closes to make room (idle connections have
    /// written their answers whole, so nothing is cut), and without one (it became busy
    /// meanwhile) the new client gets 503.
    /// The control loop chose this loop from a published figure that may be stale (several
    /// accepts in one turn can pick the same loop): without an idle connection left, the
    /// client goes back for one more choice (`retried` false) before it is refused.
    func adoptProxy(_ fd: Int32, evictingIdle: Bool = false, retried: Bool = false) {
        if evictingIdle {
            guard let oldest = self.idle.oldest else {
                self.counters.proxyConnections.subtract(1, ordering: .relaxed)
                if retried {
                    PicoNode.refuse(fd, loop: self.loop, message: "too many connections")
                } else {
                    self.toControl { $0.acceptProxy(fd, retried: true) }
                }
                return
            }
            // Idle, so nothing is lost; TLS still says goodbye (close_notify) before the FIN.
            oldest.connection.closeWhenWritten()
        }
        _ = ProxyConnection(fd: fd, shard: self, moved: nil)
    }

    /// When this loop's longest-idle keep-alive connection became idle, in monotonic
    /// nanoseconds, or nil when it has none (read by the control loop when the proxy port is at
    /// its cap).
    var oldestIdleSince: Int64? {
        let since = self.oldestIdle.load(ordering: .relaxed)
        return since == .max ? nil : since
    }

    /// `connection` waits for its next request (it is the newest idle one).
    func becameIdle(_ connection: ProxyConnection) {
        connection.idleSince = self.loop.now
        let wasEmpty = self.idle.oldest == nil
        self.idle.append(connection)
        if wasEmpty { self.oldestIdle.store(connection.idleSince.nanoseconds, ordering: .relaxed) }
    }

    /// `connection`, which was idle, is not any more (a request began, or it closed).
    func leftIdle(_ connection: ProxyConnection) {
        let wasOldest = self.idle.oldest === connection
        self.idle.remove(connection)
        if wasOldest { self.oldestIdle.store(self.idle.oldest?.idleSince.nanoseconds ?? .max, ordering: .relaxed) }
    }

    /// A client connection that moved here for `moved.head`.
    func adoptMoved(_ fd: Int32, _ moved: ProxyConnection.Moved) {
        _ = ProxyConnection(fd: fd, shard: self, moved: moved)
    }

    /// An agent connection accepted for this loop (counted in `upstreamConnections` until its
    /// tunnel closes).
    func adoptUpstream(_ fd: Int32) {
        _ = ServerTunnel(fd: fd, shard: self)
    }
}
