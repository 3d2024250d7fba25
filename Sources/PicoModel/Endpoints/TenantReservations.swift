/// Endpoints kept for the tenant that held them after its last tunnel left this node's view (its
/// node died or left, a partition made it look dead, or its agents disconnected): until the
/// reservation ends, another tenant's agents cannot register the endpoint here, and requests for
/// it are not sent to another tenant's tunnels registered elsewhere meanwhile. So an attacker
/// cannot take an endpoint by waiting for its agents to restart, or by registering on the far
/// side of a partition; the holding tenant's agents take it back with their old seniority.
///
/// Callers may rely on: at most `maxReservations` are kept, and at most `maxPerTenant` of one
/// tenant (a tenant at its bound gives up its own reservation that ends first; when the whole
/// table is full a new reservation is not made): one tenant churning endpoints never evicts
/// another's. Finding the ended reservations costs nothing until the first of them ends.
public struct TenantReservations: Hashable, Sendable {
    /// One reservation.
    public struct Reservation: Hashable, Sendable {
        /// The claim the tenant held.
        public var claim: EndpointClaim
        /// When it ends.
        public var until: Instant
    }

    /// Bound on reservations kept.
    public static let maxReservations = 65_536
    /// Bound on reservations of one tenant.
    public static let maxPerTenant = 4_096

    private(set) var byEndpoint: [String: Reservation] = [:]
    private var perTenant: [String: Int] = [:]
    /// No reservation ends before this (nil: none is kept).
    private var earliestEnd: Instant?

    public init() {}

    /// The number of reservations kept.
    public var count: Int { self.byEndpoint.count }

    /// The claim reserved for `endpoint`, as of the last `expire`.
    public func claim(for endpoint: String) -> EndpointClaim? {
        self.byEndpoint[endpoint]?.claim
    }

    /// Every reservation, sorted by endpoint (for status pages).
    public var sorted: [(endpoint: String, reservation: Reservation)] {
        self.byEndpoint.sorted { $0.key < $1.key }.map { (endpoint: $0.key, reservation: $0.value) }
    }

    /// `endpoint` lost its last live holder, which held `claim`: keep it for the claim's tenant
    /// until `until` (nothing for tunnels without a tenant). Returns the endpoints whose
    /// reservations changed: this one when it was made, and one of the tenant's own that gave
    /// way to it.
    public mutating func reserve(_ endpoint: String, for claim: EndpointClaim, until: Instant) -> [String] {
        guard !claim.tenant.isEmpty else { return [] }
        var changed: [String] = []
        if let previous = self.byEndpoint[endpoint] {
            self.forget(endpoint, previous)
        } else if self.perTenant[claim.tenant, default: 0] >= Self.maxPerTenant {
            guard let own = self.byEndpoint.filter({ $0.value.claim.tenant == claim.tenant })
                .min(by: { ($0.value.until, $0.key) < ($1.value.until, $1.key) }) else { return [] }
            self.forget(own.key, own.value)
            changed.append(own.key)
        } else if self.byEndpoint.count >= Self.maxReservations {
            return []
        }
        self.byEndpoint[endpoint] = Reservation(claim: claim, until: until)
        self.perTenant[claim.tenant, default: 0] += 1
        self.earliestEnd = min(self.earliestEnd ?? until, until)
        return changed + [endpoint]
    }

    /// The reserved tenant holds `endpoint` again: the reservation is done.
    public mutating func release(_ endpoint: String) {
        guard let reservation = self.byEndpoint[endpoint] else { return }
        self.forget(endpoint, reservation)
    }

    /// Drops reservations ended by `now`; returns their endpoints, sorted.
    public mutating func expire(now: Instant) -> [String] {
        guard let earliest = self.earliestEnd, earliest <= now else { return [] }
        let ended = self.byEndpoint.filter { $0.value.until <= now }.sorted { $0.key < $1.key }
        for (endpoint, reservation) in ended { self.forget(endpoint, reservation) }
        self.earliestEnd = self.byEndpoint.values.map(\.until).min()
        return ended.map(\.key)
    }

    private mutating func forget(_ endpoint: String, _ reservation: Reservation) {
        self.byEndpoint[endpoint] = nil
        let left = self.perTenant[reservation.claim.tenant, default: 1] - 1
        self.perTenant[reservation.claim.tenant] = left > 0 ? left : nil
    }
}
