import PicoModel

/// Everything `pico server` runs with, after defaults, the config file and flags.
public struct ServerSettings: Hashable, Sendable {
    /// `proxy.bind_addr`.
    public var proxyBind = Address(host: "", port: 8000)
    /// `proxy.advertise_addr` (derived from the bind address when nil).
    public var proxyAdvertise: Address?
    /// `proxy.timeout`: how long a request may wait for its response head; zero disables it.
    public var proxyTimeout: Duration = .seconds(30)
    /// `proxy.http.read_header_timeout`: how long a started request head may take.
    public var readHeaderTimeout: Duration = .seconds(10)
    /// `proxy.http.read_timeout`: how long a request body may stop arriving (408 after).
    public var readTimeout: Duration = .seconds(10)
    /// `proxy.http.max_header_bytes`: the largest request head (431 above).
    public var maxHeaderBytes = 64 * 1_024
    /// `proxy.http.idle_timeout`: how long a keep-alive connection may sit between requests.
    public var idleTimeout: Duration = .seconds(300)
    /// `proxy.http.write_timeout`: how long a response may stall with bytes queued for the client.
    public var writeTimeout: Duration = .seconds(10)
    /// `proxy.http.max_connections`: client connections served at once; at the cap an idle
    /// keep-alive connection is closed to make room, and without one a new client gets 503.
    public var maxConnections = 10_000
    /// `proxy.forward_max_connections`: connections from one event loop to one other node for
    /// forwarded requests; a forward beyond it gets 503.
    public var forwardMaxConnections = 512
    /// `proxy.tcp.idle_timeout`: how long a TCP route connection may carry no byte either way
    /// before its holding node closes it; zero never does. An hour, as HAProxy's common tunnel
    /// timeout: long enough for a pooled database connection between queries, short enough that
    /// connections a client forgot do not hold descriptors and tunnel streams for days.
    public var tcpIdleTimeout: Duration = .seconds(3_600)
    /// `proxy.upstream_wait`: how long a request for an endpoint no node is known to hold waits
    /// for routing to learn one (502 after); zero answers at once.
    public var upstreamWait: Duration = .seconds(1)
    /// `proxy.max_waiting_requests`: requests one event loop lets wait for a holder at once
    /// (more are answered 502 at once).
    public var maxWaitingRequests = 1_024
    /// `proxy.forward_dial_timeout`: how long a forward's dial to another node may take, and how
    /// long its bytes may go unacknowledged (`TCP_USER_TIMEOUT`) before the forward fails and
    /// another holder is tried.
    public var forwardDialTimeout: Duration = .seconds(1)
    /// `proxy.forward_answer_timeout`: how long a forward may hear nothing from the node it went
    /// to before the answer starts (that node heartbeats every third of it while its upstream
    /// works); zero turns the rule off.
    public var forwardAnswerTimeout: Duration = .seconds(1)
    /// `proxy.access_log.disable`.
    public var accessLogDisabled = false
    /// `proxy.access_log.level`: the level of access-log lines (raised to `warn` for 5xx).
    public var accessLogLevel: LogLevel = .info
    /// `proxy.access_log.request_headers.allow_list` / `.block_list`, as one filter.
    public var accessLogRequestHeaders: HeaderLogFilter = .all
    /// `proxy.access_log.response_headers.allow_list` / `.block_list`, as one filter.
    public var accessLogResponseHeaders: HeaderLogFilter = .all
    /// `proxy.tls.cert`, `proxy.tls.key`, `proxy.tls.client_cas`, `proxy.tls.min_version`:
    /// the proxy port's TLS (nil parts: not set).
    public var proxyTLS = PortTLSFiles()
    /// `upstream.tls.*`: the upstream port's TLS (agents dial `https://` or `wss://`).
    public var upstreamTLS = PortTLSFiles()
    /// `admin.tls.*`: the admin port's TLS; with `admin.tls.client_cas`, every route but
    /// `/health` and `/ready` needs a client certificate (probes carry none).
    public var adminTLS = PortTLSFiles()
    /// `proxy.tls.client.*`: how this node dials other nodes' TLS proxy and admin ports.
    public var forwardTLS = ForwardTLSFiles()
    /// `proxy.auth.*`: tokens clients must present (off unless a key is set).
    public var proxyAuth = PortAuthSettings()
    /// `upstream.auth.*`: tokens agents must present to open a tunnel.
    public var upstreamAuth = PortAuthSettings()
    /// `upstream.tenants` (YAML only): with any, agents name their tenant and `upstreamAuth` is
    /// not used.
    public var tenants: [TenantSettings] = []
    /// `upstream.tenants_file`: where `tenants` is read from instead.
    public var tenantsFile: String?
    /// `upstream.tenant_reservation`: how long an endpoint stays its tenant's after its last tunnel.
    public var tenantReservation: Duration = .seconds(300)
    /// `upstream.rebalance.*`: when and how fast tunnels move off a node holding more than its share.
    public var rebalance = Rebalancer.Settings()
    /// `cluster.max_endpoints_per_member`.
    public var maxEndpointsPerMember = EndpointTable.maxEntriesPerOwner
    /// `admin.auth.*`: tokens every admin route but `/health` and `/ready` needs.
    public var adminAuth = PortAuthSettings()
    /// `tls.reload_interval`: how often certificate files are checked for new contents (zero:
    /// only on SIGHUP).
    public var tlsReloadInterval: Duration = .seconds(10)
    /// `upstream.bind_addr`.
    public var upstreamBind = Address(host: "", port: 8001)
    /// `upstream.advertise_addr`.
    public var upstreamAdvertise: Address?
    /// `upstream.max_connections`: agent connections (tunnels and handshakes) at once; more get 503.
    public var upstreamMaxConnections = 20_000
    /// `upstream.keepalive_interval`: yamux ping period on tunnels.
    public var keepaliveInterval: Duration = .seconds(30)
    /// `upstream.keepalive_timeout`: an unanswered ping this old closes the tunnel.
    public var keepaliveTimeout: Duration = .seconds(10)
    /// `admin.bind_addr`.
    public var adminBind = Address(host: "", port: 8002)
    /// `admin.advertise_addr`.
    public var adminAdvertise: Address?
    /// `admin.max_connections`: admin connections at once; more get 503.
    public var adminMaxConnections = 256
    /// `cluster.gossip.bind_addr`.
    public var gossipBind = Address(host: "", port: 8003)
    /// `cluster.gossip.advertise_addr`.
    public var gossipAdvertise: Address?
    /// `cluster.gossip.max_state_exchanges`: state-exchange connections from peers at once
    /// (waiting for their request included); more are closed at once.
    public var maxStateExchanges = 64
    /// Where the gossip keys come from.
    public enum GossipKeys: Hashable, Sendable {
        /// `cluster.gossip.secret_keys`: these keys, for the process's life.
        case inline(GossipKeyring)
        /// `cluster.gossip.secret_keys_file`: the file's keys, read again as it changes.
        case file(String)
    }

