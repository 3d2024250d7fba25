/// One Pico node's whole cluster behaviour: membership, endpoint table, upstream registry, router
/// and lifecycle, driven through a single `handle(_:now:)`.
///
/// Shells (the runtime and the simulator) feed every `ClusterInput` with the current time and
/// carry out the returned `ClusterDirective`s in order. The node never reads a clock, never
/// performs I/O and draws randomness only from the seed in its configuration: the same inputs at
/// the same instants give the same directives in any process.
public struct ClusterNode: Sendable {
    /// The configuration it was created with.
    public let configuration: ClusterConfiguration
    /// How its gossip is sealed and opened (nil: plain text). The key ring changes with
    /// `.gossipKeyringChanged`.
    public internal(set) var security: GossipSecurity?
    /// The membership machine (read-only view for admin routes and checkers).
    public internal(set) var membership: Membership
    /// The endpoint table (read-only view).
    public internal(set) var endpoints: EndpointTable
    /// This node's tunnels (read-only view).
    public internal(set) var upstreams = UpstreamRegistry()
    /// The lifecycle (read-only view).
    public internal(set) var lifecycle: Lifecycle
    /// Pending broadcasts (read-only view).
    public internal(set) var broadcasts = BroadcastQueue()
    /// Gossip messages sent and received, by kind (read-only view, for metrics).
    public internal(set) var gossipTraffic = GossipTraffic()
    var routingRNG: SplitMix64
    var pendingExchanges: [ExchangeID: PendingExchange] = [:]
    var nextExchangeID: UInt64 = 1
    /// Members to sync with by push/pull (one per probe interval, oldest first): discovered through
    /// gossip, or announcing endpoint versions we lack; their deltas may have been broadcast while
    /// we could not hear them.
    var discoverySyncs: [Address] = []
    var nextDiscoverySyncAt = Instant(nanoseconds: .min)
    var isMergingState = false
    /// Live senders whose datagrams announce more endpoint versions than we know, since when.
    var endpointLag: [NodeUID: Instant] = [:]
    /// When the drain must end (grace period minus the leave budget after SIGTERM); nil before
    /// a shutdown began (read-only view).
    public internal(set) var drainDeadline: Instant?
    var drainHoldUntil: Instant?
    /// When each draining tunnel's endpoint was first seen served by an active node elsewhere.
    var handoverSeen: [TunnelID: Instant] = [:]
    var leaveStarted = false
    /// Forwarded upgrades this node relays to their holder (`.relayStarted`); the drain waits
    /// for them as for its tunnels' streams (read-only view).
    public internal(set) var relays = 0
    /// The rule that moves tunnels off this node when it holds more than its share (read-only view).
    public internal(set) var rebalancer: Rebalancer
    /// Tunnels the rebalancer asked to move and not yet released (see `MoveProgress`).
    var moves: [TunnelID: MoveProgress] = [:]
    /// The census of the last rebalancing evaluation: a replacement's refusal reads it (with this
    /// node's own counts as they are) rather than walking the endpoint table on every dial.
    var lastCensus: Rebalancer.Census?
    /// `tunnelTotals()` as of the endpoint table's `invariantStamp` (bookkeeping, not state): the
    /// census walks every endpoint entry only after the table changed, not four times a second.
    var tunnelTotalsCache: (stamp: UInt64, totals: [NodeUID: Int])?
    /// Moves asked, moves done and tunnels refused by rebalancing (read-only view, for metrics).
    public internal(set) var rebalanceFigures = RebalanceFigures()
    /// An endpoint lost its last holder through a remote change; a repair sync is due.
    var routeRepairPending = false
    var nextRouteRepairAt = Instant(nanoseconds: .min)
    /// What the data loops were last told (see `appendRoutingChanges`).
    var routing = RoutingPublication()
    /// The live holding claim of each endpoint a tenant holds, as last worked out.
    var tenantHolders: [String: EndpointClaim] = [:]
    /// Endpoints kept for the tenant that held them (read-only view).
    public internal(set) var reservations = TenantReservations()
    /// Endpoints whose holding tenant changed without an entry changing (a reservation began or
    /// ended): their routing is published again.
    var tenancyChanged: Set<String> = []
    /// Local evidence of members this node cannot reach (read-only view).
    public internal(set) var reachability = Reachability()
    /// When a rebirth was last announced to every member directly (`announceRebirth`).
    var lastRebirthAnnouncementAt: Instant?
    /// When a waiting request last made the node try to reach the dead (`.holderWanted`).
    var lastHolderWantedAt: Instant?
    /// How often waiting requests may make the node try to reach a dead member: often enough that
    /// a request waiting `proxy.upstream_wait` (1 s) sees a healed partition, rarely enough that
    /// a flood of requests for unknown endpoints costs one dial a second.
    public static let holderWantedInterval: Duration = .milliseconds(500)
    /// When a waiting request last made the node sync with a live member (`.holderWanted`), and
    /// when a request last waited at all.
    var lastHolderRepairAt: Instant?
    var lastHolderWantedSeenAt: Instant?
    /// The least time until the next such sync: `holderRepairInterval` at first, doubling with
    /// each sync up to the push/pull period while requests keep waiting.
    var holderRepairDelay: Duration = ClusterNode.holderRepairInterval
    /// How soon waiting requests may first make the node sync its tables with a random live
    /// member (the holder's announcement may have been missed, and no lost route marked it: the
    /// entry never arrived, or forged gossip crowded it out). Requests that keep waiting (clients
    /// asking for an endpoint nobody holds, or anyone asking for random names) double the delay
    /// with each sync, up to the push/pull period, so they never cost more than anti-entropy; it
    /// starts over after a push/pull period without a waiting request.
    public static let holderRepairInterval: Duration = .seconds(5)

