// ==== ---- Routing changes for the data loops ---------------------------------------------------------

/// What the data loops' `LoopRouter`s were last told, so `ClusterNode` sends only differences.
struct RoutingPublication: Sendable {
    /// The loop each registered tunnel lives on (the shell says, in `.tunnelOpened`).
    var tunnelLoops: [TunnelID: Int] = [:]
    /// The remote holders last sent, per endpoint.
    var remoteHolders: [String: [RemoteUpstream]] = [:]
    /// The live members' proxy hosts last sent, sorted.
    var peerHosts: [String] = []
    /// The members last sent as unreachable.
    var unreachable: Set<NodeUID> = []
    /// The members last sent as heartbeating forwards.
    var heartbeating: Set<NodeUID> = []
    /// The holding tenants last sent, for endpoints a tenant holds.
    var tenants: [String: String] = [:]
}

extension ClusterNode {
    /// Works out the routing changes this input's directives imply and appends them as one
    /// `.routingChanged` directive (after everything else, so a shell that carries directives out
    /// in order tells its loops last, as before).
    mutating func appendRoutingChanges(to directives: inout [ClusterDirective]) {
        // Most inputs (a loop's accounting, a probe) change nothing routing reads: they return
        // here, before any set is built.
        if !directives.contains(where: Self.changesRouting), self.tenancyChanged.isEmpty, self.reachability.directContacts.isEmpty,
           self.reachability.unreachable == self.routing.unreachable, self.reachability.heartbeating == self.routing.heartbeating {
            return
        }
        var changes: [RoutingChange] = []
        var remoteChanged: Set<String> = []
        var claimsChanged: Set<String> = []
        var membershipChanged = false
        // The members a membership event was about (nil: every member, after our rebirth).
        var changedMembers: Set<NodeUID>? = []
        for directive in directives {
            switch directive {
            case .tellAgentToMove(let id):
                // The node marks a tunnel draining exactly when it asks its agent to move.
                changes.append(.tunnelDraining(id))
            case .event(.tunnelRegistered(let id, let endpoint)):
                let draining = self.upstreams.tunnel(id)?.isDraining ?? false
                changes.append(.tunnelAdded(id, endpoint: endpoint, loop: self.routing.tunnelLoops[id] ?? 0, draining: draining))
            case .event(.tunnelRemoved(let id, _)):
                self.routing.tunnelLoops[id] = nil
                changes.append(.tunnelRemoved(id))
            case .event(.endpointChanged(let endpoint, let owner, _)):
                claimsChanged.insert(endpoint)
                if owner != self.me.uid { remoteChanged.insert(endpoint) }
            case .event(.membership(let event)):
                switch event {
                case .memberJoined(let info):
                    membershipChanged = true
                    changedMembers?.insert(info.uid)
                case .memberStatusChanged(let uid, _, _, _), .memberDraining(let uid, _), .memberRemoved(let uid, _):
                    membershipChanged = true
                    changedMembers?.insert(uid)
                case .reborn:
                    membershipChanged = true
                    changedMembers = nil
                default: break
                }
            default:
                break
            }
        }
        // A reservation that began or ended changes which tenant's holders are routable.
        remoteChanged.formUnion(self.tenancyChanged)
        claimsChanged.formUnion(self.tenancyChanged)
        self.tenancyChanged.removeAll()
        if membershipChanged || !remoteChanged.isEmpty {
            // A member's state reaches only the endpoints it has entries for (its count and
            // state, and the holder among their owners); an entry that went in this input has
            // its own `endpointChanged`.
            if let changedMembers {
                for uid in changedMembers {
                    guard uid != self.me.uid, let entries = self.endpoints.owners[uid]?.entries else { continue }
                    remoteChanged.formUnion(entries.keys)
                }
                changes += self.remoteHolderChanges(endpoints: remoteChanged)
            } else {
                changes += self.remoteHolderChanges(endpoints: nil)
            }
        }
        changes += self.tenantChanges(endpoints: membershipChanged ? nil : claimsChanged)
        if membershipChanged {
            let hosts = self.membership.liveProxyHosts()
            if hosts != self.routing.peerHosts {
                self.routing.peerHosts = hosts
                changes.append(.peerProxyHosts(hosts))
            }
        }
        let unreachable = self.reachability.unreachable
        if unreachable != self.routing.unreachable {
            for uid in self.routing.unreachable.subtracting(unreachable).sorted() { changes.append(.unreachable(uid, false)) }
            for uid in unreachable.subtracting(self.routing.unreachable).sorted() { changes.append(.unreachable(uid, true)) }
            self.routing.unreachable = unreachable
        }
        let heartbeating = self.reachability.heartbeating
        if heartbeating != self.routing.heartbeating {
            for uid in self.routing.heartbeating.subtracting(heartbeating).sorted() { changes.append(.heartbeats(uid, false)) }
            for uid in heartbeating.subtracting(self.routing.heartbeating).sorted() { changes.append(.heartbeats(uid, true)) }
            self.routing.heartbeating = heartbeating
        }
        for uid in self.reachability.takeDirectContacts() { changes.append(.answeredDirectly(uid)) }
        if !changes.isEmpty { directives.append(.routingChanged(changes)) }
    }

    /// Whether `directive` is one `appendRoutingChanges` reads (the cases of its loop).
    private static func changesRouting(_ directive: ClusterDirective) -> Bool {
        switch directive {
        case .tellAgentToMove, .event(.tunnelRegistered), .event(.tunnelRemoved), .event(.endpointChanged): true
        case .event(.membership(let event)):
            switch event {
            case .memberJoined, .memberStatusChanged, .memberDraining, .memberRemoved, .reborn: true
            default: false
            }
        default: false
        }
    }

    /// Changes of holding tenants against what was sent, for `endpoints` (every endpoint when
    /// nil), in endpoint order.
    private mutating func tenantChanges(endpoints: Set<String>?) -> [RoutingChange] {
        // No tenant holds or keeps anything in view, and none was published: nothing to say (a
        // cluster without tenants pays nothing here, even after a membership change).
        guard !(self.tenantHolders.isEmpty && self.reservations.count == 0 && self.routing.tenants.isEmpty) else { return [] }
        let names = endpoints.map { Array($0).sorted() }
            ?? Array(Set(self.endpoints.endpoints).union(self.routing.tenants.keys)).sorted()
        var changes: [RoutingChange] = []
        for endpoint in names {
            let tenant = self.endpointHolder(endpoint).map(\.tenant).flatMap { $0.isEmpty ? nil : $0 }
            guard tenant != self.routing.tenants[endpoint] else { continue }
            self.routing.tenants[endpoint] = tenant
            changes.append(.endpointTenant(endpoint: endpoint, tenant: tenant))
        }
        return changes
    }

    /// Changes of remote holders against what was sent, for `endpoints` (every endpoint when nil,
    /// after a membership change), in endpoint order.
    private mutating func remoteHolderChanges(endpoints: Set<String>?) -> [RoutingChange] {
        let names = endpoints.map { Array($0).sorted() }
            ?? Array(Set(self.endpoints.endpoints).union(self.routing.remoteHolders.keys)).sorted()
        var changes: [RoutingChange] = []
        for endpoint in names {
            let holders = self.remoteUpstreams(for: endpoint)
            guard holders != (self.routing.remoteHolders[endpoint] ?? []) else { continue }
            self.routing.remoteHolders[endpoint] = holders.isEmpty ? nil : holders
            changes.append(.remoteHolders(endpoint: endpoint, holders))
        }
        return changes
    }
}
