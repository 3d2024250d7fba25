import PicoModel

/// The agent's configuration: defaults, then the YAML file (`pico agent start --config.path`),
/// then flags, which win. `pico agent http <endpoint> <addr>` replaces the file's listeners
/// with its one listener, as Piko's does. `exampleFile` shows every key of the file.
public enum AgentOptions {
    /// One flag of the agent, for `--help`.
    public struct Flag: Sendable {
        public var name: String
        public var defaultText: String
        public var help: String
    }

    /// A config file with every key and its meaning (the configuration reference prints it; a
    /// test loads it).
    public static let exampleFile = """
        connect:
          url: https://pico:8001    # the node's upstream port (or its load balancer): http, ws, https or wss; default http://localhost:8001
          timeout: 30s              # connect and WebSocket handshake (default 30s)
          token_file: /var/run/secrets/pico/token   # a token for a node with upstream.auth, read again before every dial (or token: <jwt>)
          tenant_id: team-a                        # the agent's tenant, for a node with upstream.tenants
          tls:                      # with an https:// or wss:// url only
            root_cas: /etc/pico/ca.crt   # the CAs to trust (PEM); default the system's roots
            cert: /etc/pico/agent.crt    # a client certificate chain (PEM), for a port that requires one
            key: /etc/pico/agent.key     # its private key (PEM)
        listeners:                  # at least one
          - endpoint_id: my-app     # the endpoint clients name in x-pico-endpoint
            addr: 3000              # the local service: a port, host:port or http:// URL
            protocol: http          # http (default) or tcp
            timeout: 10s            # http: per request, to the response head; tcp: connecting to the service (default 10s)
          - endpoint_id: my-db      # a TCP service: clients reach it with `pico forward tcp` or the /_pico/v1/tcp/<endpoint> WebSocket
            addr: localhost:5432    # a port or host:port
            protocol: tcp
            proxy_protocol: true    # tcp only: each connection starts with a PROXY protocol v2 header naming the client (default false)
        log:
          level: info               # debug, info, warn or error (default info)
        grace_period: 1m            # how long SIGTERM waits for requests in flight (default 1m)
        event_loops: 2              # threads, each with its own tunnel per endpoint (default: one per processor, at most 4)

        """

    /// The flags, in `--help` order.
    public static let flags: [Flag] = NodeConnectionOptions.flags(defaultURL: "http://localhost:8001", port: "upstream port (upstream.auth)") + [
        Flag(name: "--connect.tenant-id", defaultText: "none", help: "The agent's tenant, sent as x-pico-tenant-id, for a node with upstream.tenants."),
        Flag(name: "--connect.timeout", defaultText: "30s", help: "How long connecting and the WebSocket handshake may take."),
        Flag(name: "--timeout", defaultText: "10s", help: "agent http: per-request timeout to the response head; agent tcp: how long connecting to the service may take."),
        Flag(name: "--proxy-protocol", defaultText: "false", help: "agent tcp: start each connection to the service with a PROXY protocol v2 header naming the client."),
        Flag(name: "--grace-period", defaultText: "1m", help: "How long SIGTERM waits for requests in flight."),
        Flag(name: "--event-loops", defaultText: "one per processor, at most 4", help: "Event-loop threads (1 to 64); each opens its own tunnel for every endpoint."),
        Flag(name: "--log.level", defaultText: "info", help: "debug, info, warn or error."),
        Flag(name: "--config.path", defaultText: "\"\"", help: "YAML config file (connect, listeners, log, grace_period)."),
        Flag(name: "--config.expand-env", defaultText: "false", help: "Expand $VAR, ${VAR} and ${VAR:default} in the config file."),
    ]

