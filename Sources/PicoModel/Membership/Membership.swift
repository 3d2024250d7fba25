/// SWIM membership with Lifeguard and anti-entropy, as a pure value type.
///
/// Events go in through the `on…` methods, each taking `now`; what to do comes back as
/// `[MembershipDirective]`, to be carried out in order. The machine never reads a clock, never
/// touches the network and draws randomness only from its seeded generator, so the same inputs
/// give the same outputs in any process.
///
/// Identity is the per-boot `NodeUID`: a UID that is dead or left is tombstoned and never alive
/// again (Piko's ghost-node fault #314 cannot happen). A node that learns it was declared dead takes
/// a new UID ("rebirth") and rejoins; a new UID at a known address supersedes the old one at once.
public struct Membership: Sendable {
    /// The protocol settings (validated by `init`).
    public let settings: MembershipSettings
    /// Our own boot description (the UID changes on rebirth).
    public internal(set) var me: NodeInfo { didSet { self.checkedState.bump() } }
    /// Our incarnation: never decreases for one UID (a rebirth starts a new UID at zero).
    public internal(set) var incarnation: UInt64 = 0 {
        didSet {
            if self.incarnation < oldValue, self.me.uid == self.incarnationOwner {
                self.invariantViolations.append("own incarnation decreased from \(oldValue) to \(self.incarnation)")
            }
            self.incarnationOwner = self.me.uid
        }
    }
    var incarnationOwner = NodeUID(0)
    /// Whether we announced that we are draining.
    public internal(set) var isDraining = false
    /// The configured seed names (Piko's `cluster.join`); empty means "start alone".
    public let seeds: [String]

    /// Where the machine is in its life.
    public enum Phase: Hashable, Sendable {
        /// Created; `start` not yet called.
        case idle
        /// Looking for peers through the seeds.
        case joining
        /// A member of a cluster (possibly alone).
        case running
        /// Sent `left`, waiting for acknowledgements.
        case leaving
        /// Finished; every further input is ignored.
        case finished
    }

    /// Where the machine is in its life.
    public internal(set) var phase: Phase = .idle

    // `checkInvariants` reads these four tables (and `me`) whole: every write bumps `checkedState`.
    var members: [NodeUID: Member] = [:] { didSet { self.checkedState.bump() } }
    var tombstones: [NodeUID: Tombstone] = [:] { didSet { self.checkedState.bump() } }
    /// Tombstoned UIDs, oldest first (for eviction when `tombstones` is full).
    var tombstoneQueue = AgeQueue()
    /// Members that became dead or left, oldest first (for eviction when too many linger).
    var departedQueue = AgeQueue()
    var addressIndex: [Address: NodeUID] = [:] {
        didSet {
            self.checkedState.bump()
            self.addressIndexChanges.bump()
        }
    }
    var suspicions: [NodeUID: Suspicion] = [:] { didSet { self.checkedState.bump() } }
    var probeOrder: [NodeUID] = []
    var probeCursor = 0
    var probe: ProbeInProgress?
    var relays: [UInt32: Relay] = [:]
    var nextSequence: UInt32 = 1
    /// Lifeguard's local health score, in `0..<awarenessMaxMultiplier`.
    public internal(set) var localHealth = 0
    var rng: SplitMix64
    var lastInputAt: Instant?
    var leave: LeaveProgress?
    var join: JoinProgress?
    var resolvedSeeds: [Address] = []
    var aloneResolveDelay: Duration = .seconds(1)
    /// Our UIDs before rebirths (most recent last, at most 16): accusations made under them are ours.
    var previousUIDs: [NodeUID] = []
    var toldDeadAt: [NodeUID: Instant] = [:]
    /// When we last synced with a sender we had never heard of (at most one per probe interval).
    var lastStrangerSyncAt: Instant?
    /// When a refutation was last sent to every member directly (at most one per probe interval).
    var lastDirectRefutationAt: Instant?
    var earliestTombstoneExpiry: Instant?
    /// Where we stand with new identities taken because of forged claims about us.
    var forgeryRebirth: ForgeryRebirth = .none

