import PicoModel

/// The bodies of the admin status routes, in Piko's JSON shapes, from the node's model.
struct AdminRoutes {
    let node: PicoNode

    func metrics() -> String {
        let endpoints = Set(self.node.cluster.upstreams.allTunnels.map(\.endpoint)).count
        var statuses: [String: Int] = [:]
        for row in self.rows() { statuses[row.status, default: 0] += 1 }
        let socket = self.node.gossip?.figures ?? GossipSocket.Figures()
        return self.node.metricValues.exposition(registeredEndpoints: endpoints, openDescriptors: ProcessFigures.openDescriptors())
            + self.node.gossipMetrics.exposition(socket: socket, traffic: self.node.cluster.gossipTraffic, statuses: statuses)
            + self.node.listenerFigures.exposition(certificateExpiry: self.node.certificateExpiries)
            + Self.tenantExposition(self.tenantFigures())
            + RebalanceStatus(self.node.cluster, now: self.node.loop.now).exposition()
    }

    /// Every live member's tunnels as this node sees them, and this node's rebalancing state
    /// (`RebalanceStatus.json`).
    func clusterTunnels() -> String {
        RebalanceStatus(self.node.cluster, now: self.node.loop.now).json(localName: self.node.cluster.me.name)
    }

    /// `{"<endpoint>": <local listener count>, …}`, sorted by endpoint.
    func upstreamEndpoints() -> String {
        let counts = self.localCounts()
        return "{" + counts.map { "\(JSONText.quote($0.0)):\($0.1)" }.joined(separator: ",") + "}"
    }

    /// `{"<endpoint>": {"tenant", "reserved"}, …}`: every endpoint a tenant holds in this node's
    /// view of the cluster (the oldest claim, as routing uses it), through tunnels or a
    /// reservation (`reserved: true`: none of its tunnels is left), sorted by endpoint.
    func endpointTenants() -> String {
        let cluster = self.node.cluster
        let endpoints = Set(cluster.endpoints.endpoints).union(cluster.reservations.sorted.map(\.endpoint)).sorted()
        let held = endpoints.compactMap { endpoint -> String? in
            guard let holder = cluster.endpointHolder(endpoint), !holder.tenant.isEmpty else { return nil }
            let reserved = cluster.reservations.claim(for: endpoint) == holder
            return "\(JSONText.quote(endpoint)):{\"tenant\":\(JSONText.quote(holder.tenant)),\"reserved\":\(reserved)}"
        }
        return "{" + held.joined(separator: ",") + "}"
    }

    /// `{"id", "sealed", "keys": [fingerprint, …] (the sealing key first), "verify_incoming",
    /// "verify_outgoing"}`: the gossip keys this node holds now (`KeyFingerprint`s, never keys).
    func gossipKeys() -> String {
        let cluster = self.node.cluster
        let keys = cluster.security?.keyring.keys.map { JSONText.quote(KeyFingerprint.of($0)) } ?? []
        let incoming = cluster.security?.verifyIncoming ?? false
        let outgoing = cluster.security?.verifyOutgoing ?? false
        return "{\"id\":\(JSONText.quote(cluster.me.name)),\"sealed\":\(cluster.security != nil),\"keys\":[\(keys.joined(separator: ","))],\"verify_incoming\":\(incoming),\"verify_outgoing\":\(outgoing)}"
    }

    /// Per configured tenant: endpoints and tunnels on this node (`pico_upstreams_tenant_*`).
    func tenantFigures() -> [(tenant: String, endpoints: Int, tunnels: Int)] {
        var figures: [String: (endpoints: Int, tunnels: Int)] = [:]
        for entry in self.node.cluster.endpoints.localEntries where !entry.claim.tenant.isEmpty {
            figures[entry.claim.tenant, default: (0, 0)].endpoints += 1
            figures[entry.claim.tenant, default: (0, 0)].tunnels += Int(entry.count)
        }
        return self.node.settings.tenants.map(\.id).sorted().map { ($0, figures[$0]?.endpoints ?? 0, figures[$0]?.tunnels ?? 0) }
    }

    private func localCounts() -> [(String, Int)] {
        var counts: [String: Int] = [:]
        for tunnel in self.node.cluster.upstreams.allTunnels { counts[tunnel.endpoint, default: 0] += 1 }
        return counts.sorted { $0.key < $1.key }
    }

    /// The tenant families: one series per configured tenant, so the label set is bounded by the
    /// configuration (without tenants the families are announced with no series).
    static func tenantExposition(_ figures: [(tenant: String, endpoints: Int, tunnels: Int)]) -> String {
        var out = PrometheusText()
        out.family("pico_upstreams_tenant_endpoints", "gauge", "Endpoints each tenant holds through tunnels on this node.")
        for figure in figures { out.sample("pico_upstreams_tenant_endpoints", [("tenant", figure.tenant)], figure.endpoints) }
        out.family("pico_upstreams_tenant_tunnels", "gauge", "Tunnels each tenant has on this node.")
        for figure in figures { out.sample("pico_upstreams_tenant_tunnels", [("tenant", figure.tenant)], figure.tunnels) }
        return out.text
    }

