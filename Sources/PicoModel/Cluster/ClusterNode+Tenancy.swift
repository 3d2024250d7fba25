// ==== ---- Tenants: one tenant per endpoint, cluster-wide ------------------------------------------

extension ClusterNode {
    /// The claim that holds `endpoint` in this node's view: the oldest among our own entry,
    /// every live member's, and a reservation (see `EndpointClaim`, `TenantReservations`); nil
    /// when nobody holds it.
    public func endpointHolder(_ endpoint: String) -> EndpointClaim? {
        let live = self.liveHolder(endpoint)
        guard let reserved = self.reservations.claim(for: endpoint) else { return live }
        return EndpointClaim.holder(of: [live, reserved].compactMap { $0 })
    }

    /// The oldest claim among our own entry and every live member's.
    func liveHolder(_ endpoint: String) -> EndpointClaim? {
        EndpointClaim.holder(of: self.endpoints.owners(of: endpoint).compactMap { owner, _ -> EndpointClaim? in
            guard owner == self.me.uid || self.membership.isLive(owner) else { return nil }
            return self.endpoints.claim(of: owner, for: endpoint)
        })
    }

    /// The claim a tunnel of `tenant` for `endpoint` registers under, or nil when another tenant
    /// holds the endpoint: our own entry's claim when we serve it already; the holder's when the
    /// tenant holds it elsewhere or has it reserved (its hold continues); otherwise a new one
    /// from `wallMilliseconds`.
    func claimForNewTunnel(endpoint: String, tenant: String, wallMilliseconds: UInt64) -> EndpointClaim? {
        let holder = self.endpointHolder(endpoint)
        if let holder, holder.tenant != tenant { return nil }
        if let own = self.endpoints.claim(of: self.me.uid, for: endpoint) { return own }
        return holder ?? EndpointClaim(tenant: tenant, since: wallMilliseconds)
    }

    /// After this input's entry changes: an endpoint whose tenant lost its last live holder is
    /// reserved for it (so is one another tenant's younger claim took over in the same input);
    /// a reservation ends when its tenant holds the endpoint again, or at its time. Then our
    /// tunnels for an endpoint another tenant holds (two tenants registered it at once, or on two
    /// sides of a partition, and theirs is older) are closed, so requests reach one tenant only.
    mutating func settleTenancy(now: Instant, into directives: inout [ClusterDirective]) {
        var changed = Set(self.reservations.expire(now: now))
        self.tenancyChanged.formUnion(changed)
        for directive in directives {
            if case .event(.endpointChanged(let endpoint, _, _)) = directive { changed.insert(endpoint) }
        }
        guard !changed.isEmpty else { return }
        for endpoint in changed.sorted() {
            let live = self.liveHolder(endpoint)
            if let old = self.tenantHolders[endpoint], self.configuration.tenantReservation > .zero,
               live.map({ $0.tenant != old.tenant && old.precedes($0) }) ?? true,
               self.reservations.claim(for: endpoint)?.tenant != old.tenant {
                self.reservations.reserve(endpoint, for: old, until: now + self.configuration.tenantReservation)
                self.tenancyChanged.insert(endpoint)
            }
            if let live, let reserved = self.reservations.claim(for: endpoint), reserved.tenant == live.tenant {
                self.reservations.release(endpoint)
                self.tenancyChanged.insert(endpoint)
            }
            self.tenantHolders[endpoint] = live.flatMap { $0.tenant.isEmpty ? nil : $0 }
        }
        for entry in self.endpoints.localEntries where changed.contains(entry.endpoint) {
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
