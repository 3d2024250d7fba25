import PicoModel

/// How a client of the cluster reaches a node: the agent dials the upstream port (`pico agent`),
/// `pico forward` the proxy port. The same `connect.*` keys and `--connect.*` flags set it for
/// both (`NodeConnectionOptions`).
public struct NodeConnection: Hashable, Sendable {
    /// Where the token comes from.
    public enum Token: Hashable, Sendable {
        /// `--connect.token`: this token, for the process's life.
        case value(String)
        /// `--connect.token-file`: the file's contents (whitespace trimmed), read again before
        /// every dial, so a token a sidecar renews is used from the next dial on.
        case file(String)
    }

    /// `--connect.url`: the node's (or its load balancer's) address.
    public var address: Address
    /// True for an `https://` or `wss://` URL: TLS to that port.
    public var usesTLS = false
    /// `--connect.tls.*`: the roots to trust and the client certificate, for TLS.
    public var tlsFiles = TLSClientSettings()
    /// The token sent as `Authorization: Bearer …` in every handshake (nil: none).
    public var token: Token?
    /// `--connect.timeout`: how long connecting and the WebSocket handshake may take.
    public var timeout: Duration = .seconds(30)

    /// A plain connection to `address`.
    public init(address: Address) {
        self.address = address
    }

    /// The TLS settings in force; nil for `http://` and `ws://`.
    public var tls: TLSClientSettings? { self.usesTLS ? self.tlsFiles : nil }

    /// The token for the next handshake (nil: none configured), or why there is none: a token
    /// file that cannot be read or does not hold a token. The file is read again each time.
    public func currentToken() -> Result<String?, ConfigError> {
        switch self.token {
        case nil: return .success(nil)
        case .value(let token)?: return .success(token)
        case .file(let path)?:
            do {
                let bytes = try SmallFile.read(path, limit: CompactToken.maxBytes + 1_024)
                let token = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: " \t\r\n")
                guard BearerCredentials.isSendable(token) else {
                    return .failure(ConfigError("connect.token_file \(path): expected one token of 1 to \(CompactToken.maxBytes) visible ASCII characters"))
                }
                return .success(token)
            } catch {
                return .failure(ConfigError("connect.token_file: \(error)"))
            }
        }
    }
}

/// The `connect` keys and `--connect.*` flags shared by `pico agent` and `pico forward`.
enum NodeConnectionOptions {
    /// The `--connect.*` flags both commands take (the agent adds `--connect.tenant-id`).
    static func flags(defaultURL: String, port: String) -> [AgentOptions.Flag] {
        [
            AgentOptions.Flag(name: "--connect.url", defaultText: defaultURL, help: "The node's \(port) URL: http://, ws://, https:// or wss:// (TLS)."),
            AgentOptions.Flag(name: "--connect.tls.root-cas", defaultText: "the system's roots", help: "CAs (PEM) that sign the node's certificate (https:// and wss:// only)."),
            AgentOptions.Flag(name: "--connect.tls.cert", defaultText: "none", help: "A client certificate chain (PEM) for a node that requires one (mTLS)."),
            AgentOptions.Flag(name: "--connect.tls.key", defaultText: "none", help: "The private key of --connect.tls.cert (PEM)."),
            AgentOptions.Flag(name: "--connect.token", defaultText: "none", help: "A token (JWT) for a node whose \(port) needs one."),
            AgentOptions.Flag(name: "--connect.token-file", defaultText: "none", help: "A file holding the token, read again before every dial (a renewed token is used from the next dial on)."),
        ]
    }

    /// Applies one `--connect.*` flag; false when `flag` is not one of them.
    static func apply(_ flag: String, _ value: String, to connection: inout NodeConnection) throws(ConfigError) -> Bool {
        switch flag {
        case "--connect.url":
            guard let target = AgentSettings.connectURL(value) else { throw ConfigError("\(flag): expected an http://, ws://, https:// or wss:// URL, got \(value)") }
            connection.address = target.address
            connection.usesTLS = target.tls
        case "--connect.tls.root-cas":
            connection.tlsFiles.rootCAsPath = try AgentOptions.path(value, flag)
        case "--connect.tls.cert":
            connection.tlsFiles.certificatePath = try AgentOptions.path(value, flag)
        case "--connect.tls.key":
            connection.tlsFiles.keyPath = try AgentOptions.path(value, flag)
        case "--connect.token":
            connection.token = .value(try AgentOptions.token(value, flag))
        case "--connect.token-file":
            connection.token = .file(try AgentOptions.path(value, flag))
        case "--connect.timeout":
            connection.timeout = try AgentOptions.duration(value, flag)
        default:
            return false
        }
        return true
    }

    /// Throws when both token flags are given; a token flag replaces the file's token.
    static func checkTokenFlags(_ flags: [(String, String)], _ connection: inout NodeConnection) throws(ConfigError) {
        let tokenFlags = flags.filter { $0.0 == "--connect.token" || $0.0 == "--connect.token-file" }.map(\.0)
        if Set(tokenFlags).count > 1 { throw ConfigError("--connect.token and --connect.token-file: give one of them") }
        if !tokenFlags.isEmpty { connection.token = nil }
    }

    /// Checks the TLS settings once files and flags are in.
    static func validate(_ connection: NodeConnection) throws(ConfigError) {
        let tls = connection.tlsFiles
        if !connection.usesTLS, tls != TLSClientSettings() {
            throw ConfigError("connect.tls needs an https:// or wss:// connect.url")
        }
        if (tls.certificatePath == nil) != (tls.keyPath == nil) {
            throw ConfigError("connect.tls.cert and connect.tls.key go together")
        }
    }

    /// Reads the `connect` mapping's shared keys (`url`, `tls`, `timeout`, `token`,
    /// `token_file`); the caller reads its own keys and calls `finish`.
    static func read(_ connect: inout YAMLFields, into connection: inout NodeConnection) throws(YAMLError) {
        if let url = try connect.string("url") {
            guard let target = AgentSettings.connectURL(url) else {
                throw connect.error("url", "expected an http://, ws://, https:// or wss:// URL, got \(url)", at: connect.node["url"])
            }
            connection.address = target.address
            connection.usesTLS = target.tls
        }
        if var files = try connect.mapping("tls") {
            connection.tlsFiles.rootCAsPath = try files.string("root_cas")
            connection.tlsFiles.certificatePath = try files.string("cert")
            connection.tlsFiles.keyPath = try files.string("key")
            try files.finish()
        }
        if let timeout = try AgentOptions.positive(&connect, "timeout") { connection.timeout = timeout }
        let token = try connect.string("token")
        let tokenFile = try connect.string("token_file")
        switch (token, tokenFile) {
        case (let token?, nil):
            guard BearerCredentials.isSendable(token) else {
                throw connect.error("token", "expected a token of 1 to \(CompactToken.maxBytes) visible ASCII characters", at: connect.node["token"])
            }
            connection.token = .value(token)
        case (nil, let path?):
            guard ServerOptions.isFilePath(path) else { throw connect.error("token_file", "expected a file path", at: connect.node["token_file"]) }
            connection.token = .file(path)
        case (_?, _?):
            throw connect.error("token_file", "token and token_file: give one of them", at: connect.node["token_file"])
        case (nil, nil):
            break
        }
    }
}
