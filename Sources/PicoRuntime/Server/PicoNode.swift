import Glibc
import PicoModel

/// One `pico server` process: owns the `ClusterNode` (membership, endpoint table, upstream
/// registry, lifecycle) and the listeners on the control loop, spreads accepted connections and
/// tunnels over every loop's `LoopShard`, keeps each shard's `LoopRouter` current with the
/// routing changes the model's directives imply, and carries out the directives. Loop-confined
/// to the control loop; shards reach it only through `loop.execute`.
public final class PicoNode: @unchecked Sendable {
    /// The control loop: the model, the listeners and the admin port run here.
    public let loop: EventLoop
    /// The settings it runs with.
    public let settings: ServerSettings
    let log: Logger
    /// The model.
    public private(set) var cluster: ClusterNode
    /// One shard per loop; `shards[0]` is the control loop's.
    private(set) var shards: [LoopShard] = []
    let counters = ServerCounters()
    /// The loop index of every tunnel (until it closes).
    private var placement: [TunnelID: Int] = [:]
    /// When a gossip datagram last arrived from each source address (wall-clock milliseconds).
    private(set) var lastHeard: [Address: Int64] = [:]
    static let lastHeardLimit = 4_096
    /// Gossip traffic and membership figures.
    var gossipMetrics = GossipMetrics()
    private var nextShard = 0
    private(set) var proxyListener: Listener?
    private(set) var upstreamListener: Listener?
    private(set) var adminListener: Listener?
    private(set) var gossipListener: Listener?
    private(set) var gossip: GossipSocket?
    /// The descriptor limit (raised to the hard limit at start) and the caps it allows each port.
    let budget: DescriptorBudget
    private let raisedLimit: (before: Int, after: Int)
    /// Admin connections and peers' state-exchange connections open now.
    private var adminConnections = 0
    private var exchangeConnections = 0
    /// Refusals, accept back-offs and idle evictions, for `/metrics`.
    private(set) var listenerFigures = ListenerFigures()
    /// When each listener last logged a back-off (one line per listener per 10 s at most).
    private var lastBackOffLog: [Instant?] = Array(repeating: nil, count: ListenerFigures.Port.allCases.count)
    /// State exchanges peers opened, waiting for the model's reply.
    private var incomingExchanges: [ExchangeID: StateExchangeStream] = [:]
    private var nextExchangeID: UInt64 = 0
    /// The proxy port's TLS (`proxy.tls.*`), nil when it serves plain HTTP.
    public let proxyTLS: TLSCredentials?
    /// The upstream port's TLS (`upstream.tls.*`), nil when agents connect in plain text.
    public let upstreamTLS: TLSCredentials?
    /// The admin port's TLS (`admin.tls.*`), nil when it serves plain HTTP.
    public let adminTLS: TLSCredentials?
    /// How this node dials other nodes' TLS proxy and admin ports (`proxy.tls.client.*`); nil
    /// when neither port serves TLS (nodes share one configuration, so peers speak plain text).
    let forwardTLS: ForwardTLS?
    /// The proxy port's token check (`proxy.auth.*`), nil when clients need no token.
    let proxyAuth: VerifierHolder?
    /// The upstream port's token check (`upstream.auth.*`), nil when agents need no token.
    let upstreamAuth: VerifierHolder?
    /// Each tenant's verifier (`upstream.tenants`), by tenant ID (looked up, never iterated).
    let tenantAuth: [String: VerifierHolder]
    /// The admin port's token check (`admin.auth.*`), nil when admin routes need no token.
    let adminAuth: VerifierHolder?
    /// The key sets (`*.auth.jwks.endpoint`) fetched again as they age, by label (the port, or
    /// `upstream.tenants[i]`; looked up, and iterated only in label order).
    var keySets: [String: KeySetSource] = [:]
    /// The admin port's token check, on the control loop (which serves the admin port).
    lazy var adminGate: TokenGate? = self.adminAuth.map { holder in
        let gate = TokenGate(port: .admin, holder: holder)
        gate.onUnknownKey = { [unowned self] in self.refreshKeySet("admin", reason: "unknown kid") }
        return gate
    }
    /// `cluster.gossip.secret_keys_file`, when the gossip keys come from a file.
    let gossipKeyFile: GossipKeyFile?
    /// With sealed gossip: the proofs forwards carry, from keys derived from the gossip keys.
    let forwardSigner: ForwardSigner?
    private var reloadTimer: LoopTimer?
    /// The upstream address agents are told about (informational; not gossiped).
    public let upstreamAdvertised: Address
    private var timers: [TimerID: LoopTimer] = [:]
    /// True while `/ready` answers 200.
    public private(set) var ready = false
    /// Set when the model asks the process to exit, with the exit status.
    public private(set) var exitStatus: Int32?
    /// Called once when the node wants the process to exit (after a clean leave, or a fatal error).
    public var onExit: ((Int32) -> Void)?

