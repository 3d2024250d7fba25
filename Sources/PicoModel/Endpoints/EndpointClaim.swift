/// Which tenant an owner's tunnels for one endpoint belong to, and since when the tenant has held
/// the endpoint (Unix milliseconds, carried over from the tenant's earlier holders when a new
/// node takes a tunnel of it, so a claim is as old as the tenant's unbroken hold on the endpoint).
///
/// An endpoint belongs to one tenant at a time, cluster-wide: `EndpointClaim.holder(of:)` picks
/// it from every live owner's claim, and every node that sees the same claims picks the same
/// tenant. The oldest claim wins, so a tenant that registers an endpoint while cut off from its
/// holders loses it once the cut heals. Tunnels without a tenant (`tenant` empty) always win: they
/// exist only on nodes without `upstream.tenants`, which cannot judge tenants; nodes with tenants
/// never count them (`ClusterConfiguration.tenantsEnabled`).
public struct EndpointClaim: Hashable, Sendable {
    /// Longest tenant ID accepted, in UTF-8 bytes.
    public static let maxTenantLength = 64
    /// What a tenant ID may be, as error messages say it.
    public static let tenantRule = "1 to 64 letters, digits, '.', '_' or '-'"

    /// The tenant ("": none).
    public var tenant: String
    /// When the tenant's hold on the endpoint began (Unix milliseconds; ignored without a tenant).
    public var since: UInt64

    /// The claim of tunnels without a tenant.
    public static let untenanted = EndpointClaim(tenant: "", since: 0)

    /// Creates a claim; without a tenant `since` is stored as zero.
    public init(tenant: String, since: UInt64) {
        self.tenant = tenant
        self.since = tenant.isEmpty ? 0 : since
    }

    /// Orders claims by age, then tenant ID: the first of a set is its holder.
    public func precedes(_ other: EndpointClaim) -> Bool {
        (self.since, self.tenant) < (other.since, other.tenant)
    }

    /// The claim that holds an endpoint among `claims` (nil when empty): the oldest, ties broken
    /// by tenant ID.
    public static func holder<S: Sequence>(of claims: S) -> EndpointClaim? where S.Element == EndpointClaim {
        var best: EndpointClaim?
        for claim in claims where best.map({ claim.precedes($0) }) ?? true { best = claim }
        return best
    }

    /// True for a tenant ID Pico accepts: 1 to `maxTenantLength` bytes of letters, digits, `.`,
    /// `_` and `-`.
    public static func isValidTenant(_ id: String) -> Bool {
        !id.isEmpty && id.utf8.count <= Self.maxTenantLength
            && id.utf8.allSatisfy { (0x30...0x39).contains($0) || (0x41...0x5A).contains($0) || (0x61...0x7A).contains($0) || $0 == 0x2E || $0 == 0x5F || $0 == 0x2D }
    }
}
