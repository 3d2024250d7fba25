// ==== ---- Tenants: one tenant per endpoint, cluster-wide ------------------------------------------

extension ClusterNode {
    /// The claim that holds `endpoint` in this node's view: the oldest among our own entry and
    /// every live member's (see `EndpointClaim`); nil when nobody serves it.
    public func endpointHolder(_ endpoint: String) -> EndpointClaim? {
        EndpointClaim.holder(of: self.endpoints.owners(of: endpoint).compactMap { owner, _ -> EndpointClaim? in
            guard owner == self.me.uid || self.membership.isLive(owner) else { return nil }
            return self.endpoints.claim(of: owner, for: endpoint)
        })
    }

    /// The claim a tunnel of `tenant` for `endpoint` registers under, or nil when another tenant
    /// holds the endpoint: our own entry's claim when we serve it already; the holder's when the
    /// tenant holds it elsewhere (its hold continues); otherwise a new one from `wallMilliseconds`.
    func claimForNewTunnel(endpoint: String, tenant: String, wallMilliseconds: UInt64) -> EndpointClaim? {
        let holder = self.endpointHolder(endpoint)
        if let holder, holder.tenant != tenant { return nil }
        if let own = self.endpoints.claim(of: self.me.uid, for: endpoint) { return own }
        return holder ?? EndpointClaim(tenant: tenant, since: wallMilliseconds)
    }

    /// After remote entries or members changed: our tunnels for an endpoint that another
    /// tenant now holds (two tenants registered it at once, or on two sides of a partition,
    /// and theirs is older) are closed, so requests for it reach one tenant only.
    mutating func yieldLostEndpoints(into directives: inout [ClusterDirective]) {
        var endpoints: Set<String> = []
        var membershipChanged = false
        for directive in directives {
            switch directive {
            case .event(.endpointChanged(let endpoint, let owner, _)) where owner != self.me.uid:
                endpoints.insert(endpoint)
            case .event(.membership(.memberStatusChanged)), .event(.membership(.memberJoined)):
                membershipChanged = true
            default:
                break
            }
        }
        let ours = self.endpoints.localEntries.filter { membershipChanged || endpoints.contains($0.endpoint) }
        for entry in ours {
            guard let holder = self.endpointHolder(entry.endpoint), holder.tenant != entry.claim.tenant else { continue }
            let reason = "endpoint \(entry.endpoint) is held by another tenant (since \(holder.since))"
            for tunnel in self.upstreams.allTunnels where tunnel.endpoint == entry.endpoint {
                directives.append(.event(.tunnelRejected(tunnel.id, reason: reason)))
                directives.append(.closeTunnel(tunnel.id))
                self.removeTunnel(tunnel.id, into: &directives)
            }
        }
    }
}
