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

    /// The flag: `--` and the key with `_` as `-`.
    public var flag: String { "--" + self.key.replacingAll("_", with: "-") }
}

/// The server's settings table: the single source of `--help`, the YAML keys and the flags.
public enum ServerOptions {
    static func duration(_ text: String, allowZero: Bool = true) -> Duration? {
        guard let value = DurationText.parse(text), value >= .zero, allowZero || value > .zero else { return nil }
        return value
    }

    static func address(_ text: String) -> HostPort? { HostPort(parsing: text) }

    /// Every option, in `--help` order.
    public static let all: [ServerOption] = [
        ServerOption(key: "proxy.bind_addr", defaultText: ":8000", help: "Where clients send requests.") { settings, text in
            guard let value = address(text) else { return "expected host:port" }
            settings.proxyBind = value
            return nil
        },
        ServerOption(key: "proxy.advertise_addr", defaultText: "derived", help: "The proxy address other nodes forward to.") { settings, text in
            guard let value = address(text) else { return "expected host:port" }
            settings.proxyAdvertise = value
            return nil
        },
        ServerOption(key: "proxy.timeout", defaultText: "30s", help: "How long a request waits for its response head (504 after); 0 disables; not applied to upgrades.") { settings, text in
            guard let value = duration(text) else { return "expected a duration such as 30s" }
            settings.proxyTimeout = value
            return nil
        },
        ServerOption(key: "proxy.http.read_header_timeout", defaultText: "10s", help: "How long a started request head may take (408 after).") { settings, text in
            guard let value = duration(text, allowZero: false) else { return "expected a positive duration" }
            settings.readHeaderTimeout = value
            return nil
        },
        ServerOption(key: "proxy.http.idle_timeout", defaultText: "5m", help: "How long a keep-alive connection may wait for its next request.") { settings, text in
            guard let value = duration(text, allowZero: false) else { return "expected a positive duration" }
            settings.idleTimeout = value
            return nil
        },
        ServerOption(key: "proxy.http.max_connections", defaultText: "10000", help: "Client connections served at once; more get 503.") { settings, text in
            guard let value = Int(text), value > 0 else { return "expected a positive integer" }
            settings.maxConnections = value
            return nil
        },
        ServerOption(key: "proxy.access_log.disable", defaultText: "false", help: "Turns the per-request access log off.") { settings, text in
            guard let value = Bool(text) else { return "expected true or false" }
            settings.accessLogDisabled = value
            return nil
        },
        ServerOption(key: "upstream.bind_addr", defaultText: ":8001", help: "Where agents open tunnels.") { settings, text in
            guard let value = address(text) else { return "expected host:port" }
            settings.upstreamBind = value
            return nil
        },
        ServerOption(key: "upstream.advertise_addr", defaultText: "derived", help: "The upstream address (informational).") { settings, text in
            guard let value = address(text) else { return "expected host:port" }
            settings.upstreamAdvertise = value
            return nil
        },
        ServerOption(key: "upstream.keepalive_interval", defaultText: "30s", help: "How often tunnels are pinged.") { settings, text in
            guard let value = duration(text, allowZero: false) else { return "expected a positive duration" }
            settings.keepaliveInterval = value
            return nil
        },
        ServerOption(key: "upstream.keepalive_timeout", defaultText: "10s", help: "An unanswered ping this old closes the tunnel.") { settings, text in
            guard let value = duration(text, allowZero: false) else { return "expected a positive duration" }
            settings.keepaliveTimeout = value
            return nil
        },
        ServerOption(key: "admin.bind_addr", defaultText: ":8002", help: "Health, readiness, metrics and status.") { settings, text in
            guard let value = address(text) else { return "expected host:port" }
            settings.adminBind = value
            return nil
        },
        ServerOption(key: "admin.advertise_addr", defaultText: "derived", help: "The admin address other nodes use for ?forward=.") { settings, text in
            guard let value = address(text) else { return "expected host:port" }
            settings.adminAdvertise = value
            return nil
        },
        ServerOption(key: "cluster.node_id", defaultText: "generated", help: "This node's ID.") { settings, text in
            guard !text.isEmpty else { return "must not be empty" }
            settings.nodeID = text
            return nil
        },
        ServerOption(key: "cluster.node_id_prefix", defaultText: "\"\"", help: "Prefix of the generated node ID (e.g. ${POD_NAME}-).") { settings, text in
            settings.nodeIDPrefix = text
            return nil
        },
        ServerOption(key: "grace_period", defaultText: "1m", help: "Budget of the whole graceful shutdown.") { settings, text in
            guard let value = duration(text, allowZero: false) else { return "expected a positive duration" }
            settings.gracePeriod = value
            return nil
        },
        ServerOption(key: "log.level", defaultText: "info", help: "debug, info, warn or error.") { settings, text in
            guard let value = LogLevel(rawValue: text) else { return "unsupported level: \(text)" }
            settings.logLevel = value
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
                guard let option = Self.all.first(where: { $0.key == key }) else {
                    throw ConfigError("\(file):\(node.line): unknown key \(key)")
                }
                let text: String
                if let items = node.items {
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