    /// New identities taken because of forged claims about us, at most one per
    /// `forgeryRebirthInterval`. Legal transitions: `none` → `took`; `took` → `owed` (a forged
    /// claim inside the interval) → `took` (on the first gossip tick once the interval has passed;
    /// a rebirth for another reason settles the debt and keeps the last instant); `took` → `took`
    /// (a forged claim after the interval).
    enum ForgeryRebirth: Hashable, Sendable {
        /// None taken yet.
        case none
        /// One taken at this instant; nothing owed.
        case took(at: Instant)
        /// A forgery came too soon after the identity taken at `after`: a new one is owed once
        /// the interval has passed, so a forgery that peers took for news is never left in place.
        case owed(after: Instant)
    }
    var invariantViolations: [String] = []
    /// Writes to `me`, `members`, `tombstones`, `addressIndex` and `suspicions`: what the
    /// O(members) part of `checkInvariants` reads (see `invariantStamp`).
    var checkedState = ChangeCount()
    /// `memberOrder()` as of its stamp (bookkeeping, not state).
    var cachedMemberOrder: MemberOrder?
    /// Members that became live or stopped being live: what `liveProxyHosts()` depends on.
    var liveSetChanges = ChangeCount()
    /// `liveProxyHosts()` as of `liveSetChanges` reading `stamp` (bookkeeping, not state).
    var cachedProxyHosts: (stamp: UInt64, hosts: [String])?
    /// Writes to `addressIndex`: what decides which resolved seeds no member holds.
    var addressIndexChanges = ChangeCount()
    /// The resolved seeds no member holds, as of `addressIndexChanges` reading `stamp`; cleared
    /// when the seeds are resolved again (bookkeeping, not state).
    var cachedUnheldSeeds: (stamp: UInt64, addresses: [Address])?

    /// Creates a machine for the node described by `me`. `seeds` are the names the shell resolves
    /// on request; `rng` must be seeded by the driver. Throws the validation errors of `settings`.
    public init(me: NodeInfo, seeds: [String], settings: MembershipSettings, rng: SplitMix64) throws(SettingsError) {
        let errors = settings.validationErrors()
        guard errors.isEmpty else { throw SettingsError(messages: errors) }
        self.me = me
        self.incarnationOwner = me.uid
        self.seeds = seeds
        self.settings = settings
        self.rng = rng
    }

    // MARK: - Queries

    /// The member record of `uid` (alive, suspect, or recently dead/left), if listed.
    public func member(_ uid: NodeUID) -> Member? {
        self.members[uid]
    }

    /// The tombstone of `uid`, if it is dead or left.
    public func tombstone(_ uid: NodeUID) -> Tombstone? {
        self.tombstones[uid]
    }

    /// Every listed member except ourselves, sorted by name then UID.
    public var memberList: [Member] {
        self.members.values.sorted { ($0.info.name, $0.info.uid) < ($1.info.name, $1.info.uid) }
    }

    /// Tombstoned UIDs, sorted by UID.
    public var tombstoneList: [(uid: NodeUID, tombstone: Tombstone)] {
        self.tombstones.sorted { $0.key < $1.key }.map { (uid: $0.key, tombstone: $0.value) }
    }

    /// True when `uid` is ourselves or an alive or suspect member.
    public func isLive(_ uid: NodeUID) -> Bool {
        uid == self.me.uid || (self.members[uid]?.isLive ?? false)
    }

    /// Live members other than ourselves.
    public var liveMemberCount: Int {
        // Every live member holds exactly one entry of the address index (checked by
        // `checkInvariants`), so the index's size is the count, in O(1).
        self.addressIndex.count
    }

    /// True when some other member is alive and not draining (someone can take over our work).
    /// O(members), without sorting.
    public var hasActivePeer: Bool {
        self.members.values.contains { $0.state.status == .alive && !$0.draining }
    }

