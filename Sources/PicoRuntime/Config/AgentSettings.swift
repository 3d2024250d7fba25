import PicoModel

/// What `pico agent` runs with (see `AgentOptions` for how it is loaded).
public struct AgentSettings: Hashable, Sendable {
    /// What a listener's local service speaks.
    public enum ListenerProtocol: String, Hashable, Sendable {
        /// HTTP: each stream carries one request (`pico agent http`).
        case http
        /// Raw TCP: each stream is one connection to the service (`pico agent tcp`).
        case tcp
    }

    /// One endpoint served by a local service.
    public struct Listener: Hashable, Sendable {
        /// The endpoint ID.
        public var endpoint: String
        /// The local service.
        public var backend: Address
        /// HTTP: per-request timeout to the response head (not applied to upgrades). TCP: how
        /// long connecting to the service may take.
        public var timeout: Duration
        /// What the service speaks.
        public var serviceProtocol: ListenerProtocol
        /// TCP only: every connection to the service starts with a PROXY protocol v2 header
        /// naming the client (`proxy_protocol: true`, `--proxy-protocol`).
        public var proxyProtocol: Bool

        /// Creates a listener.
        public init(endpoint: String, backend: Address, timeout: Duration = .seconds(10), serviceProtocol: ListenerProtocol = .http,
                    proxyProtocol: Bool = false) {
            self.endpoint = endpoint
            self.backend = backend
            self.timeout = timeout
            self.serviceProtocol = serviceProtocol
            self.proxyProtocol = proxyProtocol
        }
    }

    /// `connect.*`: the node's (or load balancer's) upstream port, TLS, token and timeout.
    public var connection = NodeConnection(address: Address(host: "localhost", port: 8001))
    /// `--connect.url`'s address.
    public var connect: Address {
        get { self.connection.address }
        set { self.connection.address = newValue }
    }
    /// What the agent's TLS to the node runs with; nil for `http://` and `ws://`.
    public var connectTLS: TLSClientSettings? { self.connection.tls }
    /// Where the agent's token comes from (`upstream.auth` on the node).
    public typealias Token = NodeConnection.Token
    /// The token sent as `Authorization: Bearer …` in every tunnel handshake (nil: none).
    public var connectToken: Token? {
        get { self.connection.token }
        set { self.connection.token = newValue }
    }
    /// `--connect.tenant-id`: sent as `x-pico-tenant-id` in every tunnel handshake (nil: none).
    public var connectTenant: String?
    /// `--connect.timeout`: how long connecting and the WebSocket handshake may take.
    public var connectTimeout: Duration { self.connection.timeout }
    /// The endpoints.
    public var listeners: [Listener] = []
    /// `--grace-period`: how long SIGTERM waits for in-flight requests.
    public var gracePeriod: Duration = .seconds(60)
    /// Yamux keep-alive.
    public var keepaliveInterval: Duration = .seconds(30)
    public var keepaliveTimeout: Duration = .seconds(10)
    /// `--event-loops`: event-loop threads, each with its own tunnel per endpoint; nil means one
    /// per processor, at most `defaultLoopLimit`.
    public var eventLoops: Int?
    /// The most loops (and so tunnels per endpoint) the default gives: a pod on a large host
    /// sees every host processor, and each tunnel is a connection the cluster tracks.
    public static let defaultLoopLimit = 4

    /// The loops to run on a machine with `processors` online.
    public func loopCount(processors: Int) -> Int {
        self.eventLoops ?? min(max(1, processors), Self.defaultLoopLimit)
    }
    /// `--log.level`.
    public var logLevel: LogLevel = .info

    /// Defaults.
    public init() {}

    /// Parses the local service address: a port (`3000` → `localhost:3000`), `host:port`, or an
    /// `http://` URL; nil when malformed.
    public static func backend(_ text: String) -> Address? {
        if let port = UInt16(text) { return Address(host: "localhost", port: port) }
        if text.hasPrefix("http://") { return self.url(text) }
        return Address(parsing: text)
    }

    /// Parses the upstream URL: `http://` or `ws://` (plain, port 80 by default), `https://` or
    /// `wss://` (TLS, port 443 by default); nil when malformed or another scheme.
    public static func connectURL(_ text: String) -> (address: Address, tls: Bool)? {
        for (scheme, tls, port) in [("http://", false, UInt16(80)), ("ws://", false, 80), ("https://", true, 443), ("wss://", true, 443)] where text.hasPrefix(scheme) {
            return self.authority(text.dropFirst(scheme.count), defaultPort: port).map { ($0, tls) }
        }
        return nil
    }

    /// Parses an `http://host[:port][/]` URL; nil when malformed or another scheme.
    public static func url(_ text: String) -> Address? {
        guard text.hasPrefix("http://") else { return nil }
        return self.authority(text.dropFirst("http://".count), defaultPort: 80)
    }

    /// `host[:port][/…]` after a URL's scheme.
    static func authority(_ afterScheme: Substring, defaultPort: UInt16) -> Address? {
        var rest = afterScheme
        if let slash = rest.firstIndex(of: "/") { rest = rest[..<slash] }
        guard !rest.isEmpty else { return nil }
        if let parsed = Address(parsing: String(rest)) { return parsed }
        guard !rest.contains(":") || rest.hasPrefix("[") else { return nil }
        // A bracketed address must close its bracket (`[::1` is no address).
        guard !rest.hasPrefix("[") || (rest.hasSuffix("]") && rest.count > 2) else { return nil }
        let host = rest.hasPrefix("[") ? String(rest.dropFirst().dropLast()) : String(rest)
        return Address(host: host, port: defaultPort)
    }
}
