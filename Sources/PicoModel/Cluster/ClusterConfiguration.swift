/// Everything a `ClusterNode` needs to start: who it is, where it listens, whom to join, and its
/// settings. Shells build it from the config file and flags.
public struct ClusterConfiguration: Hashable, Sendable {
    /// Prefix of the generated node name (Piko's `cluster.node_id_prefix`, e.g. `pico-0-`).
    public var nodeNamePrefix: String = ""
    /// An explicit node name (Piko's `cluster.node_id`); when set, the prefix is ignored.
    public var nodeName: String?
    /// Names or addresses to join (Piko's `cluster.join`); resolved by the shell on request.
    public var join: [String] = []
    /// Advertised gossip address (UDP datagrams and state-exchange streams).
    public var gossipAddress: Address
    /// Advertised proxy address (other nodes forward requests here).
    public var proxyAddress: Address
    /// Advertised admin address.
    public var adminAddress: Address
    /// Orders successive processes at one address; the runtime passes wall-clock milliseconds at
    /// boot, the simulator its virtual time. See `NodeInfo.epoch`.
    public var epoch: UInt64 = 0
    /// Seed of every random choice the node makes (identity, probe order, gossip targets, routing).
    public var randomSeed: UInt64
    /// Membership protocol settings.
    public var membership = MembershipSettings()
    /// Budget of the whole graceful shutdown (Piko's `grace_period`: 1 minute).
    public var gracePeriod: Duration = .seconds(60)
    /// How long a shutting-down node keeps serving and routing after it turns unready, before it
    /// may leave, so load balancers notice first (Kubernetes endpoint updates take seconds; this is
    /// the usual `preStop` sleep, built in). Piko has none and cuts upstreams at once.
    public var drainMinimum: Duration = .seconds(5)
    /// How long a draining tunnel is kept after its endpoint is first seen served by an active node
    /// elsewhere, so that every other node learns of the replacement (a few gossip rounds) before
    /// the old tunnel goes and their forwards to us would find nothing.
    public var handoverSettleTime: Duration = .seconds(2)
    /// Bound on pending outgoing state exchanges.
    public var maxPendingExchanges = 16
    /// How long an outgoing state exchange (join, push/pull, reconnect) may take before the node
    /// treats it as failed, whatever the transport reports (memberlist's `TCPTimeout`: 10 s). A
    /// peer that crashed after accepting the connection never answers; without this bound a join
    /// waiting for that answer would wait for ever.
    public var stateExchangeTimeout: Duration = .seconds(10)
    /// How long an endpoint stays reserved for the tenant that held it after its last tunnel left
    /// this node's view (`upstream.tenant_reservation`; see `TenantReservations`). Longer than
    /// most partitions and agent restarts; an operator moving an endpoint to another tenant waits
    /// this long after the old tenant's agents stop.
    public var tenantReservation: Duration = .seconds(300)
    /// The node's tenants (`upstream.tenants`; looked up, never iterated). With any, every tunnel
    /// must name one, claims without a tenant (from members without tenants) never hold an
    /// endpoint here, and only these tenants' reservations are adopted from members.
    public var tenants: Set<String> = []
    /// The node has tenants.
    public var tenantsEnabled: Bool { !self.tenants.isEmpty }
    /// Distinct endpoints one member may gossip (`cluster.max_endpoints_per_member`): a remote
    /// member's further entries are ignored, and this node refuses a tunnel for one endpoint more.
    public var maxEndpointsPerMember = EndpointTable.maxEntriesPerOwner
    /// Per-node quotas of tenants, by tenant ID (`upstream.tenants[].max_endpoints`,
    /// `max_tunnels`; looked up, never iterated).
    public var tenantQuotas: [String: TenantQuota] = [:]

    /// When and how fast tunnels move off a node holding more than its share
    /// (`upstream.rebalance.*`; see `Rebalancer`).
    public var rebalance = Rebalancer.Settings()

    /// Creates a configuration with default settings.
    public init(gossipAddress: Address, proxyAddress: Address, adminAddress: Address, randomSeed: UInt64) {
        self.gossipAddress = gossipAddress
        self.proxyAddress = proxyAddress
        self.adminAddress = adminAddress
        self.randomSeed = randomSeed
    }

    /// Every problem with this configuration, each naming its key; empty when valid.
    public func validationErrors() -> [String] {
        var errors = self.membership.validationErrors().map { "cluster.gossip: \($0)" }
        if self.gracePeriod <= self.membership.leaveTimeout {
            errors.append("grace_period (\(self.gracePeriod)) must exceed the leave timeout (\(self.membership.leaveTimeout))")
        }
        if self.drainMinimum < .zero || self.drainMinimum >= self.gracePeriod - self.membership.leaveTimeout {
            errors.append("drain minimum (\(self.drainMinimum)) must be at least zero and below grace_period minus the leave timeout")
        }
        if self.handoverSettleTime < .zero || self.handoverSettleTime >= self.gracePeriod {
            errors.append("handover settle time (\(self.handoverSettleTime)) must be at least zero and below grace_period")
        }
        if let name = self.nodeName, name.isEmpty || name.utf8.count > GossipCodec.maxNameBytes {
            errors.append("cluster.node_id must be 1 to \(GossipCodec.maxNameBytes) bytes")
        }
        if self.nodeNamePrefix.utf8.count + NodeIdentity.suffixLength > GossipCodec.maxNameBytes {
            errors.append("cluster.node_id_prefix is too long (at most \(GossipCodec.maxNameBytes - NodeIdentity.suffixLength) bytes)")
        }
        for (key, address) in [("cluster.gossip.advertise_addr", self.gossipAddress), ("proxy.advertise_addr", self.proxyAddress), ("admin.advertise_addr", self.adminAddress)]
        where address.host.isEmpty || address.host.utf8.count > GossipCodec.maxHostBytes {
            errors.append("\(key) must have a host of 1 to \(GossipCodec.maxHostBytes) bytes")
        }
        if !(1...EndpointTable.maxEntriesPerOwner).contains(self.maxEndpointsPerMember) {
            errors.append("cluster.max_endpoints_per_member must be from 1 to \(EndpointTable.maxEntriesPerOwner), got \(self.maxEndpointsPerMember)")
        }
        if self.tenantReservation < .zero || self.tenantReservation > .seconds(86_400) {
            errors.append("upstream.tenant_reservation must be from 0s to 24h, got \(self.tenantReservation)")
        }
        errors += self.rebalance.validationErrors()
        if self.maxPendingExchanges < 1 { errors.append("maxPendingExchanges must be at least 1") }
        if self.stateExchangeTimeout <= .zero { errors.append("stateExchangeTimeout must be positive, got \(self.stateExchangeTimeout)") }
        return errors
    }
}