    /// Estimated cluster size (live members plus ourselves), as used by the Lifeguard formulas.
    public var clusterSize: Int { self.liveMemberCount + 1 }

    /// The broadcast retransmit limit for the current cluster size:
    /// `retransmitMultiplier × ceil(log10(N + 1))`.
    public var retransmitLimit: Int {
        let digits = decimalDigitsCeilingLog10(self.clusterSize + 1)
        return self.settings.retransmitMultiplier * max(1, digits)
    }

    // MARK: - Shared transitions (every status change goes through these)

    /// Multiplies a timeout by Lifeguard's `localHealth + 1`.
    func scaledByHealth(_ duration: Duration) -> Duration {
        duration * (self.localHealth + 1)
    }

    mutating func adjustHealth(by delta: Int) {
        self.localHealth = min(max(0, self.localHealth + delta), self.settings.awarenessMaxMultiplier - 1)
    }

    mutating func nextProbeSequence() -> UInt32 {
        let sequence = self.nextSequence
        self.nextSequence = self.nextSequence == UInt32.max ? 1 : self.nextSequence + 1
        return sequence
    }

    /// Moves `uid` to `next`, recording a violation when that would go down the lattice.
    mutating func transition(_ uid: NodeUID, to next: MemberState, now: Instant, into directives: inout [MembershipDirective]) {
        guard var member = self.members[uid] else { return }
        let previous = member.state
        guard previous.allowsTransition(to: next) else {
            self.invariantViolations.append("member \(uid) moved down the lattice from \(previous) to \(next)")
            return
        }
        guard previous != next else { return }
        member.state = next
        member.since = now
        self.members[uid] = member
        directives.append(.event(.memberStatusChanged(uid: uid, name: member.info.name, from: previous, to: next)))
        if previous.status == .alive { self.shortenSuspicionsAfterLosingConfirmer(now: now, into: &directives) }
    }

    /// Adds a new alive member (caller checked it is unknown and not tombstoned).
    mutating func addMember(_ info: NodeInfo, incarnation: UInt64, draining: Bool, now: Instant, into directives: inout [MembershipDirective]) {
        self.members[info.uid] = Member(info: info, state: MemberState(.alive, incarnation), draining: draining, since: now)
        self.liveSetChanges.bump()
        self.addressIndex[info.gossipAddress] = info.uid
        if self.probeOrder.count >= 2 * self.settings.maxMembers { self.compactProbeOrder() }
        // SWIM §4.3: insert at a random position of the round-robin order.
        let position = self.rng.index(below: self.probeOrder.count + 1)
        self.probeOrder.insert(info.uid, at: position)
        if position < self.probeCursor { self.probeCursor += 1 }
        directives.append(.event(.memberJoined(info)))
    }

    /// Drops departed members from the probe order before a round ends (it is pruned when the
    /// round wraps, which at thousands of members takes an hour): members made up and killed
    /// faster than that cannot grow it past twice `maxMembers`. Keeps the round's position.
    mutating func compactProbeOrder() {
        var kept: [NodeUID] = []
        kept.reserveCapacity(self.liveMemberCount)
        var cursor = 0
        for (index, uid) in self.probeOrder.enumerated() where self.members[uid]?.isLive ?? false {
            if index < self.probeCursor { cursor += 1 }
            kept.append(uid)
        }
        self.probeOrder = kept
        self.probeCursor = cursor
    }

