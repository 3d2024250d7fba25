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
        var found: String?
        for field in headers where Self.names.contains(where: { HTTPHeaders.sameName(field.name, $0) }) {
            let value = String(field.value[...].trimmingHTTPWhitespace())
            if let found, found != value { return .malformed("x-pico-tenant-id and x-piko-tenant-id name different tenants") }
            found = value
        }
        guard let found else { return .none }
        guard EndpointClaim.isValidTenant(found) else {
            return .malformed("tenant id must be 1 to \(EndpointClaim.maxTenantLength) letters, digits, '.', '_' or '-'")
        }
        return .tenant(found)
    }
}
