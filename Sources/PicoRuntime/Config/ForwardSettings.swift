import PicoModel

/// What `pico forward` runs with (see `ForwardOptions` for how it is loaded).
public struct ForwardSettings: Hashable, Sendable {
    /// One local port whose connections go to an endpoint.
    public struct Port: Hashable, Sendable {
        /// Where it listens.
        public var listen: Address
        /// The endpoint its connections reach.
        public var endpoint: String

        /// Creates a port.
        public init(listen: Address, endpoint: String) {
            self.listen = listen
            self.endpoint = endpoint
        }
    }

    /// `connect.*`: the node's (or load balancer's) proxy port, TLS, token and timeout.
    public var connection = NodeConnection(address: Address(host: "localhost", port: 8000))
    /// The ports.
    public var ports: [Port] = []
    /// `--log.level`.
    public var logLevel: LogLevel = .info

    /// Defaults.
    public init() {}

    /// Parses a listening address: a port (`3000` → `localhost:3000`, as Piko's forward does) or
    /// `host:port`; nil when malformed.
    public static func listenAddress(_ text: String) -> Address? {
        if let port = UInt16(text) { return Address(host: "localhost", port: port) }
        return Address(parsing: text)
    }
}

/// `pico forward`'s configuration: defaults, then the YAML file (`pico forward start
/// --config.path`, Piko's keys: `connect`, `ports`, `log`), then flags, which win. `pico forward
/// tcp <addr> <endpoint>` replaces the file's ports with its one port.
public enum ForwardOptions {
    /// A config file with every key and its meaning.
    public static let exampleFile = """
        connect:
          url: https://pico:8000    # the node's proxy port (or its load balancer): http, ws, https or wss; default http://localhost:8000
          timeout: 30s              # connect and WebSocket handshake, per forwarded connection (default 30s)
          token_file: /var/run/secrets/pico/token   # a token for a node with proxy.auth, read again before every dial (or token: <jwt>)
          tls:                      # with an https:// or wss:// url only
            root_cas: /etc/pico/ca.crt   # the CAs to trust (PEM); default the system's roots
            cert: /etc/pico/client.crt   # a client certificate chain (PEM), for a port that requires one
            key: /etc/pico/client.key    # its private key (PEM)
        ports:                      # at least one
          - addr: 5432              # where to listen: a port (on localhost) or host:port
            endpoint_id: my-db      # the endpoint each accepted connection reaches
        log:
          level: info               # debug, info, warn or error (default info)

        """

    /// The flags, in `--help` order.
    public static let flags: [AgentOptions.Flag] = NodeConnectionOptions.flags(defaultURL: "http://localhost:8000", port: "proxy port (proxy.auth)") + [
        AgentOptions.Flag(name: "--connect.timeout", defaultText: "30s", help: "How long connecting and the WebSocket handshake may take, per forwarded connection."),
        AgentOptions.Flag(name: "--log.level", defaultText: "info", help: "debug, info, warn or error."),
        AgentOptions.Flag(name: "--config.path", defaultText: "\"\"", help: "YAML config file (connect, ports, log)."),
        AgentOptions.Flag(name: "--config.expand-env", defaultText: "false", help: "Expand $VAR, ${VAR} and ${VAR:default} in the config file."),
    ]

    /// The settings. `port` is `forward tcp`'s positional port (addr, endpoint), which replaces
    /// the file's ports; without it the file must name at least one.
    public static func load(yaml: String?, file: String, expandEnvironment: Bool, environment: [String: String],
                            flags: [(String, String)], port: (addr: String, endpoint: String)?) throws(ConfigError) -> ForwardSettings {
        var settings = ForwardSettings()
        if var text = yaml {
            if expandEnvironment { text = EnvironmentExpansion.expand(text, environment: environment) }
            do {
                try Self.read(text, file: file, into: &settings)
            } catch {
                throw ConfigError("\(error)")
            }
        }
        try NodeConnectionOptions.checkTokenFlags(flags, &settings.connection)
        for (flag, value) in flags {
            if try NodeConnectionOptions.apply(flag, value, to: &settings.connection) { continue }
            switch flag {
            case "--log.level":
                settings.logLevel = try AgentOptions.logLevel(value, flag)
            default:
                throw ConfigError("unknown flag \(flag)")
            }
        }
        try NodeConnectionOptions.validate(settings.connection)
        if let port {
            guard let listen = ForwardSettings.listenAddress(port.addr) else { throw ConfigError("invalid addr \(port.addr): expected a port or host:port") }
            guard AgentOptions.isValidEndpoint(port.endpoint) else { throw ConfigError("invalid endpoint \(port.endpoint): \(AgentOptions.endpointRule)") }
            settings.ports = [ForwardSettings.Port(listen: listen, endpoint: port.endpoint)]
        }
        guard !settings.ports.isEmpty else {
            throw ConfigError(yaml == nil ? "no ports: give --config.path with ports, or use `pico forward tcp <addr> <endpoint>`" : "\(file): ports: at least one port is required")
        }
        return settings
    }

    static func read(_ text: String, file: String, into settings: inout ForwardSettings) throws(YAMLError) {
        var root = try YAMLFields(try YAMLReader.parse(text, file: file), path: "", file: file)
        if var connect = try root.mapping("connect") {
            try NodeConnectionOptions.read(&connect, into: &settings.connection)
            try connect.finish()
        }
        if let items = try root.sequence("ports") {
            settings.ports = []
            for (index, item) in items.enumerated() {
                var fields = try YAMLFields(item, path: "ports[\(index)]", file: file)
                let addr = try fields.requiredString("addr")
                guard let listen = ForwardSettings.listenAddress(addr) else {
                    throw fields.error("addr", "expected a port or host:port, got \(addr)", at: fields.node["addr"])
                }
                let endpoint = try fields.requiredString("endpoint_id")
                guard AgentOptions.isValidEndpoint(endpoint) else {
                    throw fields.error("endpoint_id", "invalid endpoint \(endpoint): \(AgentOptions.endpointRule)", at: fields.node["endpoint_id"])
                }
                try fields.finish()
                settings.ports.append(ForwardSettings.Port(listen: listen, endpoint: endpoint))
            }
        }
        if let level = try AgentOptions.readLogLevel(&root) { settings.logLevel = level }
        try root.finish()
    }
}
