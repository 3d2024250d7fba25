/// Which node has local listeners for which endpoint: every node owns its own entries
/// (`endpoint -> listener count`), stamped with its own increasing version, and learns everyone
/// else's from gossiped deltas and push/pull snapshots (scuttlebutt semantics).
///
/// Callers may rely on: applying any delta or snapshot twice, out of order, or after its owner
/// was removed is harmless; a removed owner's entries are gone and never return; counts are never
/// negative; `owners(of:)` is sorted by owner UID.
public struct EndpointTable: Hashable, Sendable {
    /// One owner's entry for one endpoint.
    public struct Entry: Hashable, Sendable {
        /// Listener count; zero marks a removal not yet covered by `knownVersion`.
        public var count: UInt32
        /// The owner's version when it was written.
        public var version: UInt64
        /// The tenant of the owner's tunnels and the age of its hold.
        public var claim: EndpointClaim = .untenanted
    }

    /// What this table knows of one owner.
    public struct OwnerState: Hashable, Sendable {
        /// Every change of this owner up to this version is reflected here.
        public var knownVersion: UInt64 = 0
        /// Entries by endpoint, including zero-count removals newer than `knownVersion`.
        public var entries: [String: Entry] = [:]
    }

    /// A change in the routable view: `owner` now has `count` listeners for `endpoint`.
    public struct Change: Hashable, Sendable {
        /// The endpoint.
        public var endpoint: String
        /// The node that holds the listeners.
        public var owner: NodeUID
        /// The new count (zero: gone).
        public var count: UInt32
        /// The owner's claim now (a change of tenant at the same count is a change too).
        public var claim: EndpointClaim = .untenanted
    }

    /// Longest endpoint ID accepted, in UTF-8 bytes (longer ones are refused by the router with 400).
    public static let maxEndpointLength = 255
    /// The largest bound on distinct endpoints per owner (`cluster.max_endpoints_per_member`).
    public static let maxEntriesPerOwner = 65_536
    /// Bound on the encoded size of one gossiped delta, so it always fits a datagram.
    public static let maxDeltaBytes = 512
    /// The default bound on entries across every owner (about 80 MiB at the longest IDs).
    public static let defaultMaxEntries = 262_144

    /// Bound on entries across every owner: a new remote entry beyond it is ignored, as one beyond
    /// `maxEntriesPerOwner` is, so members that gossip endless endpoints (forged or broken) cannot
    /// exhaust memory. Our own entries always fit (the runtime bounds our tunnels).
    public let maxEntries: Int
    /// Bound on distinct endpoints of one remote owner: further ones are ignored (the node bounds
    /// its own to the same number when tunnels register).
    public let maxEntriesOfOneOwner: Int
    /// Entries across every owner (removal markers included).
    public private(set) var entryCount = 0 { didSet { self.checkedState.bump() } }

    /// The local owner (changes on rebirth).
    public private(set) var localOwner: NodeUID { didSet { self.checkedState.bump() } }
    /// The local owner's version counter.
    public private(set) var localVersion: UInt64 = 0
    /// Owners and their entries (the local owner included).
    public private(set) var owners: [NodeUID: OwnerState] = [:] { didSet { self.checkedState.bump() } }
    /// Removed owners whose deltas must be ignored from now on.
    private var removedOwners: Set<NodeUID> = [] { didSet { self.checkedState.bump() } }
    /// Owners by endpoint with a non-zero count (the routing index).
    private var index: [String: [NodeUID: UInt32]] = [:] { didSet { self.checkedState.bump() } }
    /// Writes to every property `checkInvariants` reads (see `invariantStamp`).
    private var checkedState = ChangeCount()

    /// Every owner's listener count per endpoint (counts above zero only), for comparing whole
    /// tables; unordered: callers must not iterate it into output.
    public var countsByEndpoint: [String: [NodeUID: UInt32]] { self.index }

    /// Creates an empty table owned by `localOwner`, holding at most `maxEntries` entries, and
    /// at most `maxEntriesOfOneOwner` (clamped to 1...`maxEntriesPerOwner`) of any one owner.
    public init(localOwner: NodeUID, maxEntries: Int = EndpointTable.defaultMaxEntries, maxEntriesOfOneOwner: Int = EndpointTable.maxEntriesPerOwner) {
        self.localOwner = localOwner
        self.maxEntries = maxEntries
        self.maxEntriesOfOneOwner = min(max(1, maxEntriesOfOneOwner), Self.maxEntriesPerOwner)
        self.owners[localOwner] = OwnerState()
    }