    /// Creates a node; throws when the configuration is invalid (each problem names its key).
    public init(configuration: ClusterConfiguration, security: GossipSecurity? = nil) throws(SettingsError) {
        self.security = security
        let errors = configuration.validationErrors()
        guard errors.isEmpty else { throw SettingsError(messages: errors) }
        var rng = SplitMix64(seed: configuration.randomSeed)
        let name = configuration.nodeName ?? NodeIdentity.makeName(prefix: configuration.nodeNamePrefix, using: &rng)
        let me = NodeInfo(
            uid: NodeIdentity.makeUID(using: &rng), name: name, gossipAddress: configuration.gossipAddress,
            proxyAddress: configuration.proxyAddress, adminAddress: configuration.adminAddress, epoch: configuration.epoch)
        self.configuration = configuration
        self.membership = try Membership(me: me, seeds: configuration.join, settings: configuration.membership, rng: rng.split())
        self.routingRNG = rng.split()
        self.endpoints = EndpointTable(localOwner: me.uid, maxEntriesOfOneOwner: configuration.maxEndpointsPerMember)
        self.lifecycle = Lifecycle(gracePeriod: configuration.gracePeriod, leaveBudget: configuration.membership.leaveTimeout)
        self.rebalancer = Rebalancer(settings: configuration.rebalance)
    }

    /// This node's current description (its UID changes if it is ever reborn).
    public var me: NodeInfo { self.membership.me }