    /// `cluster.gossip.secret_keys`.
    public var gossipSecretKeys: GossipKeyring?
    /// `cluster.gossip.secret_keys_file`.
    public var gossipSecretKeysFile: String?
    /// The gossip keys (nil: gossip in plain text).
    public var gossipKeys: GossipKeys? {
        if let file = self.gossipSecretKeysFile { return .file(file) }
        return self.gossipSecretKeys.map { .inline($0) }
    }
    /// `cluster.gossip.verify_incoming`: with keys, refuse plain-text gossip.
    public var gossipVerifyIncoming = true
    /// `cluster.gossip.verify_outgoing`: with keys, seal outgoing gossip.
    public var gossipVerifyOutgoing = true
    /// `cluster.join`: IPs, `host:port` or DNS names of the nodes to join (empty: run alone).
    public var join: [String] = []
    /// The membership protocol's settings (`cluster.gossip.*`, `cluster.join_timeout`,
    /// `cluster.abort_if_join_fails`), with the model's defaults.
    public var membership = MembershipSettings()
    /// `cluster.node_id`.
    public var nodeID: String?
    /// `cluster.node_id_prefix`.
    public var nodeIDPrefix = ""
    /// `event_loops`: loop threads serving connections and tunnels (nil: one per online processor).
    public var eventLoops: Int?
    /// `grace_period`.
    public var gracePeriod: Duration = .seconds(60)
    /// `log.level`.
    public var logLevel: LogLevel = .info
    /// `log.subsystems`: subsystems logged at every level (debug), whatever `log.level` says.
    public var logSubsystems: [String] = []