    /// Stores `state` as `owner`'s, keeping `entryCount` true.
    private mutating func store(_ state: OwnerState, for owner: NodeUID) {
        self.entryCount += state.entries.count - (self.owners[owner]?.entries.count ?? 0)
        self.owners[owner] = state
    }

    /// How many entries `owner` may hold: its share of the table-wide bound, and the per-owner one.
    private func entryLimit(of owner: NodeUID) -> Int {
        let others = self.entryCount - (self.owners[owner]?.entries.count ?? 0)
        return min(self.maxEntriesOfOneOwner, max(0, self.maxEntries - others))
    }

    // MARK: - Local entries

    /// Sets our own listener count for `endpoint`, under `claim`. Returns the delta to gossip
    /// (covering exactly the new version), or nil when neither changed.
    public mutating func setLocalCount(_ count: UInt32, for endpoint: String, claim: EndpointClaim = .untenanted) -> EndpointDelta? {
        let currentEntry = self.owners[self.localOwner]?.entries[endpoint]
        let current = currentEntry?.count ?? 0
        guard current != count || (count > 0 && currentEntry?.claim != claim) else { return nil }
        let base = self.localVersion
        self.localVersion += 1
        var state = self.owners[self.localOwner] ?? OwnerState()
        if count == 0 {
            state.entries[endpoint] = nil
        } else {
            state.entries[endpoint] = Entry(count: count, version: self.localVersion, claim: claim)
        }
        state.knownVersion = self.localVersion
        self.store(state, for: self.localOwner)
        self.setIndex(endpoint: endpoint, owner: self.localOwner, count: count)
        let written = count == 0 ? EndpointClaim.untenanted : claim
        return EndpointDelta(owner: self.localOwner, base: base, entries: [.init(endpoint: endpoint, count: count, version: self.localVersion, claim: written)])
    }

    /// Our own listener count for `endpoint`.
    public func localCount(for endpoint: String) -> UInt32 {
        self.owners[self.localOwner]?.entries[endpoint]?.count ?? 0
    }

    /// Our own live entries, sorted by endpoint.
    public var localEntries: [(endpoint: String, count: UInt32, claim: EndpointClaim)] {
        (self.owners[self.localOwner]?.entries ?? [:])
            .filter { $0.value.count > 0 }
            .sorted { $0.key < $1.key }
            .map { (endpoint: $0.key, count: $0.value.count, claim: $0.value.claim) }
    }

    /// After a rebirth: the old owner's entries are dropped and ours are re-published under the new
    /// UID from version 1. Returns the changes and the deltas to gossip.
    public mutating func changeLocalOwner(to newOwner: NodeUID) -> (changes: [Change], deltas: [EndpointDelta]) {
        let entries = self.localEntries
        let old = self.localOwner
        var changes = self.removeOwner(old)
        // Our old UID is tombstoned in membership, which already gates every update about it.
        self.removedOwners.remove(old)
        self.localOwner = newOwner
        self.localVersion = 0
        self.store(OwnerState(), for: newOwner)
        self.removedOwners.remove(newOwner)
        var deltas: [EndpointDelta] = []
        for entry in entries {
            if let delta = self.setLocalCount(entry.count, for: entry.endpoint, claim: entry.claim) { deltas.append(delta) }
            changes.append(Change(endpoint: entry.endpoint, owner: newOwner, count: entry.count, claim: entry.claim))
        }
        return (changes, deltas)
    }

    // MARK: - Remote updates

    /// Applies a gossiped delta of a live owner. Entries at or below the owner's `knownVersion`
    /// are already reflected and skipped; newer ones win per endpoint (last writer by version).
    /// `knownVersion` advances only when the delta starts at or below it (no gap).
    public mutating func apply(_ delta: EndpointDelta) -> [Change] {
        var changes: [Change] = []
        guard delta.owner != self.localOwner, !self.removedOwners.contains(delta.owner), delta.isWellFormed else { return changes }
        var state = self.owners[delta.owner] ?? OwnerState()
        let limit = self.entryLimit(of: delta.owner)
        for entry in delta.entries where entry.version > state.knownVersion {
            if let existing = state.entries[entry.endpoint], existing.version >= entry.version { continue }
            if state.entries[entry.endpoint] == nil, state.entries.count >= limit { continue }
            let previous = state.entries[entry.endpoint]
            let claim = entry.count == 0 ? EndpointClaim.untenanted : entry.claim
            state.entries[entry.endpoint] = Entry(count: entry.count, version: entry.version, claim: claim)
            if (previous?.count ?? 0) != entry.count || (entry.count > 0 && previous?.claim != claim) {
                changes.append(Change(endpoint: entry.endpoint, owner: delta.owner, count: entry.count, claim: claim))
            }
        }
        if delta.base <= state.knownVersion, delta.lastVersion > state.knownVersion {
            state.knownVersion = delta.lastVersion
        }
        state.entries = state.entries.filter { $0.value.count > 0 || $0.value.version > state.knownVersion }
        self.store(state, for: delta.owner)
        for change in changes { self.setIndex(endpoint: change.endpoint, owner: change.owner, count: change.count) }
        return changes
    }

