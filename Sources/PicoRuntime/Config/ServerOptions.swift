import PicoModel

/// A configuration problem: the key (or flag), where it was found, and what is wrong. `pico`
/// prints it and exits with status 2.
public struct ConfigError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The message, naming the key and, for the config file, the line.
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { self.message }
}

/// One server setting: its YAML path, its flag, default, meaning, and how it is applied.
public struct ServerOption: Sendable {
    /// The dotted YAML path, e.g. `proxy.bind_addr`.
    public var key: String
    /// The default, as text (for `--help` and the docs).
    public var defaultText: String
    /// What it does.
    public var help: String
    let apply: @Sendable (inout ServerSettings, String) -> String?

    /// The keys whose value is a list (a YAML sequence, or comma-separated as a flag); any
    /// other key given a sequence in the file is an error, not a joined string.
    static let listKeys: Set<String> = [
        "cluster.join", "cluster.gossip.secret_keys", "log.subsystems",
        "proxy.access_log.request_headers.allow_list", "proxy.access_log.request_headers.block_list",
        "proxy.access_log.response_headers.allow_list", "proxy.access_log.response_headers.block_list",
    ]

    /// The flag: `--` and the key with `_` as `-`.
    public var flag: String { "--" + self.key.replacingAll("_", with: "-") }
}

/// The server's settings table: the single source of `--help`, the YAML keys and the flags.
public enum ServerOptions {
    static func address(_ key: String, _ defaultText: String, _ help: String, _ set: @escaping @Sendable (inout ServerSettings, Address) -> Void) -> ServerOption {
        ServerOption(key: key, defaultText: defaultText, help: help) { settings, text in
            guard let value = Address(parsing: text) else { return "expected host:port" }
            set(&settings, value)
            return nil
        }
    }

    /// `upstream.rebalance.*` (Piko's names; see `Rebalancer` and docs/clustering.md).
    static let rebalanceOptions: [ServerOption] = [
        ServerOption(
            key: "upstream.rebalance.threshold", defaultText: "0.2",
            help: "Move tunnels off a node that has held more than (1 + threshold) × the mean of the active members (alive, not suspect, not draining) for upstream.rebalance.hold; 0 turns rebalancing off (Piko's default). 0 to 100."
        ) { settings, text in
            guard let value = Double(text), value.isFinite, (0...100).contains(value) else { return "expected a number from 0 to 100" }
            settings.rebalance.threshold = value
            return nil
        },
        ServerOption(
            key: "upstream.rebalance.shed_rate", defaultText: "0.05",
            help: "Tunnels a node moves per second, as a fraction of its own (at least one a second; at most five seconds' worth in progress; Piko's is a fraction of the mean). Above 0, at most 1."
        ) { settings, text in
            guard let value = Double(text), value.isFinite, value > 0, value <= 1 else { return "expected a number above 0 and at most 1" }
            settings.rebalance.shedRate = value
            return nil
        },
        ServerOption(key: "upstream.rebalance.min_conns", defaultText: "10", help: "A node holding fewer tunnels never moves any, and never moves below this many.") { settings, text in
            guard let value = Int(text), (0...1_000_000).contains(value) else { return "expected a whole number from 0 to 1000000" }
            settings.rebalance.minConns = value
            return nil
        },
        ServerOption(key: "upstream.rebalance.hold", defaultText: "10s", help: "How long a node must stay over the threshold, with the same active members, before it moves tunnels (a join, leave, death or partition starts it over). 0s to 1h.") { settings, text in
            guard let value = DurationText.parse(text), value >= .zero, value <= .seconds(3_600) else { return "expected a duration from 0s to 1h" }
            settings.rebalance.hold = value
            return nil
        },
        ServerOption(key: "upstream.rebalance.cooldown", defaultText: "10s", help: "How long a node waits after a round of moves before it may start another. 0s to 1h.") { settings, text in
            guard let value = DurationText.parse(text), value >= .zero, value <= .seconds(3_600) else { return "expected a duration from 0s to 1h" }
            settings.rebalance.cooldown = value
            return nil
        },
    ]