    struct NodeRow {
        var id: String
        var status: String
        var incarnation: UInt64
        var gossipAddress: Address
        var proxyAddress: String
        var adminAddress: String
        var endpoints: [(String, Int)]
    }

    /// The local node first, then live members sorted by name.
    func rows() -> [NodeRow] {
        let cluster = self.node.cluster
        let me = cluster.me
        var rows = [NodeRow(id: me.name, status: Self.status(of: cluster.lifecycle.phase), incarnation: cluster.membership.incarnation, gossipAddress: me.gossipAddress,
                            proxyAddress: "\(me.proxyAddress)", adminAddress: "\(me.adminAddress)", endpoints: self.localCounts())]
        for member in cluster.membership.memberList.sorted(by: { $0.info.name < $1.info.name }) {
            let entries = cluster.endpoints.owners[member.info.uid]?.entries ?? [:]
            let counts = entries.filter { $0.value.count > 0 }.map { ($0.key, Int($0.value.count)) }.sorted { $0.0 < $1.0 }
            // A suspect, dead or left member shows that status even if it was draining before.
            let status = member.state.status != .alive ? "\(member.state.status)" : member.draining ? "draining" : "active"
            rows.append(NodeRow(id: member.info.name, status: status, incarnation: member.state.incarnation, gossipAddress: member.info.gossipAddress,
                                proxyAddress: "\(member.info.proxyAddress)", adminAddress: "\(member.info.adminAddress)", endpoints: counts))
        }
        return rows
    }

    static func status(of phase: Lifecycle.Phase) -> String {
        switch phase {
        case .draining: return "draining"
        case .left: return "left"
        case .ready: return "active"
        default: return "joining"
        }
    }

    /// `[{id, status, incarnation, proxy_addr, admin_addr, endpoints:<count>, upstreams:<sum>, last_heard}]`;
    /// `last_heard` is when this node last received a gossip datagram from it (null for itself
    /// and for members not heard from directly).
    func clusterNodes() -> String {
        "[" + self.rows().map { row in
            "{\"id\":\(JSONText.quote(row.id)),\"status\":\(JSONText.quote(row.status)),\"incarnation\":\(row.incarnation),\"proxy_addr\":\(JSONText.quote(row.proxyAddress)),\"admin_addr\":\(JSONText.quote(row.adminAddress)),\"endpoints\":\(row.endpoints.count),\"upstreams\":\(row.endpoints.reduce(0) { $0 + $1.1 }),\"last_heard\":\(self.lastHeard(row))}"
        }.joined(separator: ",") + "]"
    }

    private func lastHeard(_ row: NodeRow) -> String {
        guard row.id != self.node.cluster.me.name, let milliseconds = self.node.lastHeard[row.gossipAddress] else { return "null" }
        return JSONText.quote(Logger.timestamp(milliseconds: milliseconds))
    }

    /// `{id, status, proxy_addr, admin_addr, endpoints:{"<id>":count}}` for `id` (or `local`), nil when unknown.
    func clusterNode(_ id: String) -> String? {
        let rows = self.rows()
        guard let row = id == "local" ? rows.first : rows.first(where: { $0.id == id }) else { return nil }
        let endpoints = "{" + row.endpoints.map { "\(JSONText.quote($0.0)):\($0.1)" }.joined(separator: ",") + "}"
        return "{\"id\":\(JSONText.quote(row.id)),\"status\":\(JSONText.quote(row.status)),\"proxy_addr\":\(JSONText.quote(row.proxyAddress)),\"admin_addr\":\(JSONText.quote(row.adminAddress)),\"endpoints\":\(endpoints)}"
    }

    /// `[{id, addr, version, left, unreachable, expiry}]` sorted by id, the local node included.
    func gossipNodes() -> String {
        let cluster = self.node.cluster
        var rows: [(String, String, UInt64, Bool, Bool)] = [(cluster.me.name, "\(cluster.me.gossipAddress)", cluster.endpoints.localVersion, cluster.lifecycle.phase == .left, false)]
        for member in cluster.membership.memberList {
            let version = cluster.endpoints.owners[member.info.uid]?.knownVersion ?? 0
            rows.append((member.info.name, "\(member.info.gossipAddress)", version, member.state.status == .left, member.state.status == .suspect || member.state.status == .dead))
        }
        return "[" + rows.sorted { $0.0 < $1.0 }.map {
            "{\"id\":\(JSONText.quote($0.0)),\"addr\":\(JSONText.quote($0.1)),\"version\":\($0.2),\"left\":\($0.3),\"unreachable\":\($0.4),\"expiry\":\"0001-01-01T00:00:00Z\"}"
        }.joined(separator: ",") + "]"
    }
}