    /// Binds the listeners on `loops[0]` (the control loop) and creates the model; the other
    /// loops serve connections and tunnels too (their threads are the caller's to run). Throws
    /// when a port cannot be bound or the settings are invalid.
    public init(settings: ServerSettings, loops: [EventLoop], log: Logger) throws {
        precondition(!loops.isEmpty, "a node needs a loop")
        let loop = loops[0]
        self.loop = loop
        self.settings = settings
        self.log = log
        self.raisedLimit = DescriptorLimit.raiseToHard()
        self.budget = DescriptorBudget(limit: DescriptorLimit.current())
        // Certificates load before any port opens: a file that does not load stops the node.
        self.proxyTLS = try Self.serverTLS(settings.proxyTLS, port: "proxy")
        self.upstreamTLS = try Self.serverTLS(settings.upstreamTLS, port: "upstream")
        self.adminTLS = try Self.serverTLS(settings.adminTLS, port: "admin", requireClientCertificate: false)
        self.forwardTLS = try ForwardTLS(settings.forwardTLS, proxy: self.proxyTLS != nil, admin: self.adminTLS != nil)
        var keySets: [String: KeySetSource] = [:]
        func holder(_ auth: PortAuthSettings, _ label: String) throws -> VerifierHolder? {
            if let location = auth.jwksEndpoint {
                let source = try KeySetSource(label: label, location: location, settings: auth, log: log)
                keySets[label] = source
                return source.holder
            }
            return try auth.verifier(port: label).map(VerifierHolder.init)
        }
        self.proxyAuth = try holder(settings.proxyAuth, "proxy")
        // With tenants, every agent names its tenant and only the tenant's keys count (Piko).
        self.upstreamAuth = settings.tenants.isEmpty ? try holder(settings.upstreamAuth, "upstream") : nil
        if !settings.tenants.isEmpty, settings.upstreamAuth.isEnabled {
            log.warn("upstream.auth is not used: with upstream.tenants, agents name their tenant and its keys verify them")
        }
        var tenantAuth: [String: VerifierHolder] = [:]
        for (index, tenant) in settings.tenants.enumerated() {
            tenantAuth[tenant.id] = try holder(tenant.auth, TenantSettings.label(index))
            if let warning = tenant.auth.weakSecretWarning(port: TenantSettings.label(index)) { log.warn(warning) }
        }
        self.tenantAuth = tenantAuth
        // Two tenants with a key in common take each other's tokens: each could register as the other.
        var owners: [String: String] = [:]
        for tenant in settings.tenants {
            for key in tenantAuth[tenant.id]?.current.keys ?? [] {
                if let other = owners[key.fingerprint] {
                    log.warn("tenants share a key: a token either's agents hold registers as the other", [("tenants", .string("\(other),\(tenant.id)")), ("key", .string(key.fingerprint))])
                } else {
                    owners[key.fingerprint] = tenant.id
                }
            }
        }
        self.adminAuth = try holder(settings.adminAuth, "admin")
        self.keySets = keySets
        for (port, auth) in [("proxy", settings.proxyAuth), ("upstream", settings.upstreamAuth), ("admin", settings.adminAuth)] {
            if let warning = auth.weakSecretWarning(port: port) { log.warn(warning) }
        }
        let proxy = try Listener(address: settings.proxyBind, loop: loop)
        let upstream = try Listener(address: settings.upstreamBind, loop: loop)
        let admin = try Listener(address: settings.adminBind, loop: loop)
        // TCP (state exchanges) and UDP (datagrams) share the gossip address; with port 0 the
        // UDP socket takes the port TCP was given.
        let gossipStreams = try Listener(address: settings.gossipBind, loop: loop)
        let gossipBound = Address(host: settings.gossipBind.host, port: gossipStreams.address.port)
        let gossip = try GossipSocket(bind: gossipBound, loop: loop)
        let interfaces = InterfaceAddress.current()
        func advertised(_ explicit: Address?, _ bound: Address, _ key: String) throws(ConfigError) -> Address {
            try AdvertiseAddress.derive(explicit: explicit, bound: bound, interfaces: interfaces, key: key)
        }
        var configuration = settings.clusterConfiguration(
            gossipAddress: try advertised(settings.gossipAdvertise, gossipStreams.address, "cluster.gossip.advertise_addr"),
            proxyAddress: try advertised(settings.proxyAdvertise, proxy.address, "proxy.advertise_addr"),
            adminAddress: try advertised(settings.adminAdvertise, admin.address, "admin.advertise_addr"),
            randomSeed: UInt64(bitPattern: MonotonicClock.wallMilliseconds()) ^ UInt64(truncatingIfNeeded: MonotonicClock.now().nanoseconds))
        configuration.epoch = UInt64(MonotonicClock.wallMilliseconds())
        self.upstreamAdvertised = try AdvertiseAddress.derive(explicit: settings.upstreamAdvertise, bound: upstream.address, interfaces: interfaces, key: "upstream.advertise_addr")
        self.gossipKeyFile = try settings.gossipSecretKeysFile.map { path throws(ConfigError) in try GossipKeyFile(path: path) }
        let keyring = self.gossipKeyFile?.keyring ?? settings.gossipSecretKeys
        let security = keyring.map {
            GossipSecurity(keyring: $0, cipher: AESGCMGossipCipher(), verifyIncoming: settings.gossipVerifyIncoming, verifyOutgoing: settings.gossipVerifyOutgoing)
        }
        self.cluster = try ClusterNode(configuration: configuration, security: security)
        self.forwardSigner = keyring.map(ForwardSigner.init)
        if let keyring {
            log.info("gossip is sealed (AES-256-GCM)", [("keys", .string(keyring.keys.map(KeyFingerprint.of).joined(separator: ","))),
                                                         ("verify_incoming", .bool(settings.gossipVerifyIncoming)), ("verify_outgoing", .bool(settings.gossipVerifyOutgoing))])
        }
        self.proxyListener = proxy
        self.upstreamListener = upstream
        self.adminListener = admin
        self.gossipListener = gossipStreams
        self.gossip = gossip
        let seed = configuration.randomSeed
        self.shards = loops.enumerated().map { index, shardLoop in
            LoopShard(index: index, loop: shardLoop, node: self, counters: self.counters, seed: seed &+ UInt64(index))
        }
        proxy.onAccept = { [unowned self] fd in self.acceptProxy(fd) }
        upstream.onAccept = { [unowned self] fd in self.acceptUpstream(fd) }
        admin.onAccept = { [unowned self] fd in self.acceptAdmin(fd) }
        gossipStreams.onAccept = { [unowned self] fd in self.acceptStateExchange(fd) }
        for (listener, port) in [(proxy, ListenerFigures.Port.proxy), (upstream, .upstream), (admin, .admin), (gossipStreams, .gossip)] {
            listener.backOff = Self.acceptBackOff
            listener.onBackOff = { [unowned self] error in self.acceptBackedOff(port, error) }
        }
        gossip.onDatagram = { [unowned self] bytes, from in
            if self.lastHeard.count >= Self.lastHeardLimit, self.lastHeard[from] == nil { self.lastHeard.removeAll() }
            self.lastHeard[from] = MonotonicClock.wallMilliseconds()
            self.handle(.datagramReceived(bytes, from: from))
        }
        gossip.onSendFailed = { [unowned self] address in self.handle(.datagramSendFailed(to: address)) }
    }