    static func duration(_ key: String, _ defaultText: String, _ help: String, allowZero: Bool = false, _ set: @escaping @Sendable (inout ServerSettings, Duration) -> Void) -> ServerOption {
        ServerOption(key: key, defaultText: defaultText, help: help) { settings, text in
            guard let value = DurationText.parse(text), value >= .zero, allowZero || value > .zero else {
                return allowZero ? "expected a duration such as 30s" : "expected a positive duration"
            }
            set(&settings, value)
            return nil
        }
    }

    /// A port's four TLS settings (`<port>.tls.cert`, `.key`, `.client_cas`, `.min_version`).
    static func tls(_ port: String, _ files: WritableKeyPath<ServerSettings, PortTLSFiles> & Sendable, clientCAsHelp: String? = nil) -> [ServerOption] {
        [
            path("\(port).tls.cert", "The \(port) port's certificate chain (PEM, leaf first); with \(port).tls.key the port serves TLS only.") { $0[keyPath: files].certificatePath = $1 },
            path("\(port).tls.key", "The private key of \(port).tls.cert (PEM).") { $0[keyPath: files].keyPath = $1 },
            path("\(port).tls.client_cas", clientCAsHelp ?? "CAs (PEM bundle) whose client certificates the \(port) port requires (mTLS); a client without one is refused in the handshake.") {
                $0[keyPath: files].clientCAsPath = $1
            },
            ServerOption(key: "\(port).tls.min_version", defaultText: "1.2", help: "The lowest TLS version the \(port) port accepts: 1.2 or 1.3.") { settings, text in
                guard let value = TLSMinimumVersion(rawValue: text) else { return "expected 1.2 or 1.3" }
                settings[keyPath: files].minimumVersion = value
                return nil
            },
        ]
    }

    /// A port's token settings (`<port>.auth.*`, Piko's names plus `ed25519_public_key` and
    /// `leeway`).
    static func auth(_ port: String, _ auth: WritableKeyPath<ServerSettings, PortAuthSettings> & Sendable, what: String) -> [ServerOption] {
        func text(_ name: String, _ help: String, _ set: @escaping @Sendable (inout PortAuthSettings, String) -> Void) -> ServerOption {
            ServerOption(key: "\(port).auth.\(name)", defaultText: "none", help: help) { settings, value in
                guard !value.isEmpty else { return "expected a value" }
                set(&settings[keyPath: auth], value)
                return nil
            }
        }
        return [
            text("hmac_secret_key", "A shared secret: \(what) need a token signed with it (HS256, HS384 or HS512); at least 32 bytes.") { $0.hmacSecretKey = $1 },
            text("rsa_public_key", "An RSA public key (PEM, at least 2048 bits): \(what) need a token it verifies (RS256/384/512, PS256/384/512).") { $0.rsaPublicKey = $1 },
            text("ecdsa_public_key", "An ECDSA public key (PEM, P-256 or P-384): \(what) need a token it verifies (ES256, ES384).") { $0.ecdsaPublicKey = $1 },
            text("ed25519_public_key", "An Ed25519 public key (PEM): \(what) need a token it verifies (EdDSA).") { $0.ed25519PublicKey = $1 },
            text("audience", "When set, a token's aud claim must name it.") { $0.audience = $1 },
            text("issuer", "When set, a token's iss claim must be it.") { $0.issuer = $1 },
            ServerOption(key: "\(port).auth.leeway", defaultText: "0s", help: "How far a token's exp and nbf may be missed, for clocks that disagree; at most 24h.") { settings, value in
                guard let leeway = DurationText.parse(value), leeway >= .zero, leeway <= TokenRules.maxLeeway else { return "expected a duration from 0s to 24h" }
                settings[keyPath: auth].leeway = leeway
                return nil
            },
            ServerOption(key: "\(port).auth.jwks.endpoint", defaultText: "none", help: "A JSON Web Key Set whose keys verify \(what)'s tokens: an https:// URL, or a file (file:///… or a path); not with another key. Fetched at start (the node stops if it cannot), again every jwks.cache_ttl and when a token names an unknown kid (at most every 10s).") { settings, value in
                guard let location = JWKSLocation(value) else { return "expected an https:// URL, a file:// URL or an absolute path (http:// is refused: keys fetched in plain text can be replaced on the way)" }
                settings[keyPath: auth].jwksEndpoint = location
                return nil
            },
            ServerOption(key: "\(port).auth.jwks.cache_ttl", defaultText: "1h", help: "How long a fetched key set is used before it is fetched again; from 1s to 24h.") { settings, value in
                guard let ttl = DurationText.parse(value), ttl >= .seconds(1), ttl <= .seconds(86_400) else { return "expected a duration from 1s to 24h" }
                settings[keyPath: auth].jwksCacheTTL = ttl
                return nil
            },
            ServerOption(key: "\(port).auth.jwks.timeout", defaultText: "10s", help: "How long one fetch of the key set may take; from 100ms to 60s.") { settings, value in
                guard let timeout = DurationText.parse(value), timeout >= .milliseconds(100), timeout <= .seconds(60) else { return "expected a duration from 100ms to 60s" }
                settings[keyPath: auth].jwksTimeout = timeout
                return nil
            },
            path("\(port).auth.jwks.root_cas", "CAs (PEM bundle) an https key set's server is checked against (default: the system's roots).") { $0[keyPath: auth].jwksRootCAs = $1 },
            ServerOption(key: "\(port).auth.disable_disconnect_on_expiry", defaultText: "false", help: port == "upstream"
                ? "Keep a tunnel open after its agent's token expires (by default it is closed then)."
                : "Piko's setting; only the upstream port's connections outlive a request, so it changes nothing here.") { settings, value in
                guard let flag = Bool(value) else { return "expected true or false" }
                settings[keyPath: auth].disableDisconnectOnExpiry = flag
                return nil
            },
        ]
    }