    /// Handles one input at `now` and returns what the shell must do, in order. After
    /// `.exit`, every input is ignored.
    public mutating func handle(_ input: ClusterInput, now: Instant) -> [ClusterDirective] {
        var directives: [ClusterDirective] = []
        guard self.lifecycle.phase != .left else { return directives }
        switch input {
        case .start:
            self.apply(lifecycle: .started, now: now, into: &directives)
            if self.rebalancer.settings.isEnabled { directives.append(.schedule(.rebalance, at: now + Rebalancer.interval)) }
            self.interpret(self.membership.start(now: now), now: now, into: &directives)
        case .timerFired(let timer):
            self.onTimer(timer, now: now, into: &directives)
        case .datagramReceived(let bytes, let address):
            self.onDatagram(bytes, from: address, now: now, into: &directives)
        case .datagramSendFailed(let address):
            directives.append(.event(.datagramSendFailed(to: address)))
        case .seedsResolved(let addresses):
            self.interpret(self.membership.onSeedsResolved(addresses, now: now), now: now, into: &directives)
        case .seedResolutionFailed:
            self.interpret(self.membership.onSeedResolutionFailed(now: now), now: now, into: &directives)
        case .stateExchangeRequested(let id, let bytes, let address):
            self.onStateExchangeRequested(id, bytes: bytes, from: address, now: now, into: &directives)
        case .stateExchangeReplied(let id, let bytes):
            self.onStateExchangeReplied(id, bytes: bytes, now: now, into: &directives)
        case .stateExchangeFailed(let id, let reason):
            self.onStateExchangeFailed(id, reason: reason, now: now, into: &directives)
        case .tunnelOpened(let id, let endpoint, let loop, let tenant, let wallMilliseconds, let agent):
            self.routing.tunnelLoops[id] = loop
            self.onTunnelOpened(id, endpoint: endpoint, tenant: tenant, wallMilliseconds: wallMilliseconds, agent: agent, now: now, into: &directives)
            if self.upstreams.tunnel(id) == nil { self.routing.tunnelLoops[id] = nil }
        case .tunnelClosed(let id):
            self.removeTunnel(id, into: &directives)
        case .streamFinished(let id):
            _ = self.upstreams.finishStream(on: id)
        case .routedByLoop(let decision):
            self.recordLoopRoute(decision)
        case .relayStarted:
            self.relays += 1
        case .relayEnded:
            self.relays = max(self.relays - 1, 0)
        case .forwardFailed(let uid):
            if uid != self.me.uid, self.membership.isLive(uid) { self.reachability.noteForwardFailed(uid, now: now) }
        case .forwardAnswered(let uid):
            self.reachability.noteForwardAnswered(uid)
        case .forwardHeartbeats(let uid):
            if uid != self.me.uid, self.membership.isLive(uid) { self.reachability.noteHeartbeats(uid) }
        case .holderWanted:
            if self.lastHolderWantedAt.map({ now - $0 >= Self.holderWantedInterval }) ?? true {
                self.lastHolderWantedAt = now
                self.interpret(self.membership.onHolderWanted(now: now), now: now, into: &directives)
            }
            self.noteHolderWanted(now: now)
        case .shutdownRequested:
            self.apply(lifecycle: .shutdownRequested, now: now, into: &directives)
        case .gossipKeyringChanged(let keyring):
            // Only a node that seals gossip has a ring to change; turning sealing on or off
            // takes a restart (with `verifyIncoming` and `verifyOutgoing` for the steps between).
            self.security?.keyring = keyring
        }
        self.settleTenancy(now: now, into: &directives)
        if self.lifecycle.phase == .draining {
            self.advanceDrain(now: now, into: &directives)
        } else if !self.moves.isEmpty {
            self.advanceMoves(now: now, into: &directives)
        }
        self.runRouteRepair(now: now, into: &directives)
        self.reachability.expire(now: now)
        self.appendRoutingChanges(to: &directives)
        return directives
    }

    mutating func onTimer(_ timer: TimerID, now: Instant, into directives: inout [ClusterDirective]) {
        let produced: [MembershipDirective]
        switch timer {
        case .probe: produced = self.membership.onProbeTick(now: now)
        case .probeTimeout(let sequence): produced = self.membership.onProbeTimeout(sequence: sequence, now: now)
        case .probeDeadline(let sequence): produced = self.membership.onProbeDeadline(sequence: sequence, now: now)
        case .relayTimeout(let sequence): produced = self.membership.onRelayTimeout(sequence: sequence, now: now)
        case .gossip:
            produced = self.membership.onGossipTick(hasBroadcasts: !self.broadcasts.isEmpty, now: now)
            self.runDiscoverySync(now: now, into: &directives)
        case .pushPull: produced = self.membership.onPushPullTick(now: now)
        case .reconnect: produced = self.membership.onReconnectTick(now: now)
        case .suspicion(let uid): produced = self.membership.onSuspicionTimer(uid, now: now)
        case .seedResolution: produced = self.membership.onSeedResolutionTimer(now: now)
        case .joinDeadline: produced = self.membership.onJoinDeadline(now: now)
        case .leaveDeadline: produced = self.membership.onLeaveDeadline(now: now)
        case .drainHoldEnded, .handoverCheck:
            produced = []
        case .rebalance:
            produced = []
            self.runRebalance(now: now, into: &directives)
        case .drainDeadline:
            produced = []
            if let deadline = self.drainDeadline, deadline <= now { self.forceEndDrain(now: now, into: &directives) }
        case .stateExchangeDeadline:
            produced = []
            self.failOverdueExchanges(now: now, into: &directives)
        }
        self.interpret(produced, now: now, into: &directives)
    }

