/// Which tenant an agent names on the upstream port: `x-pico-tenant-id`, or Piko's
/// `x-piko-tenant-id`.
public enum TenantHeader {
    /// The fields read.
    public static let names = ["x-pico-tenant-id", "x-piko-tenant-id"]

    /// What the fields say.
    public enum Finding: Hashable, Sendable {
        /// Neither field.
        case none
        /// A tenant ID (not checked against the configured tenants).
        case tenant(String)
        /// The fields cannot be read as one tenant: given twice, disagreeing, or not a valid
        /// tenant ID (`message` says which; the agent gets 400).
        case malformed(String)
    }

    /// The tenant `headers` name. Both fields may be given only with the same value.
    public static func find(in headers: HTTPHeaders) -> Finding {
        var found: (name: String, value: String)?
        for field in headers {
            guard let name = Self.names.first(where: { HTTPHeaders.sameName(field.name, $0) }) else { continue }
            let value = String(field.value[...].trimmingHTTPWhitespace())
            if let found, found.value != value {
                return .malformed(found.name == name ? "\(name) given twice with different tenants" : "x-pico-tenant-id and x-piko-tenant-id name different tenants")
            }
            found = (name, value)
        }
        guard let found = found?.value else { return .none }
        guard EndpointClaim.isValidTenant(found) else {
            return .malformed("tenant id must be \(EndpointClaim.tenantRule)")
        }
        return .tenant(found)
    }
}