    /// True for text that can name a file: not empty, no NUL (whether it exists is found out
    /// when the file is read, and reported then).
    static func isFilePath(_ text: String) -> Bool {
        !text.isEmpty && !text.utf8.contains(0)
    }

    /// A file path (not empty; read when the node starts, so a missing file is reported then).
    static func path(_ key: String, _ help: String, _ set: @escaping @Sendable (inout ServerSettings, String) -> Void) -> ServerOption {
        ServerOption(key: key, defaultText: "none", help: help) { settings, text in
            guard Self.isFilePath(text) else { return "expected a file path" }
            set(&settings, text)
            return nil
        }
    }

    /// A duration of the membership settings, shown with the model's default.
    static func membershipDuration(_ key: String, _ help: String, _ path: WritableKeyPath<MembershipSettings, Duration> & Sendable) -> ServerOption {
        let defaultText = DurationText.format(MembershipSettings()[keyPath: path])
        return duration(key, defaultText, help) { $0.membership[keyPath: path] = $1 }
    }

    /// A positive integer of the membership settings, shown with the model's default.
    static func membershipCount(_ key: String, _ help: String, _ range: ClosedRange<Int>, _ path: WritableKeyPath<MembershipSettings, Int> & Sendable) -> ServerOption {
        ServerOption(key: key, defaultText: String(MembershipSettings()[keyPath: path]), help: help) { settings, text in
            guard let value = Int(text), range.contains(value) else { return "expected an integer from \(range.lowerBound) to \(range.upperBound)" }
            settings.membership[keyPath: path] = value
            return nil
        }
    }

    /// An allow or block list of header names for one side of the access log; defining both
    /// lists of one side is an error.
    static func headerList(_ side: String, allow: Bool, _ path: WritableKeyPath<ServerSettings, HeaderLogFilter> & Sendable) -> ServerOption {
        let key = "proxy.access_log.\(side)_headers.\(allow ? "allow_list" : "block_list")"
        let help = allow
            ? "Only these \(side) headers appear in access-log lines (comma-separated); the only way to log Authorization, Proxy-Authorization, Cookie, Set-Cookie, x-pico-authorization, x-piko-authorization or x-pico-forward-proof."
            : "These \(side) headers never appear in access-log lines (comma-separated); Authorization, Proxy-Authorization, Cookie, Set-Cookie, x-pico-authorization, x-piko-authorization and x-pico-forward-proof never do unless an allow list names them."
        return ServerOption(key: key, defaultText: "[]", help: help) { settings, text in
            let names = text.split(separator: ",").map { String($0).trimmingCharacters(in: " \t") }
            let other: [String]
            switch settings[keyPath: path] {
            case .allow(let set) where !allow: other = set.sorted()
            case .block(let set) where allow: other = set.sorted()
            default: other = []
            }
            guard let filter = HeaderLogFilter.make(allow: allow ? names : other, block: allow ? other : names) else {
                return "cannot define both allow list and block list"
            }
            settings[keyPath: path] = filter
            return nil
        }
    }