    /// Applies a push/pull snapshot (complete as of `snapshot.version`) of a live owner: when it is
    /// newer than what we know, entries not in it that are not newer than it are removed.
    public mutating func apply(_ snapshot: StateExchange.EndpointSnapshot) -> [Change] {
        self.apply(snapshot, fromOwner: false)
    }

    /// Applies `snapshot` as its owner's own word (it came in the owner's reply to a state
    /// exchange this node opened to the owner's gossip address): it replaces what the table holds
    /// for the owner even when the table's known version is higher. Only the owner raises its
    /// version, so a higher one here came from a forged delta, and without this it would hide
    /// the owner's real entries for as long as its UID lives (`hostile-gossip.yaml`).
    /// `wentBack`: the table knew something newer than the snapshot (a higher version, or an
    /// entry written after it) and dropped it. That is a forgery undone, or a real change of the
    /// owner's that overtook its reply (sent after the reply was made, delivered first); the
    /// caller syncs with the owner once more, which brings such a change back.
    public mutating func applyFromOwner(_ snapshot: StateExchange.EndpointSnapshot) -> (changes: [Change], wentBack: Bool) {
        let before = self.owners[snapshot.owner]
        let changes = self.apply(snapshot, fromOwner: true)
        guard let before, self.owners[snapshot.owner]?.knownVersion == snapshot.version else { return (changes, false) }
        return (changes, before.knownVersion > snapshot.version || before.entries.values.contains { $0.version > snapshot.version })
    }

    private mutating func apply(_ snapshot: StateExchange.EndpointSnapshot, fromOwner: Bool) -> [Change] {
        var changes: [Change] = []
        guard snapshot.owner != self.localOwner, !self.removedOwners.contains(snapshot.owner) else { return changes }
        var state = self.owners[snapshot.owner] ?? OwnerState()
        guard snapshot.version > state.knownVersion || fromOwner else { return changes }
        var next: [String: Entry] = [:]
        let limit = self.entryLimit(of: snapshot.owner)
        // Entries newer than the snapshot were learned since it was taken; from the owner itself,
        // entries newer than its own version are forged.
        for (endpoint, entry) in state.entries where entry.version > snapshot.version && !fromOwner {
            next[endpoint] = entry
        }
        for entry in snapshot.entries where entry.count > 0 && entry.version <= snapshot.version && next[entry.endpoint] == nil {
            guard next.count < limit else { break }
            next[entry.endpoint] = Entry(count: entry.count, version: entry.version, claim: entry.claim)
        }
        for endpoint in Set(state.entries.keys).union(next.keys).sorted() {
            let before = state.entries[endpoint]
            let after = next[endpoint]
            let afterCount = after?.count ?? 0
            if (before?.count ?? 0) != afterCount || (afterCount > 0 && before?.claim != after?.claim) {
                changes.append(Change(endpoint: endpoint, owner: snapshot.owner, count: afterCount, claim: after?.claim ?? .untenanted))
            }
        }
        state.entries = next
        state.knownVersion = snapshot.version
        self.store(state, for: snapshot.owner)
        for change in changes { self.setIndex(endpoint: change.endpoint, owner: change.owner, count: change.count) }
        return changes
    }

    /// Forgets `owner` for good (it is dead or left): its entries disappear and later deltas or
    /// snapshots of it are ignored.
    public mutating func removeOwner(_ owner: NodeUID) -> [Change] {
        var changes: [Change] = []
        self.removedOwners.insert(owner)
        guard let state = self.owners.removeValue(forKey: owner) else { return changes }
        self.entryCount -= state.entries.count
        for (endpoint, entry) in state.entries.sorted(by: { $0.key < $1.key }) where entry.count > 0 {
            changes.append(Change(endpoint: endpoint, owner: owner, count: 0))
            self.setIndex(endpoint: endpoint, owner: owner, count: 0)
        }
        return changes
    }

    /// Lets the table forget that `owner` was removed (its tombstone expired): bounds memory.
    public mutating func forgetRemovedOwner(_ owner: NodeUID) {
        self.removedOwners.remove(owner)
    }

    // MARK: - Views

