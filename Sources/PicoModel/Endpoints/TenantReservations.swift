/// Endpoints kept for the tenant that held them after its last tunnel left this node's view (its
/// node died or left, a partition made it look dead, or its agents disconnected): until the
/// reservation ends, another tenant's agents cannot register the endpoint here, and requests for
/// it are not sent to another tenant's tunnels registered elsewhere meanwhile. So an attacker
/// cannot take an endpoint by waiting for its agents to restart, or by registering on the far
/// side of a partition; the holding tenant's agents take it back with their old seniority.
///
/// Callers may rely on: at most `maxReservations` are kept, and at most `maxPerTenant` of one
/// tenant; beyond either a new reservation is not made (one tenant churning endpoints never
/// evicts another's, nor its own); every operation costs O(log n) at most, and ending
/// reservations costs nothing until the first of them ends.
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
    /// End times, earliest first (a binary heap; an entry whose endpoint's reservation changed
    /// since is stale and skipped).
    private var ends = MinHeap<EndEntry>()

    struct EndEntry: Hashable, Sendable, Comparable {
        var until: Instant
        var endpoint: String
        static func < (lhs: EndEntry, rhs: EndEntry) -> Bool { (lhs.until, lhs.endpoint) < (rhs.until, rhs.endpoint) }
    }

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
    /// until `until` (nothing for tunnels without a tenant, or beyond the bounds). Returns
    /// whether it was kept.
    @discardableResult
    public mutating func reserve(_ endpoint: String, for claim: EndpointClaim, until: Instant) -> Bool {
        guard !claim.tenant.isEmpty else { return false }
        if let previous = self.byEndpoint[endpoint] {
            self.forget(endpoint, previous)
        } else if self.perTenant[claim.tenant, default: 0] >= Self.maxPerTenant || self.byEndpoint.count >= Self.maxReservations {
            return false
        }
        self.byEndpoint[endpoint] = Reservation(claim: claim, until: until)
        self.perTenant[claim.tenant, default: 0] += 1
        self.ends.push(EndEntry(until: until, endpoint: endpoint))
        // Stale heap entries are dropped once they outnumber the live ones.
        if self.ends.count > 2 * self.byEndpoint.count + 64 {
            self.ends = MinHeap(self.byEndpoint.map { EndEntry(until: $0.value.until, endpoint: $0.key) })
        }
        return true
    }

    /// The reserved tenant holds `endpoint` again: the reservation is done.
    public mutating func release(_ endpoint: String) {
        guard let reservation = self.byEndpoint[endpoint] else { return }
        self.forget(endpoint, reservation)
    }

    /// Drops reservations ended by `now`; returns their endpoints, sorted.
    public mutating func expire(now: Instant) -> [String] {
        // Read in place: binding the first entry copied its endpoint, on every input of a node.
        guard let earliest = self.ends.first?.until, earliest <= now else { return [] }
        var ended: [String] = []
        while let first = self.ends.first, first.until <= now {
            self.ends.popFirst()
            guard let reservation = self.byEndpoint[first.endpoint], reservation.until == first.until else { continue }
            self.forget(first.endpoint, reservation)
            ended.append(first.endpoint)
        }
        return ended.sorted()
    }

    private mutating func forget(_ endpoint: String, _ reservation: Reservation) {
        self.byEndpoint[endpoint] = nil
        let left = self.perTenant[reservation.claim.tenant, default: 1] - 1
        self.perTenant[reservation.claim.tenant] = left > 0 ? left : nil
    }
}