    /// Piko's defaults.
    public init() {}

    /// The model's configuration for these settings at the given advertised addresses.
    public func clusterConfiguration(gossipAddress: Address, proxyAddress: Address, adminAddress: Address, randomSeed: UInt64) -> ClusterConfiguration {
        var configuration = ClusterConfiguration(gossipAddress: gossipAddress, proxyAddress: proxyAddress, adminAddress: adminAddress, randomSeed: randomSeed)
        configuration.join = self.join
        configuration.membership = self.membership
        configuration.nodeName = self.nodeID
        configuration.nodeNamePrefix = self.nodeIDPrefix
        configuration.gracePeriod = self.gracePeriod
        configuration.tenantReservation = self.tenantReservation
        configuration.rebalance = self.rebalance
        configuration.maxEndpointsPerMember = self.maxEndpointsPerMember
        configuration.tenants = Set(self.tenants.map(\.id))
        for tenant in self.tenants where tenant.quota != TenantQuota() { configuration.tenantQuotas[tenant.id] = tenant.quota }
        // A short grace period (tests, small deployments) shortens the built-in drain hold too.
        configuration.drainMinimum = min(configuration.drainMinimum, self.gracePeriod / 4)
        return configuration
    }
}

/// A port's TLS settings as configured: all optional until checked together (`serverSettings`).
public struct PortTLSFiles: Hashable, Sendable {
    public var certificatePath: String?
    public var keyPath: String?
    public var clientCAsPath: String?
    public var minimumVersion: TLSMinimumVersion = .tls12

    public init() {}

    /// The port's TLS, or nil when it serves plain text; throws when the settings do not fit
    /// together (a key without a certificate, client CAs without either), naming the keys.
    /// `requireClientCertificate: false` (the admin port) asks for a client certificate and
    /// verifies one that is sent, but lets a client without one finish the handshake.
    public func serverSettings(port: String, requireClientCertificate: Bool = true) throws(ConfigError) -> TLSServerSettings? {
        switch (self.certificatePath, self.keyPath) {
        case (let certificate?, let key?):
            return TLSServerSettings(certificatePath: certificate, keyPath: key, clientCAsPath: self.clientCAsPath, minimumVersion: self.minimumVersion,
                                     requireClientCertificate: requireClientCertificate)
        case (nil, nil):
            if self.clientCAsPath != nil { throw ConfigError("\(port).tls.client_cas needs \(port).tls.cert and \(port).tls.key") }
            return nil
        case (nil, _?):
            throw ConfigError("\(port).tls.key is set without \(port).tls.cert")
        case (_?, nil):
            throw ConfigError("\(port).tls.cert is set without \(port).tls.key")
        }
    }
}

/// `proxy.tls.client.*`: how a node dials other nodes' TLS ports (forwards and admin
/// `?forward=`). Peers are checked against `serverName` when it is set (a name every node's
/// certificate carries, e.g. the headless service's DNS name), else against the peer's
/// advertised IP address (certificates carry the pod IPs).
public struct ForwardTLSFiles: Hashable, Sendable {
    /// `proxy.tls.client.root_cas`: the CAs node certificates are checked against (nil: the
    /// system's roots).
    public var rootCAsPath: String?
    /// `proxy.tls.client.cert` / `.key`: the certificate a node presents to peers whose ports
    /// require client certificates (mTLS).
    public var certificatePath: String?
    public var keyPath: String?
    /// `proxy.tls.client.server_name`: sent as SNI and checked in peers' certificates.
    public var serverName: String?