    /// A connection cap: a positive integer up to 1,048,576.
    static func connectionCap(_ key: String, _ defaultValue: Int, _ help: String, _ path: WritableKeyPath<ServerSettings, Int> & Sendable) -> ServerOption {
        ServerOption(key: key, defaultText: String(defaultValue), help: help) { settings, text in
            guard let value = Int(text), (1...1_048_576).contains(value) else { return "expected an integer from 1 to 1048576" }
            settings[keyPath: path] = value
            return nil
        }
    }

    /// Every option, in `--help` order.
    public static let all: [ServerOption] = [
        address("proxy.bind_addr", ":8000", "Where clients send requests.") { $0.proxyBind = $1 },
        address("proxy.advertise_addr", "derived", "The proxy address other nodes forward to.") { $0.proxyAdvertise = $1 },
        duration("proxy.timeout", "30s", "How long a request waits for its response head (504 after); 0 disables; not applied to upgrades.", allowZero: true) { $0.proxyTimeout = $1 },
        duration("proxy.http.read_header_timeout", "10s", "How long a started request head may take (408 after).") { $0.readHeaderTimeout = $1 },
        duration("proxy.http.read_timeout", "10s", "How long a request body may stop arriving (408 after); time paused by back-pressure does not count.") { $0.readTimeout = $1 },
        ServerOption(key: "proxy.http.max_header_bytes", defaultText: "65536", help: "The largest request head, request line included (431 above); 1024 to 16777216.") { settings, text in
            guard let value = Int(text), (1_024...16 * 1_024 * 1_024).contains(value) else { return "expected an integer from 1024 to 16777216" }
            settings.maxHeaderBytes = value
            return nil
        },
        duration("proxy.http.write_timeout", "10s", "How long an answer may wait with no byte taken by a client that stopped reading (then the connection closes).") { $0.writeTimeout = $1 },
        duration("proxy.http.idle_timeout", "5m", "How long a keep-alive connection may wait for its next request.") { $0.idleTimeout = $1 },
        connectionCap("proxy.http.max_connections", 10_000, "Client connections served at once; at the cap the longest-idle keep-alive connection is closed to make room, and without one a new client gets 503. Never above the descriptor limit less a reserve (a quarter of it, at least 64) for the other ports.", \.maxConnections),
        ServerOption(key: "proxy.forward_max_connections", defaultText: "512", help: "Connections from one event loop to one other node for forwarded requests; more get 503.") { settings, text in
            guard let value = Int(text), (1...65_536).contains(value) else { return "expected an integer from 1 to 65536" }
            settings.forwardMaxConnections = value
            return nil
        },
        duration("proxy.tcp.idle_timeout", "1h", "How long a TCP route connection (/_pico/v1/tcp/<endpoint>, pico forward tcp) may carry no byte either way before the holding node closes it (WebSocket close 4000 `idle timeout`); 0 never closes one.", allowZero: true) { $0.tcpIdleTimeout = $1 },
        duration("proxy.upstream_wait", "1s", "How long a request for an endpoint no node is known to hold waits for the cluster to learn one (an agent that just connected to another node) before 502; 0 answers at once.", allowZero: true) { $0.upstreamWait = $1 },
        ServerOption(key: "proxy.max_waiting_requests", defaultText: "1024", help: "Requests one event loop lets wait for a holder at once; more get 502 at once.") { settings, text in
            guard let value = Int(text), (0...1_000_000).contains(value) else { return "expected an integer from 0 to 1000000" }
            settings.maxWaitingRequests = value
            return nil
        },
        duration("proxy.forward_dial_timeout", "1s", "How long a forward to another node may take to connect, or leave its bytes unacknowledged, before it fails and another holder of the endpoint is tried.") { $0.forwardDialTimeout = $1 },
        ServerOption(key: "proxy.forward_answer_timeout", defaultText: "1s", help: "How long a forward may hear nothing from the node it went to before the answer starts. That node sends a heartbeat every third of it while its upstream works, so only a lost node stays silent this long: the forward then fails and a GET, HEAD or OPTIONS without a body goes to another holder. 0 turns this off; otherwise from 300ms (a node sends at most 10 heartbeats a second) to 30s.") { settings, text in
            guard let value = DurationText.parse(text), value == .zero || (.milliseconds(300) ... .seconds(30)).contains(value) else {
                return "expected 0 or a duration from 300ms to 30s"
            }
            settings.forwardAnswerTimeout = value
            return nil
        },
    ] + tls("proxy", \.proxyTLS) + auth("proxy", \.proxyAuth, what: "proxied requests") + [
        path("proxy.tls.client.root_cas", "CAs (PEM bundle) other nodes' certificates are checked against when this node forwards to their TLS proxy or admin ports (default: the system's roots).") { $0.forwardTLS.rootCAsPath = $1 },
        path("proxy.tls.client.cert", "The certificate (PEM) this node presents to other nodes' ports that require client certificates.") { $0.forwardTLS.certificatePath = $1 },
        path("proxy.tls.client.key", "The private key of proxy.tls.client.cert (PEM).") { $0.forwardTLS.keyPath = $1 },
        ServerOption(key: "proxy.tls.client.server_name", defaultText: "none", help: "The name other nodes' certificates are checked against (and sent as SNI) when forwarding, e.g. the headless service's DNS name; unset, a node's certificate must carry its advertised IP address.") { settings, text in
            guard TLSNames.isDNSName(text) else { return "expected a DNS name, got \(text)" }
            settings.forwardTLS.serverName = TLSNames.withoutTrailingDot(text)
            return nil
        },
        ServerOption(key: "proxy.access_log.disable", defaultText: "false", help: "Turns the per-request access log off.") { settings, text in
            guard let value = Bool(text) else { return "expected true or false" }
            settings.accessLogDisabled = value
            return nil
        },
        ServerOption(key: "proxy.access_log.level", defaultText: "info", help: "Level of access-log lines (5xx lines are at least warn).") { settings, text in
            guard let value = LogLevel(rawValue: text) else { return "unsupported level: \(text)" }
            settings.accessLogLevel = value
            return nil
        },
        headerList("request", allow: true, \.accessLogRequestHeaders),
        headerList("request", allow: false, \.accessLogRequestHeaders),
        headerList("response", allow: true, \.accessLogResponseHeaders),
        headerList("response", allow: false, \.accessLogResponseHeaders),
        address("upstream.bind_addr", ":8001", "Where agents open tunnels.") { $0.upstreamBind = $1 },
        address("upstream.advertise_addr", "derived", "The upstream address (informational).") { $0.upstreamAdvertise = $1 },
        connectionCap("upstream.max_connections", 20_000, "Agent connections (tunnels and handshakes) at once; more get 503. Never above the descriptor limit less a reserve (a quarter of it, at least 64).", \.upstreamMaxConnections),
        duration("upstream.keepalive_interval", "30s", "How often tunnels are pinged.") { $0.keepaliveInterval = $1 },
        duration("upstream.keepalive_timeout", "10s", "An unanswered ping this old closes the tunnel.") { $0.keepaliveTimeout = $1 },
        path("upstream.tenants_file", "A YAML file holding the list of upstream.tenants (each {id, auth, max_endpoints, max_tunnels}), read at start and not expanded: keep tenants' secrets in a Secret mounted here rather than in the config file. Not with upstream.tenants.") { $0.tenantsFile = $1 },
        ServerOption(key: "upstream.tenant_reservation", defaultText: "5m", help: "With upstream.tenants: how long an endpoint stays reserved for the tenant that held it after its last tunnel is gone (its node died or its agents stopped); other tenants' agents are refused meanwhile. 0s to 24h.") { settings, text in
            guard let value = DurationText.parse(text), value >= .zero, value <= .seconds(86_400) else { return "expected a duration from 0s to 24h" }
            settings.tenantReservation = value
            return nil
        },
    ] + Self.rebalanceOptions + tls("upstream", \.upstreamTLS) + auth("upstream", \.upstreamAuth, what: "agents opening tunnels") + [
        address("admin.bind_addr", ":8002", "Health, readiness, metrics and status.") { $0.adminBind = $1 },
        address("admin.advertise_addr", "derived", "The admin address other nodes use for ?forward=.") { $0.adminAdvertise = $1 },
        connectionCap("admin.max_connections", 256, "Admin connections at once; more get 503. Never above the descriptor limit less a reserve (a quarter of it, at least 64).", \.adminMaxConnections),
    ] + tls("admin", \.adminTLS, clientCAsHelp: "CAs (PEM bundle) whose client certificates the admin port asks for (mTLS): every route but /health and /ready then needs one (403 without), so Kubernetes probes, which carry none, keep working; a certificate from another CA is refused in the handshake.") + auth("admin", \.adminAuth, what: "admin routes other than /health and /ready") + [
        ServerOption(key: "tls.reload_interval", defaultText: "10s", help: "How often every TLS certificate, key and CA file is checked for new contents (a new file is used once two checks in a row see it; SIGHUP loads at once); 0 checks on SIGHUP only, otherwise at least 100ms.") { settings, text in
            guard let value = DurationText.parse(text), value == .zero || value >= .milliseconds(100) else { return "expected 0 or a duration of at least 100ms" }
            settings.tlsReloadInterval = value
            return nil
        },
        ServerOption(key: "cluster.join", defaultText: "[]", help: "Nodes to join: IPs, host:port or DNS names (every A/AAAA record; the gossip port when none is given), comma-separated.") { settings, text in
            settings.join = text.split(separator: ",").map { String($0).trimmingCharacters(in: " \t") }.filter { !$0.isEmpty }
            for entry in settings.join where SeedResolver.parse(entry, defaultPort: 8003) == nil { return "\(entry) is not a host, host:port or IP address" }
            return nil
        },
        membershipDuration("cluster.join_timeout", "How long to keep trying to join before giving up.", \.joinTimeout),
        ServerOption(key: "cluster.abort_if_join_fails", defaultText: "true", help: "Exit 1 when no configured node could be joined within join_timeout (else run alone and keep trying).") { settings, text in
            guard let value = Bool(text) else { return "expected true or false" }
            settings.membership.abortIfJoinFails = value
            return nil
        },
        address("cluster.gossip.bind_addr", ":8003", "Gossip: UDP datagrams and TCP state exchanges on one address.") { $0.gossipBind = $1 },
        address("cluster.gossip.advertise_addr", "derived", "The gossip address other nodes use.") { $0.gossipAdvertise = $1 },
        ServerOption(key: "cluster.gossip.secret_keys", defaultText: "none", help: "Gossip keys (Base64 of 32 bytes each, e.g. from openssl rand -base64 32), comma-separated: every datagram and state exchange is sealed with AES-256-GCM under the first and opened with any of them; gossip that does not authenticate is dropped unread. At most 4. Rotate by adding the new key second, then moving it first, then removing the old one, each step on every node before the next.") { settings, text in
            guard case .success(let keyring) = GossipKeyring.parse(text) else {
                if case .failure(let error) = GossipKeyring.parse(text) { return error.message }
                return "expected Base64 keys"
            }
            settings.gossipSecretKeys = keyring
            return nil
        },
        path("cluster.gossip.secret_keys_file", "A file of gossip keys, one per line (the first seals, all open; # comments): as cluster.gossip.secret_keys, but read again every tls.reload_interval and on SIGHUP, so keys rotate without a restart (a new file is used once two checks in a row see it).") { $0.gossipSecretKeysFile = $1 },
        ServerOption(key: "cluster.gossip.verify_incoming", defaultText: "true", help: "With gossip keys: refuse plain-text gossip. Set false on every node while turning encryption on across a running cluster (memberlist's GossipVerifyIncoming).") { settings, text in
            guard let value = Bool(text) else { return "expected true or false" }
            settings.gossipVerifyIncoming = value
            return nil
        },
        ServerOption(key: "cluster.gossip.verify_outgoing", defaultText: "true", help: "With gossip keys: seal what this node sends. Set false on every node in the first step of turning encryption on, so nodes without keys still hear it (memberlist's GossipVerifyOutgoing).") { settings, text in
            guard let value = Bool(text) else { return "expected true or false" }
            settings.gossipVerifyOutgoing = value
            return nil
        },
        ServerOption(key: "cluster.max_endpoints_per_member", defaultText: "65536", help: "Distinct endpoints one member may gossip: another member's further entries are ignored, and this node refuses a tunnel for one endpoint more (1 to 65536; the same on every node).") { settings, text in
            guard let value = Int(text), (1...EndpointTable.maxEntriesPerOwner).contains(value) else { return "expected a whole number from 1 to \(EndpointTable.maxEntriesPerOwner)" }
            settings.maxEndpointsPerMember = value
            return nil
        },
        connectionCap("cluster.gossip.max_state_exchanges", 64, "State-exchange connections from peers at once (those still sending their request included); more are closed at once.", \.maxStateExchanges),
        membershipDuration("cluster.gossip.interval", "Time between gossip rounds.", \.gossipInterval),
        membershipCount("cluster.gossip.max_packet_size", "Largest gossip datagram, in bytes.", 512...65_000, \.maxPacketSize),
        membershipCount("cluster.gossip.nodes", "Members sent to per gossip round.", 1...64, \.gossipNodes),
        membershipDuration("cluster.gossip.probe_interval", "Time between probes of one member.", \.probeInterval),
        membershipDuration("cluster.gossip.probe_timeout", "How long a direct probe waits for its ack.", \.probeTimeout),
        membershipDuration("cluster.gossip.indirect_probe_timeout", "How long a helper waits for the target's ack (below probe_interval - probe_timeout).", \.indirectProbeTimeout),
        membershipCount("cluster.gossip.indirect_checks", "Helpers asked when a direct probe fails.", 0...16, \.indirectChecks),
        membershipCount("cluster.gossip.suspicion_multiplier", "Lifeguard suspicion multiplier.", 1...64, \.suspicionMultiplier),
        membershipCount("cluster.gossip.suspicion_confirmations", "Other members' failed probes that bring a suspicion's timeout down to its smallest (Lifeguard's K).", 0...16, \.suspicionConfirmations),
        membershipCount("cluster.gossip.suspicion_max_timeout_multiplier", "Largest suspicion timeout, as a multiple of the smallest.", 1...64, \.suspicionMaxTimeoutMultiplier),
        membershipCount("cluster.gossip.awareness_max_multiplier", "Upper bound of Lifeguard's local health multiplier.", 1...64, \.awarenessMaxMultiplier),
        membershipCount("cluster.gossip.retransmit_multiplier", "Broadcast retransmits are this times log10(members + 1).", 1...64, \.retransmitMultiplier),
        membershipDuration("cluster.gossip.gossip_to_the_dead_time", "How long dead members still get gossip and stay listed.", \.gossipToTheDeadTime),
        membershipDuration("cluster.gossip.push_pull_interval", "Time between full-state exchanges with a random member.", \.pushPullInterval),
        membershipDuration("cluster.gossip.reconnect_interval", "Time between attempts to reach dead members and unjoined seeds.", \.reconnectInterval),
        membershipDuration("cluster.gossip.tombstone_ttl", "How long dead and left node IDs are remembered.", \.tombstoneTimeToLive),
        membershipDuration("cluster.gossip.seed_resolve_interval", "Time between re-resolutions of cluster.join names.", \.seedResolveInterval),
        membershipDuration("cluster.gossip.leave_timeout", "How long a leaving node waits for acknowledgements.", \.leaveTimeout),
        ServerOption(key: "cluster.node_id", defaultText: "generated", help: "This node's ID.") { settings, text in
            guard !text.isEmpty else { return "must not be empty" }
            settings.nodeID = text
            return nil
        },
        ServerOption(key: "cluster.node_id_prefix", defaultText: "\"\"", help: "Prefix of the generated node ID (e.g. ${POD_NAME}-).") { settings, text in
            settings.nodeIDPrefix = text
            return nil
        },
        ServerOption(key: "event_loops", defaultText: "one per processor", help: "Event-loop threads serving connections and tunnels (1 to 64).") { settings, text in
            guard let value = Int(text), (1...64).contains(value) else { return "expected an integer from 1 to 64" }
            settings.eventLoops = value
            return nil
        },
        duration("grace_period", "1m", "Budget of the whole graceful shutdown.") { $0.gracePeriod = $1 },
        ServerOption(key: "log.level", defaultText: "info", help: "debug, info, warn or error.") { settings, text in
            guard let value = LogLevel(rawValue: text) else { return "unsupported level: \(text)" }
            settings.logLevel = value
            return nil
        },
        ServerOption(key: "log.subsystems", defaultText: "[]", help: "Subsystems logged at every level, e.g. proxy.access,upstream (comma-separated).") { settings, text in
            settings.logSubsystems = text.split(separator: ",").map { String($0).trimmingCharacters(in: " \t") }.filter { !$0.isEmpty }
            return nil
        },
    ]