    /// Each TLS port's certificate expiry (the certificate in use now), for `/metrics`.
    var certificateExpiries: [(port: ListenerFigures.Port, expiry: Int64)] {
        [(ListenerFigures.Port.proxy, self.proxyTLS), (.upstream, self.upstreamTLS), (.admin, self.adminTLS)].compactMap { port, credentials in
            credentials?.current.certificateExpiry.map { (port, $0) }
        }
    }

    /// The TLS of a port's settings, or nil for plain text; a failure names the port's keys.
    static func serverTLS(_ files: PortTLSFiles, port: String, requireClientCertificate: Bool = true) throws -> TLSCredentials? {
        guard let settings = try files.serverSettings(port: port, requireClientCertificate: requireClientCertificate) else { return nil }
        do {
            return try TLSCredentials.server(settings, name: "\(port).tls")
        } catch {
            throw ConfigError("\(port).tls: \(error)")
        }
    }

    /// Every set of certificate files this node loaded.
    private var allCredentials: [TLSCredentials] {
        [self.proxyTLS, self.upstreamTLS, self.adminTLS, self.forwardTLS?.credentials].compactMap { $0 }
    }

    /// Checks every certificate, key and CA file for new contents (SIGHUP: loads them all now)
    /// and logs what changed; new connections use new files, open ones keep theirs, and files
    /// that do not load leave the old ones in use.
    public func reloadCertificates(_ trigger: CertificateReload.Trigger) {
        TLSCredentials.reload(self.allCredentials, trigger, log: self.log)
        switch self.gossipKeyFile?.check(trigger) {
        case .loaded(let keyring)?:
            self.log.info("gossip keys loaded", [("file", .string(self.gossipKeyFile?.path ?? "")), ("keys", .string(keyring.keys.map(KeyFingerprint.of).joined(separator: ",")))])
            self.handle(.gossipKeyringChanged(keyring))
            self.forwardSigner?.update(keyring)
        case .refused(let reason)?:
            self.log.warn("gossip key file not loaded; the keys in use stay", [("error", .string(reason))])
        case .unchanged?, nil:
            break
        }
    }