    public init() {}

    /// True when any of the keys is set.
    public var isConfigured: Bool { self.rootCAsPath != nil || self.certificatePath != nil || self.keyPath != nil || self.serverName != nil }

    /// The client settings, or a problem naming the keys (a certificate without its key).
    public func clientSettings() throws(ConfigError) -> TLSClientSettings {
        switch (self.certificatePath, self.keyPath) {
        case (nil, _?): throw ConfigError("proxy.tls.client.key is set without proxy.tls.client.cert")
        case (_?, nil): throw ConfigError("proxy.tls.client.cert is set without proxy.tls.client.key")
        default: return TLSClientSettings(rootCAsPath: self.rootCAsPath, certificatePath: self.certificatePath, keyPath: self.keyPath)
        }
    }
}

extension ServerSettings {
    /// Every TLS setting checked together: each port's, and the forward client's, which needs
    /// a TLS proxy or admin port to be of use.
    func validateTLS() throws(ConfigError) {
        let proxy = try self.proxyTLS.serverSettings(port: "proxy")
        _ = try self.upstreamTLS.serverSettings(port: "upstream")
        let admin = try self.adminTLS.serverSettings(port: "admin", requireClientCertificate: false)
        let client = try self.forwardTLS.clientSettings()
        if self.forwardTLS.isConfigured, proxy == nil, admin == nil {
            throw ConfigError("proxy.tls.client.* is set, but neither proxy.tls nor admin.tls is: nodes dial each other in plain text")
        }
        // Nodes are each other's clients: a port that requires client certificates needs every
        // node to present one, or forwards to it (or admin ?forward=) are refused.
        for (port, settings) in [("proxy", proxy), ("admin", admin)] where settings?.clientCAsPath != nil && client.certificatePath == nil {
            throw ConfigError("\(port).tls.client_cas needs proxy.tls.client.cert and proxy.tls.client.key: other nodes present them when they forward to this port")
        }
    }

    /// The gossip key settings fit together: one source of keys, and the verify switches only
    /// with keys.
    func validateGossipKeys() throws(ConfigError) {
        if self.gossipSecretKeys != nil, self.gossipSecretKeysFile != nil {
            throw ConfigError("cluster.gossip.secret_keys and cluster.gossip.secret_keys_file: give one of them")
        }
        if self.gossipKeys == nil, !self.gossipVerifyIncoming || !self.gossipVerifyOutgoing {
            throw ConfigError("cluster.gossip.verify_incoming and verify_outgoing apply with gossip keys only (cluster.gossip.secret_keys or secret_keys_file)")
        }
    }

    /// Every port's auth settings, loaded (so a key that does not load stops `--validate` too).
    func validateAuth() throws(ConfigError) {
        for (port, auth) in [("proxy", self.proxyAuth), ("upstream", self.upstreamAuth), ("admin", self.adminAuth)] {
            _ = try auth.verifier(port: port)
        }
        for (index, tenant) in self.tenants.enumerated() { try tenant.validate(index: index) }
    }

    /// What the proxy's request exchanges run with.
    var exchangeSettings: ExchangeSettings {
        ExchangeSettings(upstreamTimeout: self.proxyTimeout, holderWait: self.upstreamWait, forwardDialTimeout: self.forwardDialTimeout,
                         forwardAnswerTimeout: self.forwardAnswerTimeout)
    }

    /// What a proxy connection's client owes it, and by when.
    var clientTimeouts: ClientReadWatch.Timeouts {
        ClientReadWatch.Timeouts(idle: self.idleTimeout, head: self.readHeaderTimeout, body: self.readTimeout)
    }
}