    /// Settings from defaults, then the YAML text (when given), then `flags` (`--key value` or
    /// `--key=value`), which win. `environment` expands `$VAR`, `${VAR}` and `${VAR:default}` in
    /// the file when `expandEnvironment` is set.
    public static func load(yaml: String?, file: String, expandEnvironment: Bool, environment: [String: String], flags: [(String, String)]) throws(ConfigError) -> ServerSettings {
        var settings = ServerSettings()
        if var text = yaml {
            if expandEnvironment { text = EnvironmentExpansion.expand(text, environment: environment) }
            let root: YAMLNode
            do { root = try YAMLReader.parse(text, file: file) } catch { throw ConfigError("\(error)") }
            var values: [(String, YAMLNode)] = []
            try Self.flatten(root, prefix: "", into: &values, file: file)
            for (key, node) in values {
                if key == "upstream.tenants" {
                    settings.tenants = try TenantSettings.parse(node, file: file)
                    continue
                }
                guard let option = Self.all.first(where: { $0.key == key }) else {
                    throw ConfigError("\(file):\(node.line): unknown key \(key)")
                }
                let text: String
                if let items = node.items {
                    guard ServerOption.listKeys.contains(key) else { throw ConfigError("\(file):\(node.line): \(key): expected one value, not a list") }
                    text = items.compactMap(\.scalarText).joined(separator: ",")
                } else {
                    text = node.scalarText ?? ""
                }
                if let problem = option.apply(&settings, text) { throw ConfigError("\(file):\(node.line): \(key): \(problem)") }
            }
        }
        for (flag, value) in flags {
            guard let option = Self.all.first(where: { $0.flag == flag }) else { throw ConfigError("unknown flag \(flag)") }
            if let problem = option.apply(&settings, value) { throw ConfigError("\(flag): \(problem)") }
        }
        // The model checks how the settings fit together (e.g. timeouts within intervals).
        let unbound = Address(host: "0.0.0.0", port: 1)
        let probe = settings.clusterConfiguration(gossipAddress: unbound, proxyAddress: unbound, adminAddress: unbound, randomSeed: 1)
        if let problem = probe.validationErrors().first { throw ConfigError(problem) }
        try settings.loadTenantsFile()
        try settings.validateTLS()
        try settings.validateAuth()
        try settings.validateGossipKeys()
        return settings
    }