    /// Fetches the key set labelled `label` again (on a thread of its own), when there is one.
    func refreshKeySet(_ label: String, reason: String) {
        self.keySets[label]?.refresh(unknownKey: reason == "unknown kid", loop: self.loop, log: self.log)
    }

    /// Fetches the key set labelled `label` again every `cache_ttl`.
    private func armKeySetRefresh(_ label: String) {
        guard let source = self.keySets[label] else { return }
        self.loop.schedule(after: source.cacheTTL) { [weak self] in
            self?.refreshKeySet(label, reason: "cache_ttl")
            self?.armKeySetRefresh(label)
        }
    }

    private func armCertificateReload() {
        guard self.settings.tlsReloadInterval > .zero, !self.allCredentials.isEmpty || self.gossipKeyFile != nil else { return }
        self.reloadTimer = self.loop.schedule(after: self.settings.tlsReloadInterval) { [weak self] in
            self?.reloadCertificates(.periodic)
            self?.armCertificateReload()
        }
    }

    /// The bound addresses (actual ports when bound to port 0).
    public var proxyAddress: Address? { self.proxyListener?.address }
    public var upstreamAddress: Address? { self.upstreamListener?.address }
    public var adminAddress: Address? { self.adminListener?.address }

    /// Starts the node (it turns ready once the model says so).
    public func start() {
        for label in self.keySets.keys.sorted() { self.armKeySetRefresh(label) }
        // Tunnels let in by a key the upstream port's (or a tenant's) new key set lacks are closed.
        for label in ["upstream"] + self.settings.tenants.indices.map(TenantSettings.label) {
            self.keySets[label]?.onLoaded = { [unowned self] in
                for shard in self.shards { shard.loop.execute { shard.upstreamKeysChanged() } }
            }
        }
        let me = self.cluster.me
        self.log.info("starting node", [("node_id", .string(me.name)), ("proxy_addr", .string("\(self.proxyAddress!)")),
                                        ("upstream_addr", .string("\(self.upstreamAddress!)")), ("admin_addr", .string("\(self.adminAddress!)")),
                                        ("advertise_proxy_addr", .string("\(me.proxyAddress)")), ("advertise_upstream_addr", .string("\(self.upstreamAdvertised)")),
                                        ("advertise_admin_addr", .string("\(me.adminAddress)"))])
        self.log.info("descriptor limit", [("soft_limit_before", .int(self.raisedLimit.before)), ("soft_limit", .int(self.budget.limit)),
                                           ("reserve", .int(self.budget.reserve)), ("proxy_max_connections", .int(self.proxyCap)),
                                           ("upstream_max_connections", .int(self.upstreamCap)), ("admin_max_connections", .int(self.adminCap)),
                                           ("max_state_exchanges", .int(self.exchangeCap))])
        self.armCertificateReload()
        self.handle(.start)
    }