    /// Declares `uid` dead or left: tombstone, stop probing it, end its suspicion.
    mutating func markTerminal(
        _ uid: NodeUID,
        status: MemberStatus,
        incarnation: UInt64,
        now: Instant,
        into directives: inout [MembershipDirective]
    ) {
        precondition(status.isTerminal, "markTerminal needs dead or left, got \(status)")
        let member = self.members[uid]
        if let existing = self.tombstones[uid], existing.status >= status { return }
        self.recordTombstone(uid, status: status, incarnation: incarnation, address: member?.info.gossipAddress, name: member?.info.name, now: now)
        self.suspicions[uid] = nil
        if member?.isLive ?? false { self.liveSetChanges.bump() }
        if let member {
            if self.addressIndex[member.info.gossipAddress] == uid { self.addressIndex[member.info.gossipAddress] = nil }
            self.transition(uid, to: MemberState(status, incarnation), now: now, into: &directives)
            // Every departure (dead, or dead then left) is queued at its `since`: `reap` takes
            // the expired ones from the front.
            if let departed = self.members[uid], departed.since == now, departed.state.status == status {
                self.departedQueue.append(uid, at: departed.since)
                if member.isLive { self.evictDepartedBeyondBound(into: &directives) }
            }
        }
        if self.probe?.target == uid { self.probe = nil }
        if self.leave?.targets[uid] != nil, status.isTerminal {
            self.leave?.targets[uid] = nil
        }
    }

    mutating func recordTombstone(_ uid: NodeUID, status: MemberStatus, incarnation: UInt64, address: Address?, name: String?, now: Instant) {
        let expiresAt = now + self.settings.tombstoneTimeToLive
        if var existing = self.tombstones[uid] {
            guard status > existing.status else { return }
            existing.status = status
            existing.address = existing.address ?? address
            existing.name = existing.name ?? name
            self.tombstones[uid] = existing
            return
        }
        self.tombstones[uid] = Tombstone(status: status, incarnation: incarnation, address: address, name: name, expiresAt: expiresAt)
        self.tombstoneQueue.append(uid, at: expiresAt)
        if self.earliestTombstoneExpiry.map({ expiresAt < $0 }) ?? true { self.earliestTombstoneExpiry = expiresAt }
        if self.tombstones.count > self.settings.maxTombstones { self.evictOldestTombstone() }
    }

    /// Dead and left members stay listed for `gossipToTheDeadTime`; at most `maxMembers` of them
    /// (the oldest go first, as `reap` would drop them), so members that are made up and killed
    /// faster than they are reaped cannot grow the list: it holds at most twice `maxMembers`.
    mutating func evictDepartedBeyondBound(into directives: inout [MembershipDirective]) {
        while self.members.count - self.liveMemberCount > self.settings.maxMembers, let oldest = self.departedQueue.popFirst() {
            guard let member = self.members[oldest.uid], !member.isLive, member.since == oldest.at else { continue }
            self.members[oldest.uid] = nil
            directives.append(.event(.memberRemoved(uid: oldest.uid, name: member.info.name)))
        }
    }

    /// Forgets the tombstone recorded first (the one that would expire first), in O(1).
    mutating func evictOldestTombstone() {
        while let oldest = self.tombstoneQueue.popFirst() {
            // Entries of tombstones reaped or replaced since are stale: skip them.
            if self.tombstones[oldest.uid]?.expiresAt == oldest.at {
                self.tombstones[oldest.uid] = nil
                return
            }
        }
    }

    /// Live members in a deterministic order (sorted by UID), optionally filtered.
    func liveMembers(where include: (Member) -> Bool = { _ in true }) -> [Member] {
        self.members.values.filter { $0.isLive && include($0) }.sorted { $0.info.uid < $1.info.uid }
    }
}

/// `ceil(log10(value))` for positive integers, without floating point.
func decimalDigitsCeilingLog10(_ value: Int) -> Int {
    var power = 1
    var digits = 0
    while power < value {
        power *= 10
        digits += 1
    }
    return digits
}

/// Settings that cannot work together; `messages` names each offending setting.
public struct SettingsError: Error, Hashable, Sendable, CustomStringConvertible {
    /// One line per problem.
    public var messages: [String]

    /// Creates an error from its messages.
    public init(messages: [String]) {
        self.messages = messages
    }

    public var description: String { "invalid settings: " + self.messages.joined(separator: "; ") }
}