    mutating func apply(lifecycle event: Lifecycle.Event, now: Instant, into directives: inout [ClusterDirective]) {
        for directive in self.lifecycle.on(event, now: now) {
            switch directive {
            case .setReadiness(let ready):
                directives.append(.setReadiness(ready))
            case .beginDrain(let deadline):
                self.beginDrain(deadline: deadline, now: now, into: &directives)
            case .exit(let reason):
                directives.append(.exit(reason))
            case .phaseChanged(let from, let to):
                directives.append(.event(.phaseChanged(from: from, to: to)))
            }
        }
    }

    // MARK: - Views for the admin API

    /// One row of the member view.
    public struct MemberView: Hashable, Sendable {
        /// The member's description.
        public var info: NodeInfo
        /// Its status and incarnation.
        public var state: MemberState
        /// Whether it is draining.
        public var draining: Bool
        /// Whether this row is the local node.
        public var isLocal: Bool
        /// Its tunnels, as this node's endpoint table counts them.
        public var tunnels: Int = 0
    }

    /// Every listed member including ourselves, sorted by name then UID.
    public var memberViews: [MemberView] {
        let totals = self.tunnelTotals()
        var views = [MemberView(info: self.me, state: MemberState(.alive, self.membership.incarnation), draining: self.membership.isDraining,
                                isLocal: true, tunnels: totals[self.me.uid] ?? 0)]
        for member in self.membership.memberList {
            views.append(MemberView(info: member.info, state: member.state, draining: member.draining, isLocal: false, tunnels: totals[member.info.uid] ?? 0))
        }
        return views.sorted { ($0.info.name, $0.info.uid) < ($1.info.name, $1.info.uid) }
    }

    /// The endpoint table as `endpoint -> [(owner, count)]`, both levels sorted.
    public var endpointView: [(endpoint: String, owners: [(owner: NodeUID, count: UInt32)])] {
        self.endpoints.endpoints.map { (endpoint: $0, owners: self.endpoints.owners(of: $0)) }
    }

    /// Our tunnels, sorted by ID.
    public var tunnelView: [UpstreamRegistry.Tunnel] { self.upstreams.allTunnels }

    /// True when the readiness probe should succeed.
    public var isReady: Bool { self.lifecycle.isReady }

    /// Broken invariants of every machine, prefixed by the machine's name; empty when consistent.
    public func checkInvariants() -> [String] {
        var problems = self.membership.checkInvariants().map { "membership: \($0)" }
        problems += self.endpoints.checkInvariants().map { "endpoints: \($0)" }
        problems += self.upstreams.checkInvariants().map { "upstreams: \($0)" }
        for endpoint in Set(self.upstreams.allTunnels.map(\.endpoint))
        where UInt32(self.upstreams.count(for: endpoint)) != self.endpoints.localCount(for: endpoint) {
            problems.append("endpoints: local count of \(endpoint) differs from its \(self.upstreams.count(for: endpoint)) tunnels")
        }
        for entry in self.endpoints.localEntries where self.upstreams.count(for: entry.endpoint) == 0 {
            problems.append("endpoints: \(entry.endpoint) published with no tunnel")
        }
        if self.endpoints.localOwner != self.me.uid { problems.append("endpoints: owned by \(self.endpoints.localOwner), not \(self.me.uid)") }
        for owner in self.endpoints.owners.keys where !self.membership.isLive(owner) {
            problems.append("endpoints: entries of \(owner), which is not live")
        }
        return problems.sorted()
    }
}

/// An outgoing state exchange waiting for its answer.
struct PendingExchange: Hashable, Sendable {
    var address: Address
    var purpose: StateExchange.Purpose
    /// When it counts as failed if no answer came (`stateExchangeTimeout` after it opened).
    var deadline: Instant
}