    static func flatten(_ node: YAMLNode, prefix: String, into values: inout [(String, YAMLNode)], file: String) throws(ConfigError) {
        guard let pairs = node.pairs else {
            if node.isNull, prefix.isEmpty { return }
            guard !prefix.isEmpty else { throw ConfigError("\(file):\(node.line): expected a mapping at the top level") }
            values.append((prefix, node))
            return
        }
        for pair in pairs {
            guard let key = pair.key.scalarText else { throw ConfigError("\(file):\(pair.key.line): keys must be plain text") }
            let path = prefix.isEmpty ? key : "\(prefix).\(key)"
            if pair.value.pairs != nil {
                try Self.flatten(pair.value, prefix: path, into: &values, file: file)
            } else {
                values.append((path, pair.value))
            }
        }
    }
}

/// Piko's `--config.expand-env`: `$VAR` and `${VAR}` become the variable's value (empty when
/// unset); `${VAR:default}` uses `default` when the variable is unset or empty.
public enum EnvironmentExpansion {
    /// The expanded text.
    public static func expand(_ text: String, environment: [String: String]) -> String {
        var result = ""
        var characters = Array(text)[...]
        while let character = characters.popFirst() {
            guard character == "$", let next = characters.first else {
                result.append(character)
                continue
            }
            if next == "{", let close = characters.firstIndex(of: "}") {
                let inner = String(characters[characters.index(after: characters.startIndex)..<close])
                characters = characters[characters.index(after: close)...]
                let parts = inner.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
                let value = environment[String(parts[0])] ?? ""
                result += value.isEmpty && parts.count > 1 ? String(parts[1]) : value
            } else if next.isLetter || next == "_" {
                var name = ""
                while let c = characters.first, c.isLetter || c.isNumber || c == "_" {
                    name.append(c)
                    characters.removeFirst()
                }
                result += environment[name] ?? ""
            } else {
                result.append(character)
            }
        }
        return result
    }
}
