/// What one tenant's agents may hold on one node (`upstream.tenants[].max_endpoints` and
/// `max_tunnels`); nil: no bound beyond the node's own (`upstream.max_connections`,
/// `cluster.max_endpoints_per_member`). A tunnel beyond either is refused when it registers.
public struct TenantQuota: Hashable, Sendable {
    /// Distinct endpoints the tenant may serve through this node.
    public var maxEndpoints: Int?
    /// Tunnels the tenant may have on this node.
    public var maxTunnels: Int?

    public init(maxEndpoints: Int? = nil, maxTunnels: Int? = nil) {
        self.maxEndpoints = maxEndpoints
        self.maxTunnels = maxTunnels
    }

    /// Why a tunnel of `tenant` for `endpoint` may not register here, given the tenant's local
    /// entries (`endpoint -> tunnels`); nil when it may.
    public func refusal(tenant: String, endpoint: String, held: [(endpoint: String, count: UInt32)]) -> String? {
        let tunnels = held.reduce(0) { $0 + Int($1.count) }
        if let maxTunnels, tunnels >= maxTunnels {
            return "tenant \(tenant) has \(tunnels) tunnels on this node, its max_tunnels"
        }
        if let maxEndpoints, !held.contains(where: { $0.endpoint == endpoint }), held.count >= maxEndpoints {
            return "tenant \(tenant) serves \(held.count) endpoints on this node, its max_endpoints"
        }
        return nil
    }
}