    /// The settings. `listener` is the `agent http` (or, with `listenerProtocol` `.tcp`, `agent
    /// tcp`) positional listener (endpoint, addr), which replaces the file's listeners; without
    /// it the file must name at least one.
    public static func load(yaml: String?, file: String, expandEnvironment: Bool, environment: [String: String],
                            flags: [(String, String)], listener: (endpoint: String, addr: String)?,
                            listenerProtocol: AgentSettings.ListenerProtocol = .http) throws(ConfigError) -> AgentSettings {
        var settings = AgentSettings()
        if var text = yaml {
            if expandEnvironment { text = EnvironmentExpansion.expand(text, environment: environment) }
            do {
                try Self.read(text, file: file, into: &settings)
            } catch {
                throw ConfigError("\(error)")
            }
        }
        var timeout: Duration?
        var proxyProtocol = false
        try NodeConnectionOptions.checkTokenFlags(flags, &settings.connection)
        for (flag, value) in flags {
            if try NodeConnectionOptions.apply(flag, value, to: &settings.connection) { continue }
            switch flag {
            case "--connect.tenant-id":
                guard EndpointClaim.isValidTenant(value) else { throw ConfigError("\(flag): expected \(EndpointClaim.tenantRule)") }
                settings.connectTenant = value
            case "--timeout":
                timeout = try Self.duration(value, flag)
            case "--proxy-protocol":
                guard let on = Bool(value) else { throw ConfigError("\(flag): expected true or false, got \(value)") }
                proxyProtocol = on
            case "--grace-period":
                settings.gracePeriod = try Self.duration(value, flag)
            case "--event-loops":
                settings.eventLoops = try Self.loopCount(value, flag)
            case "--log.level":
                settings.logLevel = try AgentOptions.logLevel(value, flag)
            default:
                throw ConfigError("unknown flag \(flag)")
            }
        }
        try NodeConnectionOptions.validate(settings.connection)
        if let listener {
            guard Self.isValidEndpoint(listener.endpoint) else {
                throw ConfigError("invalid endpoint \(listener.endpoint): \(Self.endpointRule)")
            }
            guard let backend = Self.backend(listener.addr, listenerProtocol) else {
                throw ConfigError("invalid addr \(listener.addr): expected \(Self.addressRule(listenerProtocol))")
            }
            guard !proxyProtocol || listenerProtocol == .tcp else { throw ConfigError("--proxy-protocol applies to `pico agent tcp`") }
            settings.listeners = [AgentSettings.Listener(endpoint: listener.endpoint, backend: backend, timeout: timeout ?? .seconds(10),
                                                         serviceProtocol: listenerProtocol, proxyProtocol: proxyProtocol)]
        } else if timeout != nil {
            throw ConfigError("--timeout applies to `pico agent http` and `pico agent tcp`; set listeners[].timeout in the config file")
        } else if proxyProtocol {
            throw ConfigError("--proxy-protocol applies to `pico agent tcp`; set listeners[].proxy_protocol in the config file")
        }
        guard !settings.listeners.isEmpty else {
            throw ConfigError(yaml == nil ? "no listeners: give --config.path with listeners, or use `pico agent http <endpoint> <addr>`" : "\(file): listeners: at least one listener is required")
        }
        return settings
    }

    static func path(_ text: String, _ flag: String) throws(ConfigError) -> String {
        guard ServerOptions.isFilePath(text) else { throw ConfigError("\(flag): expected a file path") }
        return text
    }

    static func token(_ text: String, _ key: String) throws(ConfigError) -> String {
        guard BearerCredentials.isSendable(text) else {
            throw ConfigError("\(key): expected a token of 1 to \(CompactToken.maxBytes) visible ASCII characters")
        }
        return text
    }

    static func loopCount(_ text: String, _ flag: String) throws(ConfigError) -> Int {
        guard let value = Int(text), (1...64).contains(value) else { throw ConfigError("\(flag): expected 1 to 64, got \(text)") }
        return value
    }

    static func duration(_ text: String, _ flag: String) throws(ConfigError) -> Duration {
        guard let value = DurationText.parse(text), value > .zero else { throw ConfigError("\(flag): expected a positive duration such as 10s, got \(text)") }
        return value
    }

