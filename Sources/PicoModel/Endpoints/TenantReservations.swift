/// Endpoints kept for the tenant that held them after its last tunnel left this node's view (its
/// node died or left, a partition made it look dead, or its agents disconnected): until the
/// reservation ends, another tenant's agents cannot register the endpoint here, and requests for
/// it are not sent to another tenant's tunnels registered elsewhere meanwhile. So an attacker
/// cannot take an endpoint by waiting for its agents to restart, or by registering on the far
/// side of a partition; the holding tenant's agents take it back with their old seniority.
///
/// Callers may rely on: at most `maxReservations` are kept (the one ending first goes); an ended
/// reservation is never reported; reservations are looked up by endpoint, never iterated into
/// behaviour.
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

    private(set) var byEndpoint: [String: Reservation] = [:]

    public init() {}

    /// The number of reservations kept.
    public var count: Int { self.byEndpoint.count }

    /// The claim reserved for `endpoint`, as of the last `expire`.
    public func claim(for endpoint: String) -> EndpointClaim? {
        self.byEndpoint[endpoint]?.claim
    }

    /// `endpoint` lost its last live holder, which held `claim`: keep it for the claim's tenant
    /// until `until` (nothing for tunnels without a tenant).
    public mutating func reserve(_ endpoint: String, for claim: EndpointClaim, until: Instant) {
        guard !claim.tenant.isEmpty else { return }
        if self.byEndpoint[endpoint] == nil, self.byEndpoint.count >= Self.maxReservations,
           let first = self.byEndpoint.min(by: { ($0.value.until, $0.key) < ($1.value.until, $1.key) })?.key {
            self.byEndpoint[first] = nil
        }
        self.byEndpoint[endpoint] = Reservation(claim: claim, until: until)
    }

    /// The reserved tenant holds `endpoint` again: the reservation is done.
    public mutating func release(_ endpoint: String) {
        self.byEndpoint[endpoint] = nil
    }

    /// Drops reservations ended by `now`; returns their endpoints, sorted.
    public mutating func expire(now: Instant) -> [String] {
        let ended = self.byEndpoint.filter { $0.value.until <= now }.keys.sorted()
        for endpoint in ended { self.byEndpoint[endpoint] = nil }
        return ended
    }
}