    /// Every version of `owner` up to this one is reflected here (for our own entries this is our
    /// version counter: `setLocalCount` keeps the two equal).
    public func knownVersion(of owner: NodeUID) -> UInt64 {
        self.owners[owner]?.knownVersion ?? 0
    }

    /// Owners with a non-zero count for `endpoint`, sorted by UID.
    public func owners(of endpoint: String) -> [(owner: NodeUID, count: UInt32)] {
        guard let owners = self.index[endpoint] else { return [] }
        return owners.sorted { $0.key < $1.key }.map { (owner: $0.key, count: $0.value) }
    }

    /// The claim of `owner`'s entry for `endpoint` (nil when it has none).
    public func claim(of owner: NodeUID, for endpoint: String) -> EndpointClaim? {
        guard let entry = self.owners[owner]?.entries[endpoint], entry.count > 0 else { return nil }
        return entry.claim
    }

    /// Every endpoint with at least one owner, sorted.
    public var endpoints: [String] {
        self.index.keys.sorted()
    }

    /// Snapshots of every owner for a push/pull message, sorted by owner.
    public func snapshots() -> [StateExchange.EndpointSnapshot] {
        self.owners.sorted { $0.key < $1.key }.map { owner, state in
            StateExchange.EndpointSnapshot(
                owner: owner,
                version: state.knownVersion,
                entries: state.entries
                    .filter { $0.value.count > 0 && $0.value.version <= state.knownVersion }
                    .sorted { ($0.value.version, $0.key) < ($1.value.version, $1.key) }
                    .map { EndpointDelta.Entry(endpoint: $0.key, count: $0.value.count, version: $0.value.version, claim: $0.value.claim) })
        }
    }

    /// Broken invariants, one line each (empty when consistent): the index matches the entries,
    /// no removed owner has entries, no owner's entry is at or below its known version with a zero
    /// count.
    public func checkInvariants() -> [String] {
        var problems: [String] = []
        var rebuilt: [String: [NodeUID: UInt32]] = [:]
        for (owner, state) in self.owners {
            if self.removedOwners.contains(owner) { problems.append("removed owner \(owner) still has entries") }
            for (endpoint, entry) in state.entries {
                if entry.count > 0 { rebuilt[endpoint, default: [:]][owner] = entry.count }
                if entry.count == 0, entry.version <= state.knownVersion {
                    problems.append("stale removal marker for \(endpoint) at \(owner)")
                }
            }
        }
        if rebuilt != self.index { problems.append("routing index does not match the entries") }
        let stored = self.owners.values.reduce(0) { $0 + $1.entries.count }
        if stored != self.entryCount { problems.append("entry count \(self.entryCount) differs from the \(stored) entries held") }
        let remote = stored - (self.owners[self.localOwner]?.entries.count ?? 0)
        if remote > self.maxEntries { problems.append("\(remote) remote entries exceed the bound of \(self.maxEntries)") }
        return problems.sorted()
    }

    /// Changes to everything `checkInvariants` reads: while it reads the same, a check finds the
    /// same. Meaningful only compared with an earlier reading of this table.
    public var invariantStamp: UInt64 { self.checkedState.value }

    /// True only when `checkInvariants()` would return nothing, without building a line or a
    /// dictionary. `stamp` is `invariantStamp` at an earlier check that found nothing (nil: none):
    /// while it reads the same, nothing is read. False says only "run the check". The index is
    /// compared in place: every entry above zero is in it with its count, it holds no more pairs
    /// than that, and no endpoint in it is empty, so it equals the one `checkInvariants` rebuilds.
    public func isConsistent(cleanAt stamp: UInt64?) -> Bool {
        guard stamp != self.invariantStamp else { return true }
        var stored = 0
        var positive = 0
        for (owner, state) in self.owners {
            guard !self.removedOwners.contains(owner) else { return false }
            stored += state.entries.count
            for (endpoint, entry) in state.entries {
                if entry.count > 0 {
                    guard self.index[endpoint]?[owner] == entry.count else { return false }
                    positive += 1
                } else if entry.version <= state.knownVersion {
                    return false
                }
            }
        }
        var indexed = 0
        for owners in self.index.values {
            guard !owners.isEmpty else { return false }
            indexed += owners.count
        }
        let remote = stored - (self.owners[self.localOwner]?.entries.count ?? 0)
        return indexed == positive && stored == self.entryCount && remote <= self.maxEntries
    }

    private mutating func setIndex(endpoint: String, owner: NodeUID, count: UInt32) {
        if count == 0 {
            self.index[endpoint]?[owner] = nil
            if self.index[endpoint]?.isEmpty ?? false { self.index[endpoint] = nil }
        } else {
            self.index[endpoint, default: [:]][owner] = count
        }
    }
}