    /// SIGTERM: drain gracefully (a second call changes nothing; the caller exits at once on a
    /// second signal).
    public func shutdown() {
        self.handle(.shutdownRequested)
    }

    // MARK: Model

    /// Feeds one input to the model and carries out its directives, routing changes included
    /// (sent to every loop).
    func handle(_ input: ClusterInput) {
        for directive in self.cluster.handle(input, now: self.loop.now) {
            switch directive {
            case .routingChanged(let changes):
                self.publish(changes)
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
                self.onShard(of: id) { $0.tellAgentToMove(id) }
            case .closeTunnel(let id):
                self.onShard(of: id) { $0.closeTunnel(id) }
            case .exit(let reason):
                self.exit(reason)
            case .event(let event):
                self.record(event)
                switch event {
                case .malformedMessage:
                    self.gossipMetrics.malformed += 1
                case .membership(.forgedClaimDropped):
                    self.gossipMetrics.forged += 1
                case .unauthenticatedMessage:
                    self.gossipMetrics.unauthenticated += 1
                default:
                    break
                }
            case .sendDatagram(let bytes, let address):
                self.gossip?.send(bytes, to: address)
            case .resolveSeeds(let names):
                self.resolveSeeds(names)
            case .openStateExchange(let id, let address, let bytes):
                StateExchangeStream.open(id, to: address, request: bytes, loop: self.loop) { [unowned self] id, result in
                    switch result {
                    case .success(let reply): self.handle(.stateExchangeReplied(id, bytes: reply))
                    case .failure(let failure):
                        self.gossipMetrics.exchangesFailed += 1
                        self.handle(.stateExchangeFailed(id, reason: failure.description))
                    }
                }
            case .replyStateExchange(let id, let bytes):
                self.gossipMetrics.exchangesServed += 1
                self.incomingExchanges.removeValue(forKey: id)?.reply(bytes)
            }
        }
    }

    /// Resolves `cluster.join` off the loop and hands the addresses to the model.
    private func resolveSeeds(_ names: [String]) {
        let port = self.gossipListener?.address.port ?? self.settings.gossipBind.port
        do {
            try Threads.detach { [self] in
                let result = SeedResolver.resolve(names, defaultPort: port)
                self.loop.execute { [self] in
                    switch result {
                    case .success(let addresses): self.handle(.seedsResolved(addresses))
                    case .failure(let failure): self.handle(.seedResolutionFailed(reason: failure.description))
                    }
                }
            }
        } catch {
            self.loop.schedule(after: .zero) { [unowned self] in self.handle(.seedResolutionFailed(reason: "\(error)")) }
        }
    }

    /// A peer opened a state exchange on the gossip port: served up to the cap (connections
    /// still sending their request count), closed at once beyond it.
    private func acceptStateExchange(_ fd: Int32) {
        guard self.exchangeConnections < self.exchangeCap else {
            self.listenerFigures.countRefusal(.gossip)
            Glibc.close(fd)
            return
        }
        self.exchangeConnections += 1
        let stream = StateExchangeStream.accept(fd: fd, loop: self.loop) { [unowned self] stream, request, from in
            self.nextExchangeID += 1
            let id = ExchangeID(self.nextExchangeID)
            self.incomingExchanges[id] = stream
            stream.onFinished = { [unowned self] in self.incomingExchanges[id] = nil }
            self.handle(.stateExchangeRequested(id, bytes: request, from: from))
        }
        stream.onClosed = { [unowned self] in self.exchangeConnections -= 1 }
    }