    static func read(_ text: String, file: String, into settings: inout AgentSettings) throws(YAMLError) {
        var root = try YAMLFields(try YAMLReader.parse(text, file: file), path: "", file: file)
        if var connect = try root.mapping("connect") {
            try NodeConnectionOptions.read(&connect, into: &settings.connection)
            if let tenant = try connect.string("tenant_id") {
                guard EndpointClaim.isValidTenant(tenant) else {
                    throw connect.error("tenant_id", "expected \(EndpointClaim.tenantRule)", at: connect.node["tenant_id"])
                }
                settings.connectTenant = tenant
            }
            try connect.finish()
        }
        if let items = try root.sequence("listeners") {
            settings.listeners = []
            for (index, item) in items.enumerated() {
                var fields = try YAMLFields(item, path: "listeners[\(index)]", file: file)
                let endpoint = try fields.requiredString("endpoint_id")
                guard Self.isValidEndpoint(endpoint) else {
                    throw fields.error("endpoint_id", "invalid endpoint \(endpoint): \(Self.endpointRule)", at: fields.node["endpoint_id"])
                }
                let proto = try fields.string("protocol") ?? "http"
                guard let serviceProtocol = AgentSettings.ListenerProtocol(rawValue: proto) else {
                    throw fields.error("protocol", "expected http or tcp, got \(proto)", at: fields.node["protocol"])
                }
                let addr = try fields.requiredString("addr")
                guard let backend = Self.backend(addr, serviceProtocol) else {
                    throw fields.error("addr", "expected \(Self.addressRule(serviceProtocol)), got \(addr)", at: fields.node["addr"])
                }
                let timeout = try Self.positive(&fields, "timeout") ?? .seconds(10)
                let proxyProtocol = try fields.bool("proxy_protocol") ?? false
                guard !proxyProtocol || serviceProtocol == .tcp else {
                    throw fields.error("proxy_protocol", "applies to protocol: tcp listeners only", at: fields.node["proxy_protocol"])
                }
                try fields.finish()
                settings.listeners.append(AgentSettings.Listener(endpoint: endpoint, backend: backend, timeout: timeout, serviceProtocol: serviceProtocol,
                                                                 proxyProtocol: proxyProtocol))
            }
        }
        if let level = try AgentOptions.readLogLevel(&root) { settings.logLevel = level }
        if let grace = try Self.positive(&root, "grace_period") { settings.gracePeriod = grace }
        if let loops = try root.int("event_loops", in: 1...64) { settings.eventLoops = loops }
        try root.finish()
    }

    /// `--log.level`'s value (the agent's and the forward's).
    static func logLevel(_ value: String, _ flag: String) throws(ConfigError) -> LogLevel {
        guard let level = LogLevel(rawValue: value) else { throw ConfigError("\(flag): unsupported level: \(value)") }
        return level
    }

    /// The `log` mapping's `level` (the agent's and the forward's file), nil when not set.
    static func readLogLevel(_ root: inout YAMLFields) throws(YAMLError) -> LogLevel? {
        guard var log = try root.mapping("log") else { return nil }
        var value: LogLevel?
        if let level = try log.string("level") {
            guard let parsed = LogLevel(rawValue: level) else { throw log.error("level", "unsupported level: \(level)", at: log.node["level"]) }
            value = parsed
        }
        try log.finish()
        return value
    }

    /// The service address of a listener: a TCP service takes a port or host:port, not a URL.
    static func backend(_ addr: String, _ serviceProtocol: AgentSettings.ListenerProtocol) -> Address? {
        if serviceProtocol == .tcp, addr.contains("://") { return nil }
        return AgentSettings.backend(addr)
    }

    static func addressRule(_ serviceProtocol: AgentSettings.ListenerProtocol) -> String {
        serviceProtocol == .tcp ? "a port or host:port" : "a port, host:port or http:// URL"
    }

    /// What an endpoint ID must be, for messages.
    static let endpointRule = "it must be non-empty, at most 255 bytes, without '/', '?', '#', '%', spaces or control characters"

    /// An endpoint ID that travels as one path segment of the tunnel URL unchanged.
    static func isValidEndpoint(_ endpoint: String) -> Bool {
        !endpoint.isEmpty && endpoint.utf8.count <= 255
            && !endpoint.utf8.contains { $0 <= 0x20 || $0 == 0x7F || $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "#") || $0 == UInt8(ascii: "%") }
    }

    static func positive(_ fields: inout YAMLFields, _ key: String) throws(YAMLError) -> Duration? {
        guard let value = try fields.duration(key) else { return nil }
        guard value > .zero else { throw fields.error(key, "expected a positive duration", at: fields.node[key]) }
        return value
    }
}
