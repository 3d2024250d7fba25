import PicoModel

/// One of `upstream.tenants` (Piko's tenants, YAML only): agents that name this tenant in
/// `x-pico-tenant-id` (or `x-piko-tenant-id`) need a token its `auth` verifies. With tenants
/// configured, an agent without a known tenant gets 401 `unknown tenant` (`upstream.auth` is not
/// used then, as in Piko), and an endpoint one tenant holds cannot be registered by another
/// anywhere in the cluster.
public struct TenantSettings: Hashable, Sendable {
    /// Tenants a node accepts at most.
    public static let maxTenants = 1_024

    /// The tenant's ID (see `EndpointClaim.isValidTenant`).
    public var id: String
    /// Its agents' token settings (the keys of `upstream.auth`, a key set included).
    public var auth: PortAuthSettings
    /// `max_endpoints` and `max_tunnels`: what its agents may hold on one node.
    public var quota: TenantQuota

    public init(id: String, auth: PortAuthSettings, quota: TenantQuota = TenantQuota()) {
        self.id = id
        self.auth = auth
        self.quota = quota
    }

    /// The tenants of the YAML sequence `node` (`upstream.tenants`), each `{id, auth}`; a
    /// problem names the file, line and key, e.g. `pico.yaml:12: upstream.tenants[1].auth.issuer: …`.
    static func parse(_ node: YAMLNode, file: String) throws(ConfigError) -> [TenantSettings] {
        guard let items = node.items else {
            if node.isNull { return [] }
            throw ConfigError("\(file):\(node.line): upstream.tenants: expected a list of {id, auth}")
        }
        guard items.count <= Self.maxTenants else {
            throw ConfigError("\(file):\(node.line): upstream.tenants: \(items.count) tenants; at most \(Self.maxTenants)")
        }
        var tenants: [TenantSettings] = []
        for (index, item) in items.enumerated() {
            let name = "upstream.tenants[\(index)]"
            guard let pairs = item.pairs else { throw ConfigError("\(file):\(item.line): \(name): expected a mapping with id and auth") }
            var id: String?
            var quota = TenantQuota()
            var settings = ServerSettings()
            for pair in pairs {
                switch pair.key.scalarText {
                case "id":
                    guard let text = pair.value.scalarText, EndpointClaim.isValidTenant(text) else {
                        throw ConfigError("\(file):\(pair.value.line): \(name).id: expected \(EndpointClaim.tenantRule)")
                    }
                    id = text
                case "max_endpoints", "max_tunnels":
                    let key = pair.key.scalarText ?? ""
                    guard let text = pair.value.scalarText, let value = Int(text), (1...1_000_000).contains(value) else {
                        throw ConfigError("\(file):\(pair.value.line): \(name).\(key): expected a whole number from 1 to 1000000")
                    }
                    if key == "max_endpoints" { quota.maxEndpoints = value } else { quota.maxTunnels = value }
                case "auth":
                    guard pair.value.pairs != nil else {
                        throw ConfigError("\(file):\(pair.value.line): \(name).auth: expected a mapping of auth keys (hmac_secret_key, rsa_public_key, ecdsa_public_key, ed25519_public_key, jwks, ...)")
                    }
                    var values: [(String, YAMLNode)] = []
                    try ServerOptions.flatten(pair.value, prefix: "upstream.auth", into: &values, file: file)
                    for (key, value) in values {
                        let shown = "\(name).auth" + key.dropFirst("upstream.auth".count)
                        guard let option = ServerOptions.all.first(where: { $0.key == key }) else {
                            throw ConfigError("\(file):\(value.line): unknown key \(shown)")
                        }
                        guard value.items == nil, let text = value.scalarText else { throw ConfigError("\(file):\(value.line): \(shown): expected one value") }
                        if let problem = option.apply(&settings, text) { throw ConfigError("\(file):\(value.line): \(shown): \(problem)") }
                    }
                default:
                    throw ConfigError("\(file):\(pair.key.line): unknown key \(name).\(pair.key.scalarText ?? "?") (a tenant has id, auth, max_endpoints and max_tunnels)")
                }
            }
            guard let id else { throw ConfigError("\(file):\(item.line): \(name): missing tenant id") }
            guard !tenants.contains(where: { $0.id == id }) else { throw ConfigError("\(file):\(item.line): \(name).id: tenant \(id) is listed twice") }
            guard settings.upstreamAuth.isEnabled else {
                throw ConfigError("\(file):\(item.line): \(name): tenant auth disabled: give \(name).auth a key (hmac_secret_key, rsa_public_key, ecdsa_public_key or ed25519_public_key) or a key set (jwks.endpoint)")
            }
            // A key that does not load is named with the file and line of its tenant.
            do { _ = try settings.upstreamAuth.verifier(port: Self.label(index)) } catch { throw ConfigError("\(file):\(item.line): \(error)") }
            tenants.append(TenantSettings(id: id, auth: settings.upstreamAuth, quota: quota))
        }
        return tenants
    }

    /// Largest `upstream.tenants_file` read.
    static let maxFileBytes = 1 << 20

    /// The settings' prefix of tenant `index`, in errors, logs and key-set labels.
    static func label(_ index: Int) -> String { "upstream.tenants[\(index)]" }

    /// Checks the tenant's keys load (a key set is fetched when the node starts, not here); a
    /// key that does not load names the tenant.
    func validate(index: Int) throws(ConfigError) {
        _ = try self.auth.verifier(port: Self.label(index))
    }
}

extension ServerSettings {
    /// Reads `tenants` from `upstream.tenants_file` when it is set (a YAML list of tenants, taken
    /// verbatim: no `${VAR}` expansion); a problem names the file and line.
    mutating func loadTenantsFile() throws(ConfigError) {
        guard let path = self.tenantsFile else { return }
        guard self.tenants.isEmpty else { throw ConfigError("upstream.tenants and upstream.tenants_file: give one of them") }
        let bytes: [UInt8]
        do { bytes = try SmallFile.read(path, limit: TenantSettings.maxFileBytes) } catch { throw ConfigError("upstream.tenants_file: \(error)") }
        guard let text = String(validating: bytes, as: UTF8.self) else { throw ConfigError("upstream.tenants_file \(path): not UTF-8 text") }
        let root: YAMLNode
        do { root = try YAMLReader.parse(text, file: path) } catch { throw ConfigError("upstream.tenants_file: \(error)") }
        self.tenants = try TenantSettings.parse(root, file: path)
        guard !self.tenants.isEmpty else { throw ConfigError("upstream.tenants_file \(path): no tenants") }
    }
}