    /// A member's proxy host in the form `getpeername` reports (so "::1" and "0:0::1" match
    /// alike), and an IPv4 address also in its IPv4-mapped IPv6 form, as a dual-stack listener
    /// reports such clients.
    static func socketForms(of hosts: [String]) -> [String] {
        var forms: [String] = []
        for host in hosts {
            guard let canonical = Address(host: host, port: 0).numeric()?.address.host else { continue }
            forms.append(canonical)
            if canonical.contains("."), !canonical.contains(":") { forms.append("::ffff:" + canonical) }
        }
        return forms
    }

    /// Sends routing changes to every shard, in order (the control loop's own at once).
    private func publish(_ model: [RoutingChange]) {
        guard !model.isEmpty else { return }
        // Peers' hosts as this host's sockets spell them, so a loop compares them as it reads them.
        let changes = model.map { change -> RoutingChange in
            guard case .peerProxyHosts(let hosts) = change else { return change }
            return .peerProxyHosts(Self.socketForms(of: hosts))
        }
        for shard in self.shards {
            if shard.loop === self.loop {
                shard.apply(changes)
            } else {
                shard.loop.execute { shard.apply(changes) }
            }
        }
    }

    /// Runs `work` on the shard of tunnel `id` (at once when that is the control loop's).
    private func onShard(of id: TunnelID, _ work: @escaping @Sendable (LoopShard) -> Void) {
        guard let index = self.placement[id] else { return }
        let shard = self.shards[index]
        if shard.loop === self.loop {
            work(shard)
        } else {
            shard.loop.execute { work(shard) }
        }
    }

    private func exit(_ reason: Lifecycle.ExitReason) {
        guard self.exitStatus == nil else { return }
        let status: Int32
        switch reason {
        case .left: status = 0
        case .joinFailed: status = 1
        }
        self.exitStatus = status
        if reason == .joinFailed {
            self.log.error("could not join the cluster: no node of cluster.join answered within cluster.join_timeout; exiting (cluster.abort_if_join_fails: false runs alone instead)",
                           [("join", .string(self.settings.join.joined(separator: ","))), ("join_timeout", .string(DurationText.format(self.settings.membership.joinTimeout)))])
        }
        self.log.info("node exiting", [("reason", .string("\(reason)")), ("status", .int(Int(status))), ("in_flight", .int(self.counters.inFlight.load(ordering: .relaxed)))])
        for listener in [self.proxyListener, self.upstreamListener, self.adminListener, self.gossipListener] { listener?.close() }
        self.gossip?.close()
        self.gossip = nil
        // Requests still being answered finish first (bounded), so no accepted request is cut.
        self.loop.schedule(after: Self.exitFlushLimit) { [unowned self] in self.finishExit() }
        self.exitIfIdle()
    }

    /// The longest the process waits, after the model said exit, for answers still being written.
    static let exitFlushLimit: Duration = .seconds(5)

