import PicoModel

/// `pico status …`: which admin route to ask, and how to print the answer.
///
/// ```
/// pico status cluster nodes [--status active|draining|suspect|dead|left]
/// pico status cluster node <id|local>
/// pico status cluster tunnels
/// pico status upstream endpoints
/// pico status upstream tenants
/// pico status gossip nodes
/// pico status gossip keys
/// pico status gossip node <id>
/// flags: --server.url http://localhost:8002  --forward <node-id>  -o table|json|yaml  --timeout 15s
///        --tls.root-cas FILE  --tls.cert FILE  --tls.key FILE   (with an https:// URL)
///        --server.token JWT | --server.token-file FILE          (an admin port with admin.auth)
/// ```
public struct StatusCommand: Sendable {
    /// The admin port asked.
    public var server = Address(host: "localhost", port: 8002)
    /// The route, with `?forward=` when given.
    public var path = ""
    /// How the answer is printed.
    public var output = StatusOutput.table
    /// Only nodes with this status (`cluster nodes`).
    public var statusFilter: String?
    /// Only this node (`gossip node <id>`).
    public var gossipNode: String?
    /// Bounds the connect and each read and write.
    public var timeout: Duration = .seconds(15)
    /// True for an `https://` server URL.
    public var usesTLS = false
    /// `--tls.*`: the roots the admin port's certificate is checked against (the system's by
    /// default) and a client certificate for an admin port with client CAs.
    public var tlsFiles = TLSClientSettings()
    /// `--server.token` or `--server.token-file`: sent as `Authorization: Bearer …`.
    public var token: AgentSettings.Token?
    /// What the TLS to the admin port runs with; nil for `http://`.
    public var tls: TLSClientSettings? { self.usesTLS ? self.tlsFiles : nil }
    var columns = ("FIELD", "VALUE")
    /// `gossip keys`: `path` lists the members, and each is then asked for its keys.
    public internal(set) var asksEveryMember = false

    /// The usage text.
    public static let usage = """
    Usage: pico status <command> [flags]

    Commands:
      cluster nodes [--status S]   Every node this node knows: id, status, addresses, endpoints.
      cluster node <id|local>      One node and its endpoints.
      cluster tunnels              Tunnels per live member, each against the mean of active
                                   members, and this node's rebalancing state.
      upstream endpoints           This node's endpoints and their tunnel counts.
      upstream tenants             Every endpoint a tenant holds (upstream.tenants).
      gossip nodes                 The membership as gossip sees it.
      gossip keys                  Every member's gossip key fingerprints, the sealing key first
                                   (to follow a key rotation); exits 1 if a member cannot be asked.
      gossip node <id>             One node as gossip sees it.

    Flags:
      --server.url string   The node's admin URL, http:// or https:// (default http://localhost:8002).
      --tls.root-cas file   CAs (PEM) the admin port's certificate is checked against (default: the system's).
      --tls.cert file       Client certificate (PEM) for an admin port with client CAs.
      --tls.key file        The private key of --tls.cert (PEM).
      --server.token jwt    A token for an admin port with admin.auth.
      --server.token-file file   A file holding that token.
      --forward string      Ask another node of the cluster, through this one.
      -o, --output string   table, json or yaml (default table).
      --timeout duration    Bounds connecting, and the whole answer (default 15s).

    """

