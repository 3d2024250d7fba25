// ==== ---- Sizes of the node's tables that input from the network can grow ------------------------

/// One table of a node, how many items it holds, and the bound its settings state for it.
public struct TableSize: Hashable, Sendable {
    /// The table, as `machine.table` (`membership.tombstones`).
    public var name: String
    /// Items it holds now.
    public var size: Int
    /// The most it may hold (nil: no bound is stated for it).
    public var bound: Int?

    /// Creates a row.
    public init(name: String, size: Int, bound: Int?) {
        self.name = name
        self.size = size
        self.bound = bound
    }

    /// True when the table holds more than its bound.
    public var exceedsBound: Bool { self.bound.map { self.size > $0 } ?? false }
}

extension ClusterNode {
    /// Every table that datagrams and state exchanges from the network can grow, with its size and
    /// stated bound, in a fixed order. A read-only view for the simulator's bounds checker and for
    /// status pages; O(owners), no sorting. `membership.members` holds at most `maxMembers` live
    /// and `maxMembers` departed members; `membership.probeOrder` is compacted at twice
    /// `maxMembers`.
    public var tableSizes: [TableSize] {
        let settings = self.configuration.membership
        let largestOwner = self.endpoints.owners.values.reduce(0) { max($0, $1.entries.count) }
        return [
            TableSize(name: "membership.members", size: self.membership.members.count, bound: 2 * settings.maxMembers),
            TableSize(name: "membership.liveMembers", size: self.membership.liveMemberCount, bound: settings.maxMembers),
            TableSize(name: "membership.tombstones", size: self.membership.tombstones.count, bound: settings.maxTombstones),
            TableSize(name: "membership.suspicions", size: self.membership.suspicions.count, bound: settings.maxMembers),
            TableSize(name: "membership.relays", size: self.membership.relays.count, bound: settings.maxRelays),
            TableSize(name: "membership.toldDeadAt", size: self.membership.toldDeadAt.count, bound: settings.maxRelays),
            TableSize(name: "membership.previousUIDs", size: self.membership.previousUIDs.count, bound: 16),
            TableSize(name: "membership.resolvedSeeds", size: self.membership.resolvedSeeds.count, bound: settings.maxMembers),
            TableSize(name: "membership.probeOrder", size: self.membership.probeOrder.count, bound: 2 * settings.maxMembers),
            TableSize(name: "cluster.pendingExchanges", size: self.pendingExchanges.count, bound: self.configuration.maxPendingExchanges),
            TableSize(name: "cluster.discoverySyncs", size: self.discoverySyncs.count, bound: self.configuration.maxPendingExchanges),
            TableSize(name: "cluster.endpointLag", size: self.endpointLag.count, bound: settings.maxMembers),
            TableSize(name: "cluster.broadcasts", size: self.broadcasts.count, bound: self.broadcasts.maxItems),
            TableSize(name: "endpoints.owners", size: self.endpoints.owners.count, bound: settings.maxMembers + 1),
            TableSize(name: "endpoints.entriesOfOneOwner", size: largestOwner, bound: self.endpoints.maxEntriesOfOneOwner),
        ]
    }
}
