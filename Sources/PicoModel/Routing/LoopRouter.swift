/// A change to the routing state that the node's owner (the control loop) sends to every data
/// loop, in the order it happened, so each loop keeps its own `LoopRouter` without sharing the
/// `ClusterNode`.
public enum RoutingChange: Hashable, Sendable {
    /// Tunnel `id` of `endpoint` registered; it lives on loop `loop`.
    case tunnelAdded(TunnelID, endpoint: String, loop: Int, draining: Bool)
    /// Its agent was asked to move: it serves only when nothing else can.
    case tunnelDraining(TunnelID)
    /// It left the registry.
    case tunnelRemoved(TunnelID)
    /// The alive remote holders of `endpoint` (empty when none is left).
    case remoteHolders(endpoint: String, [RemoteUpstream])
    /// The node has local evidence it cannot reach member `uid` (true), or fresh evidence that
    /// it can again (false); see `Reachability`. Routing prefers other holders meanwhile.
    case unreachable(NodeUID, Bool)
    /// The proxy hosts of the live members (ourselves excluded), sorted: the only sources whose
    /// `x-pico-forward` mark counts.
    case peerProxyHosts([String])
    /// Member `uid` heartbeats forwards (true), or is no longer a live member (false).
    case heartbeats(NodeUID, Bool)
    /// Member `uid`, against which a forward failed, answered the node's direct probe since: the
    /// way to it works again (see `Reachability.directContacts`). A request waiting on a forward
    /// to it that went silent may send itself again on a fresh connection.
    case answeredDirectly(NodeUID)
    /// The tenant that holds `endpoint` (nil: none, or tunnels without a tenant), so the upstream
    /// port refuses another tenant's agent before its handshake completes (the node decides
    /// again when the tunnel registers).
    case endpointTenant(endpoint: String, tenant: String?)
}

/// One data loop's routing: `Router`'s order (non-draining local tunnels, then remote nodes, then
/// draining local tunnels, then draining remote nodes), where among local tunnels those on this
/// loop come before those on other loops, so a keep-alive client connection stays where its
/// tunnel is. Round robin and in-flight counts are this loop's own. A `.local` decision may name
/// a tunnel on another loop: `loop(of:)` says which.
public struct LoopRouter: Sendable {
    /// The loop this router serves.
    public let loop: Int
    private var here = UpstreamRegistry()
    private var elsewhere = UpstreamRegistry()
    private var placement: [TunnelID: Int] = [:]
    private var remote: [String: [RemoteUpstream]] = [:]
    /// Members the node cannot reach as far as it knows (looked up, never iterated).
    private var unreachable: Set<NodeUID> = []
    /// The live members' proxy hosts (looked up, never iterated).
    private var peerHosts: Set<String> = []
    /// Members seen sending forward heartbeats (looked up, never iterated; see `ForwardHeartbeat`).
    private var heartbeatPeers: Set<NodeUID> = []
    /// How often each member was found reachable again after evidence against it: its evidence
    /// cleared (a forward it answered), or it answered a direct probe after a failed forward
    /// (looked up, never iterated).
    private var reachedAgain: [NodeUID: UInt64] = [:]
    /// The holding tenant of each endpoint a tenant holds (looked up, never iterated).
    private var tenants: [String: String] = [:]
    private var rng: SplitMix64

    /// Heartbeat-capable members remembered at most (the node removes dead members' entries; a
    /// loop's own learning could outrun it): at this size the set starts over, and each member
    /// proves itself again on its next answered forward.
    public static let maxHeartbeatPeers = 4_096

    /// An empty router for loop `loop`; `seed` drives the weighted choice of remote nodes.
    public init(loop: Int, seed: UInt64) {
        self.loop = loop
        self.rng = SplitMix64(seed: seed)
    }

    /// Applies one change from the control loop.
    public mutating func apply(_ change: RoutingChange) {
        switch change {
        case .tunnelAdded(let id, let endpoint, let loop, let draining):
            guard self.placement[id] == nil else { return }
            self.placement[id] = loop
            if loop == self.loop {
                _ = self.here.add(id, endpoint: endpoint, draining: draining)
            } else {
                _ = self.elsewhere.add(id, endpoint: endpoint, draining: draining)
            }
        case .tunnelDraining(let id):
            _ = self.here.markDraining(id) || self.elsewhere.markDraining(id)
        case .tunnelRemoved(let id):
            guard self.placement.removeValue(forKey: id) != nil else { return }
            _ = self.here.remove(id)
            _ = self.elsewhere.remove(id)
        case .remoteHolders(let endpoint, let holders):
            self.remote[endpoint] = holders.isEmpty ? nil : holders
        case .unreachable(let uid, let unreachable):
            if unreachable {
                self.unreachable.insert(uid)
            } else {
                self.unreachable.remove(uid)
                self.noteReachedAgain(uid)
            }
        case .peerProxyHosts(let hosts):
            self.peerHosts = Set(hosts)
        case .heartbeats(let uid, let heartbeats):
            if heartbeats {
                self.learnHeartbeats(uid)
            } else {
                self.heartbeatPeers.remove(uid)
                self.reachedAgain[uid] = nil
            }
        case .answeredDirectly(let uid):
            self.noteReachedAgain(uid)
        case .endpointTenant(let endpoint, let tenant):
            self.tenants[endpoint] = tenant
        }
    }

