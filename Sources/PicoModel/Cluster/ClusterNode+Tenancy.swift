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

    /// The oldest claim among our own entry and every live member's. A node with tenants
    /// (`tenantsEnabled`) never counts a claim without a tenant: a member without
    /// `upstream.tenants` (misconfigured, or not restarted yet) cannot take a tenant's endpoint.
    func liveHolder(_ endpoint: String) -> EndpointClaim? {
        EndpointClaim.holder(of: self.endpoints.owners(of: endpoint).compactMap { owner, _ -> EndpointClaim? in
            guard owner == self.me.uid || self.membership.isLive(owner), let claim = self.endpoints.claim(of: owner, for: endpoint),
                  !(self.configuration.tenantsEnabled && claim.tenant.isEmpty) else { return nil }
            return claim
        })
    }

    /// `live` (the endpoint's oldest live claim) when it holds the endpoint: it has a tenant and
    /// no older reservation outranks it. Only such a claim is kept for when its tunnels go.
    func holdingLiveClaim(_ endpoint: String, live: EndpointClaim?) -> EndpointClaim? {
        guard let live, !live.tenant.isEmpty, self.endpointHolder(endpoint) == live else { return nil }
        return live
    }

    /// The claim a tunnel of `tenant` for `endpoint` registers under, or nil when another tenant
    /// holds the endpoint: the holder's when the tenant holds it (here, elsewhere, or reserved:
    /// its hold continues, as old as its oldest claim); otherwise a new one from `wallMilliseconds`.
    func claimForNewTunnel(endpoint: String, tenant: String, wallMilliseconds: UInt64) -> EndpointClaim? {
        guard let holder = self.endpointHolder(endpoint) else { return EndpointClaim(tenant: tenant, since: wallMilliseconds) }
        return holder.tenant == tenant ? holder : nil
    }

    /// After this input's entry changes: an endpoint whose tenant lost its last live holder is
    /// reserved for it (so is one another tenant's younger claim took over in the same input);
    /// a reservation ends when its tenant holds the endpoint again, or at its time. Then our
    /// tunnels for an endpoint another tenant holds (two tenants registered it at once, or on two
    /// sides of a partition, and theirs is older) are closed, so requests reach one tenant only.
    /// Costs nothing for an input that changed no entry, while no reservation ends.
    mutating func settleTenancy(now: Instant, into directives: inout [ClusterDirective]) {
        let ended = self.reservations.expire(now: now)
        if !ended.isEmpty { self.tenancyChanged.formUnion(ended) }
        var changed = self.tenancyChanged
        for directive in directives {
            if case .event(.endpointChanged(let endpoint, _, _)) = directive { changed.insert(endpoint) }
        }
        guard !changed.isEmpty else { return }
        let endpoints = changed.sorted()
        for endpoint in endpoints {
            let live = self.liveHolder(endpoint)
            // The live holder that went (`old`) is kept for, unless the endpoint is reserved
            // already for an older claim: a younger claim never replaces an older reservation.
            if let old = self.tenantHolders[endpoint], self.configuration.tenantReservation > .zero,
               live.map({ $0.tenant != old.tenant && old.precedes($0) }) ?? true,
               self.reservations.claim(for: endpoint).map({ old.precedes($0) }) ?? true,
               self.reservations.reserve(endpoint, for: old, until: now + self.configuration.tenantReservation) {
                self.tenancyChanged.insert(endpoint)
            }
            if let live, let reserved = self.reservations.claim(for: endpoint), reserved.tenant == live.tenant {
                self.reservations.release(endpoint)
                self.tenancyChanged.insert(endpoint)
            }
            self.tenantHolders[endpoint] = self.holdingLiveClaim(endpoint, live: live)
        }
        for endpoint in endpoints {
            guard let ours = self.endpoints.claim(of: self.me.uid, for: endpoint), let holder = self.endpointHolder(endpoint),
                  holder.tenant != ours.tenant else { continue }
            let reason = "endpoint \(endpoint) is held by another tenant (since \(holder.since))"
            for tunnel in self.upstreams.allTunnels where tunnel.endpoint == endpoint {
                directives.append(.event(.tunnelRejected(tunnel.id, reason: reason)))
                directives.append(.closeTunnel(tunnel.id))
                self.removeTunnel(tunnel.id, into: &directives)
            }
            // The claim that gave way never held the endpoint: nothing is kept for it later.
            self.tenantHolders[endpoint] = self.holdingLiveClaim(endpoint, live: self.liveHolder(endpoint))
        }
    }

    /// Our reservations as a state exchange carries them, each with what is left of it: at most
    /// `StateExchange.maxReservations`, shared fairly between tenants (each tenant's first by
    /// endpoint, in turn), so no tenant's many reservations crowd out another's; by endpoint.
    func reservationRecords(now: Instant) -> [StateExchange.ReservationRecord] {
        var byTenant: [String: [StateExchange.ReservationRecord]] = [:]
        for (endpoint, reservation) in self.reservations.sorted where reservation.until > now {
            let left = UInt64(clamping: (reservation.until - now).nanosecondsClamped / 1_000_000)
            byTenant[reservation.claim.tenant, default: []].append(
                StateExchange.ReservationRecord(endpoint: endpoint, claim: reservation.claim, remainingMilliseconds: min(left, StateExchange.maxReservationMilliseconds)))
        }
        let queues = byTenant.sorted { $0.key < $1.key }.map(\.value)
        var picked: [StateExchange.ReservationRecord] = []
        var round = 0
        while picked.count < StateExchange.maxReservations, queues.contains(where: { $0.count > round }) {
            for queue in queues where queue.count > round && picked.count < StateExchange.maxReservations { picked.append(queue[round]) }
            round += 1
        }
        return picked.sorted { $0.endpoint < $1.endpoint }
    }

    /// A member's reservations (its state exchange): one whose tenant holds nothing of the
    /// endpoint here, whose claim is older than whoever does, and that we do not keep yet, is kept
    /// here too for what is left of it (at most our own `tenantReservation`). So a node that
    /// restarted, or was cut off while a tenant's agents were gone, keeps what the cluster keeps.
    /// Only tenants this node has are taken, only with at least `minimumAdoptedTime` left (an
    /// ending reservation does not bounce between nodes), and never in place of one of ours.
    mutating func adopt(_ records: [StateExchange.ReservationRecord], now: Instant) {
        guard self.configuration.tenantReservation > .zero else { return }
        for record in records where self.configuration.tenants.contains(record.claim.tenant) && self.reservations.claim(for: record.endpoint) == nil
            && record.remainingMilliseconds >= Self.minimumAdoptedMilliseconds {
            let live = self.liveHolder(record.endpoint)
            guard live.map({ $0.tenant != record.claim.tenant && record.claim.precedes($0) }) ?? true else { continue }
            let left = min(Duration.milliseconds(Int64(clamping: record.remainingMilliseconds)), self.configuration.tenantReservation)
            if self.reservations.reserve(record.endpoint, for: record.claim, until: now + left) { self.tenancyChanged.insert(record.endpoint) }
        }
    }

    /// The least time a member's reservation must have left to be adopted.
    static let minimumAdoptedMilliseconds: UInt64 = 1_000
}