    /// Exits once nothing is in flight on any loop, after the model asked to exit; checks again
    /// every 20 ms until then (`exitFlushLimit` ends the wait regardless).
    func exitIfIdle() {
        guard self.exitStatus != nil else { return }
        guard self.counters.inFlight.load(ordering: .relaxed) == 0 else {
            self.loop.schedule(after: .milliseconds(20)) { [unowned self] in self.exitIfIdle() }
            return
        }
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

    // MARK: Tunnels (reported by shards, on the control loop)

    /// A tunnel on loop `loop` completed its handshake.
    func tunnelOpened(_ id: TunnelID, endpoint: String, loop: Int, tenant: String, agent: TunnelAgent) {
        self.placement[id] = loop
        self.handle(.tunnelOpened(id, endpoint: endpoint, loop: loop, tenant: tenant, wallMilliseconds: UInt64(clamping: MonotonicClock.wallMilliseconds()), agent: agent))
    }

    /// A tunnel closed, or its agent said go-away (reported once per tunnel).
    func tunnelClosed(_ id: TunnelID) {
        self.handle(.tunnelClosed(id))
        self.placement[id] = nil
    }

    /// Every loop's metrics, added up.
    var metricValues: MetricValues {
        var total = MetricValues()
        for shard in self.shards { total.add(shard.metrics.snapshot) }
        return total
    }

    // MARK: Accepting

    /// The next shard, round robin.
    private func pickShard() -> LoopShard {
        let shard = self.shards[self.nextShard % self.shards.count]
        self.nextShard &+= 1
        return shard
    }

    /// The caps each port runs with: the configured ones, within the descriptor budget.
    var proxyCap: Int { self.budget.cap(self.settings.maxConnections) }
    var upstreamCap: Int { self.budget.cap(self.settings.upstreamMaxConnections) }
    var adminCap: Int { self.budget.cap(self.settings.adminMaxConnections) }
    var exchangeCap: Int { self.budget.cap(self.settings.maxStateExchanges) }

    /// A client connection: served by the next loop; at the cap by the loop holding the node's
    /// longest-idle keep-alive connection, which it closes to make room; without one, 503.
    /// `retried`: a loop chosen for an eviction had no idle connection left and sent it back.
    func acceptProxy(_ fd: Int32, retried: Bool = false) {
        let evict = self.counters.proxyConnections.load(ordering: .relaxed) >= self.proxyCap
        let shard: LoopShard
        if evict {
            let oldest = self.shards.min { ($0.oldestIdleSince ?? .max) < ($1.oldestIdleSince ?? .max) }
            guard let idle = oldest, idle.oldestIdleSince != nil else {
                self.listenerFigures.countRefusal(.proxy)
                Self.refuse(fd, loop: self.loop, message: "too many connections", tls: self.proxyTLS != nil)
                return
            }
            shard = idle
            if !retried { self.listenerFigures.idleEvictions &+= 1 }
        } else {
            shard = self.pickShard()
        }
        self.counters.proxyConnections.add(1, ordering: .relaxed)
        if shard.loop === self.loop {
            shard.adoptProxy(fd, evictingIdle: evict, retried: retried)
        } else {
            shard.loop.execute { shard.adoptProxy(fd, evictingIdle: evict, retried: retried) }
        }
    }

    /// Answers 503 with `message` on a connection beyond a port's cap and closes it.
    /// Refuses a connection at a port's cap: 503 in plain text, or on a TLS port (where a plain
    /// answer reads as a protocol error and a handshake costs what the cap protects) a close.
    static func refuse(_ fd: Int32, loop: EventLoop, message: String, tls: Bool = false) {
        let connection = Connection(fd: fd, loop: loop, connected: true, delegate: nil)
        if !tls { connection.write(ProxyErrors.response(status: 503, message: message, keepAlive: false)) }
        connection.closeWhenWritten()
    }

    private func acceptUpstream(_ fd: Int32) {
        guard self.counters.upstreamConnections.load(ordering: .relaxed) < self.upstreamCap else {
            self.listenerFigures.countRefusal(.upstream)
            Self.refuse(fd, loop: self.loop, message: "too many upstream connections", tls: self.upstreamTLS != nil)
            return
        }
        self.counters.upstreamConnections.add(1, ordering: .relaxed)
        let shard = self.pickShard()
        if shard.loop === self.loop {
            shard.adoptUpstream(fd)
        } else {
            shard.loop.execute { shard.adoptUpstream(fd) }
        }
    }

    private func acceptAdmin(_ fd: Int32) {
        guard self.adminConnections < self.adminCap else {
            self.listenerFigures.countRefusal(.admin)
            Self.refuse(fd, loop: self.loop, message: "too many admin connections", tls: self.adminTLS != nil)
            return
        }
        self.adminConnections += 1
        _ = AdminConnection(fd: fd, node: self)
    }

    /// An admin connection closed.
    func adminConnectionClosed() {
        self.adminConnections -= 1
    }

    /// A listener failed to accept (out of descriptors) and stopped accepting briefly.
    private func acceptBackedOff(_ port: ListenerFigures.Port, _ error: SocketError) {
        self.listenerFigures.countBackOff(port)
        let now = self.loop.now
        if let last = self.lastBackOffLog[port.rawValue], now - last < .seconds(10) { return }
        self.lastBackOffLog[port.rawValue] = now
        self.log.warn("accept failed; the listener stops accepting for a moment", [
            ("listener", .string(port.label)), ("error", .string("\(error)")), ("descriptor_limit", .int(self.budget.limit)), ("back_off", .string(DurationText.format(Self.acceptBackOff))),
        ])
    }

    /// How long a listener stops accepting after a failed accept.
    static let acceptBackOff: Duration = .milliseconds(200)
}