    /// Reads the command line after `status`; throws a usage problem.
    public static func parse(_ arguments: [String]) throws(ConfigError) -> StatusCommand {
        var command = StatusCommand()
        var words: [String] = []
        var forward: String?
        var index = 0
        func value(_ flag: String, _ inline: String?) throws(ConfigError) -> String {
            if let inline { return inline }
            guard index < arguments.count else { throw ConfigError("flag \(flag) needs a value") }
            index += 1
            return arguments[index - 1]
        }
        while index < arguments.count {
            var argument = arguments[index]
            index += 1
            var inline: String?
            if argument.hasPrefix("-"), let equals = argument.firstIndex(of: "=") {
                inline = String(argument[argument.index(after: equals)...])
                argument = String(argument[..<equals])
            }
            switch argument {
            case "--server.url":
                let text = try value(argument, inline)
                if let target = AgentSettings.url(text) {
                    command.server = target
                    command.usesTLS = false
                } else if text.hasPrefix("https://"), let target = AgentSettings.authority(text.dropFirst("https://".count), defaultPort: 443) {
                    command.server = target
                    command.usesTLS = true
                } else {
                    throw ConfigError("--server.url: expected an http:// or https:// URL, got \(text)")
                }
            case "--tls.root-cas", "--tls.cert", "--tls.key":
                let text = try AgentOptions.path(try value(argument, inline), argument)
                switch argument {
                case "--tls.root-cas": command.tlsFiles.rootCAsPath = text
                case "--tls.cert": command.tlsFiles.certificatePath = text
                default: command.tlsFiles.keyPath = text
                }
            case "--server.token":
                guard command.token == nil else { throw ConfigError("--server.token and --server.token-file: give one of them") }
                command.token = .value(try AgentOptions.token(try value(argument, inline), argument))
            case "--server.token-file":
                guard command.token == nil else { throw ConfigError("--server.token and --server.token-file: give one of them") }
                command.token = .file(try AgentOptions.path(try value(argument, inline), argument))
            case "--forward":
                forward = try value(argument, inline)
            case "-o", "--output":
                let text = try value(argument, inline)
                guard let output = StatusOutput(rawValue: text) else { throw ConfigError("\(argument): expected table, json or yaml, got \(text)") }
                command.output = output
            case "--status":
                command.statusFilter = try value(argument, inline)
            case "--timeout":
                let text = try value(argument, inline)
                guard let duration = DurationText.parse(text), duration > .zero else { throw ConfigError("--timeout: expected a positive duration, got \(text)") }
                command.timeout = duration
            default:
                guard !argument.hasPrefix("-") else { throw ConfigError("unknown flag \(argument)") }
                words.append(argument)
            }
        }
        switch words.count == 3 ? [words[0], words[1], "<id>"] : words {
        case ["cluster", "nodes"]:
            command.path = "/status/cluster/nodes"
        case ["cluster", "tunnels"]:
            command.path = "/status/cluster/tunnels"
        case ["cluster", "node", "<id>"]:
            command.path = "/status/cluster/nodes/" + Self.escape(words[2])
        case ["upstream", "endpoints"]:
            command.path = "/status/upstream/endpoints"
            command.columns = ("ENDPOINT", "UPSTREAMS")
        case ["upstream", "tenants"]:
            command.path = "/status/upstream/tenants"
            command.columns = ("ENDPOINT", "HELD BY")
        case ["gossip", "keys"]:
            command.path = "/status/cluster/nodes"
            command.asksEveryMember = true
        case ["gossip", "nodes"]:
            command.path = "/status/gossip/nodes"
        case ["gossip", "node", "<id>"]:
            command.path = "/status/gossip/nodes"
            command.gossipNode = words[2]
        default:
            throw ConfigError(words.isEmpty ? "missing command" : "unknown command: \(words.joined(separator: " "))")
        }
        if command.statusFilter != nil, command.path != "/status/cluster/nodes" { throw ConfigError("--status applies to `cluster nodes` only") }
        let files = command.tlsFiles
        if files.rootCAsPath != nil || files.certificatePath != nil || files.keyPath != nil, !command.usesTLS {
            throw ConfigError("--tls.* flags need an https:// --server.url")
        }
        if (files.certificatePath == nil) != (files.keyPath == nil) { throw ConfigError("--tls.cert and --tls.key go together") }
        if forward != nil, command.asksEveryMember { throw ConfigError("--forward does not apply to `gossip keys`: it asks every member") }
        if let forward { command.path += "?forward=" + Self.escape(forward) }
        return command
    }

    /// The token to send (nil: none), read from its file when it comes from one.
    public func resolvedToken() throws(ConfigError) -> String? {
        switch self.token {
        case nil: return nil
        case .value(let token)?: return token
        case .file(let path)?:
            let bytes: [UInt8]
            do { bytes = try SmallFile.read(path, limit: CompactToken.maxBytes + 1_024) } catch { throw ConfigError("--server.token-file: \(error)") }
            let token = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: " \t\r\n")
            return try AgentOptions.token(token, "--server.token-file \(path)")
        }
    }

    /// Percent-encodes everything but RFC 3986's unreserved characters.
    static func escape(_ text: String) -> String {
        var result = ""
        for byte in text.utf8 {
            let unreserved = (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A) || "-._~".utf8.contains(byte)
            if unreserved {
                result.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                let hex = String(byte, radix: 16, uppercase: true)
                result += "%" + (hex.count == 1 ? "0" + hex : hex)
            }
        }
        return result
    }

    /// What to print for the node's answer, and the exit status (0, or 1 when the node refused
    /// or answered something unreadable).
    public func render(status: Int, body: String) -> (text: String, exitStatus: Int32) {
        let parsed = try? JSONValue.parse(body)
        guard status == 200 else {
            var message = body.count > 200 ? String(body.prefix(200)) + "…" : body
            if case .object(let pairs)? = parsed, let error = pairs.first(where: { $0.0 == "error" })?.1.scalarText { message = error }
            return ("\(self.path): \(status) \(message)\n", 1)
        }
        guard var value = parsed else { return ("\(self.path): the node answered something that is not JSON\n", 1) }
        if let wanted = self.statusFilter, case .array(let items) = value {
            value = .array(items.filter { Self.field("status", of: $0) == wanted })
        }
        if let id = self.gossipNode {
            guard case .array(let items) = value, let item = items.first(where: { Self.field("id", of: $0) == id }) else {
                return ("\(self.path): 404 node \(id) not found\n", 1)
            }
            value = item
        }
        return (self.output.render(value, columns: self.columns), 0)
    }

    static func field(_ key: String, of value: JSONValue) -> String? {
        guard case .object(let pairs) = value else { return nil }
        return pairs.first { $0.0 == key }?.1.scalarText
    }
}