    /// The tenant that holds `endpoint`, as the node last said (nil: none, or no tenant).
    public func tenant(holding endpoint: String) -> String? { self.tenants[endpoint] }

    private mutating func noteReachedAgain(_ uid: NodeUID) {
        if self.reachedAgain[uid] == nil, self.reachedAgain.count >= Self.maxHeartbeatPeers { self.reachedAgain.removeAll() }
        self.reachedAgain[uid, default: 0] &+= 1
    }

    /// True when `host` is a live member's proxy host: a request from it carrying the forward
    /// mark was forwarded by a peer.
    public func isPeerHost(_ host: String) -> Bool { self.peerHosts.contains(host) }

    /// True when the node has evidence it cannot reach `uid`.
    public func isUnreachable(_ uid: NodeUID) -> Bool { self.unreachable.contains(uid) }

    /// How often `uid` was found reachable again after evidence against it, as this loop heard
    /// (`.unreachable(uid, false)` or `.answeredDirectly(uid)`): an exchange whose forward to
    /// `uid` went silent compares it with the count at the silence.
    public func timesReachedAgain(_ uid: NodeUID) -> UInt64 { self.reachedAgain[uid] ?? 0 }

    /// True when `uid` was seen sending forward heartbeats: silence from it means a lost hop.
    public func sendsHeartbeats(_ uid: NodeUID) -> Bool { self.heartbeatPeers.contains(uid) }

    /// Member `uid` marked an answer, or sent a heartbeat: it heartbeats while its upstream
    /// works. False when the loop knew already (only news goes to the node).
    @discardableResult
    public mutating func learnHeartbeats(_ uid: NodeUID) -> Bool {
        guard !self.heartbeatPeers.contains(uid) else { return false }
        if self.heartbeatPeers.count >= Self.maxHeartbeatPeers { self.heartbeatPeers.removeAll() }
        self.heartbeatPeers.insert(uid)
        return true
    }

    /// The loop tunnel `id` lives on (nil when unknown).
    public func loop(of id: TunnelID) -> Int? { self.placement[id] }

    /// Where a request for `endpoint` goes; a local decision counts it in flight here until
    /// `finishStream(on:)`. Nodes in `avoiding` are never chosen (a forward to them failed before
    /// the request reached them).
    public mutating func decide(endpoint: String?, forwarded: Bool, avoiding: [NodeUID] = []) -> RouteDecision {
        var remote = endpoint.flatMap { self.remote[$0] } ?? []
        if !avoiding.isEmpty { remote.removeAll { avoiding.contains($0.uid) } }
        // The registries and the generator are disjoint stored properties, each lent in place
        // (moving them out and back cost more than the decision).
        return Self.decide(
            endpoint: endpoint, forwarded: forwarded, remote: remote, unreachable: self.unreachable,
            rng: &self.rng, here: &self.here, elsewhere: &self.elsewhere)
    }

    private static func decide(
        endpoint: String?, forwarded: Bool, remote: [RemoteUpstream], unreachable: Set<NodeUID>,
        rng: inout SplitMix64, here: inout UpstreamRegistry, elsewhere: inout UpstreamRegistry
    ) -> RouteDecision {
        Router.decide(endpoint: endpoint, forwarded: forwarded, remote: remote, isUnreachable: { unreachable.contains($0) }, rng: &rng) { endpoint, allowDraining in
            if let id = here.choose(for: endpoint, allowDraining: false) { return id }
            if let id = elsewhere.choose(for: endpoint, allowDraining: false) { return id }
            guard allowDraining else { return nil }
            return here.choose(for: endpoint, allowDraining: true) ?? elsewhere.choose(for: endpoint, allowDraining: true)
        }
    }

    /// A stream this loop routed to `id` finished.
    public mutating func finishStream(on id: TunnelID) {
        if self.here.finishStream(on: id) == nil { _ = self.elsewhere.finishStream(on: id) }
    }

    /// Tunnels known, on every loop.
    public var tunnelCount: Int { self.placement.count }
}
