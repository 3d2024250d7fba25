/// Why a request cannot be routed: the HTTP status and the `{"error": …}` message clients see.
public struct RouteRejection: Hashable, Sendable, CustomStringConvertible {
    /// HTTP status code.
    public var status: Int
    /// The message for the JSON body (Piko's wording).
    public var message: String

    /// No `x-pico-endpoint` header and no usable `Host` label: 400.
    public static let missingEndpoint = RouteRejection(status: 400, message: "missing endpoint id")
    /// An endpoint ID longer than `EndpointTable.maxEndpointLength` bytes: 400.
    public static let invalidEndpoint = RouteRejection(status: 400, message: "invalid endpoint id")
    /// No tunnel here and no live node holding the endpoint (or already forwarded once): 502.
    public static let noAvailableUpstreams = RouteRejection(status: 502, message: "no available upstreams")

    public var description: String { "\(self.status) \(self.message)" }
}

/// Where one request goes.
public enum RouteDecision: Hashable, Sendable {
    /// Open a stream on this local tunnel (the request now counts as in flight on it until the
    /// shell reports `.streamFinished`).
    case local(TunnelID)
    /// Forward once, with `x-pico-forward: true`, to the node `uid` at `proxyAddress`.
    case forward(uid: NodeUID, name: String, proxyAddress: Address)
    /// Answer with the rejection's status and message.
    case reject(RouteRejection)
}

/// A remote node that holds listeners for an endpoint, as the router sees it.
public struct RemoteUpstream: Hashable, Sendable {
    /// The node's UID.
    public var uid: NodeUID
    /// The node's name.
    public var name: String
    /// Where to forward.
    public var proxyAddress: Address
    /// Its listener count for the endpoint (the forwarding weight).
    public var count: UInt32
    /// Whether it announced it is draining.
    public var draining: Bool
    /// Whether this node suspects it (SWIM): it is tried only when no other holder is left.
    public var suspect: Bool

    /// Creates a candidate.
    public init(uid: NodeUID, name: String, proxyAddress: Address, count: UInt32, draining: Bool, suspect: Bool = false) {
        self.uid = uid
        self.name = name
        self.proxyAddress = proxyAddress
        self.count = count
        self.draining = draining
        self.suspect = suspect
    }
}

/// The routing decision, shared by every shell.
///
/// Order of preference for a request for endpoint E at node N:
/// 1. a non-draining local tunnel of E (round robin);
/// 2. unless the request was already forwarded: a non-draining alive remote node holding E that
///    N has no evidence of being unable to reach, chosen at random weighted by its listener count
///    (Piko #30);
/// 3. a draining local tunnel of E (make-before-break: it still works until its agent has moved);
/// 4. unless forwarded: a draining remote node holding E that N can reach;
/// 5. unless forwarded: any remote holder N doubts, because it has evidence it cannot reach it
///    or suspects it (non-draining first): the doubt may be wrong, a suspect may refute, and
///    trying costs one short dial, where the alternative is a certain 502;
/// 6. otherwise 502 `no available upstreams`. A forwarded request is never forwarded again.
///
/// Dead and left nodes are never candidates (callers pass alive and suspect nodes only).
public enum Router {
    /// Decides with a registry of local tunnels (see below).
    public static func decide(
        endpoint: String?,
        forwarded: Bool,
        local: inout UpstreamRegistry,
        remote: [RemoteUpstream],
        isUnreachable: (NodeUID) -> Bool = { _ in false },
        rng: inout SplitMix64
    ) -> RouteDecision {
        self.decide(endpoint: endpoint, forwarded: forwarded, remote: remote, isUnreachable: isUnreachable, rng: &rng) { local.choose(for: $0, allowDraining: $1) }
    }

    /// Decides where a request for `endpoint` goes. `remote` lists alive remote holders of the
    /// endpoint (suspect, dead and left nodes excluded by the caller); `isUnreachable` says
    /// which of them this node has local evidence it cannot reach (see `Reachability`).
    /// `chooseLocal(endpoint, allowDraining)` picks (and counts) a local tunnel, as
    /// `UpstreamRegistry.choose` does.
    public static func decide(
        endpoint: String?,
        forwarded: Bool,
        remote: [RemoteUpstream],
        isUnreachable: (NodeUID) -> Bool = { _ in false },
        rng: inout SplitMix64,
        chooseLocal: (String, Bool) -> TunnelID?
    ) -> RouteDecision {
        guard let endpoint, !endpoint.isEmpty else { return .reject(.missingEndpoint) }
        guard endpoint.utf8.count <= EndpointTable.maxEndpointLength else { return .reject(.invalidEndpoint) }
        if let tunnel = chooseLocal(endpoint, false) { return .local(tunnel) }
        if !forwarded, let target = self.weightedChoice(remote, rng: &rng, where: { !$0.draining && !($0.suspect || isUnreachable($0.uid)) }) {
            return .forward(uid: target.uid, name: target.name, proxyAddress: target.proxyAddress)
        }
        if let tunnel = chooseLocal(endpoint, true) { return .local(tunnel) }
        if !forwarded, let target = self.weightedChoice(remote, rng: &rng, where: { $0.draining && !($0.suspect || isUnreachable($0.uid)) }) {
            return .forward(uid: target.uid, name: target.name, proxyAddress: target.proxyAddress)
        }
        if !forwarded {
            if let target = self.weightedChoice(remote, rng: &rng, where: { ($0.suspect || isUnreachable($0.uid)) && !$0.draining })
                ?? self.weightedChoice(remote, rng: &rng, where: { $0.suspect || isUnreachable($0.uid) }) {
                return .forward(uid: target.uid, name: target.name, proxyAddress: target.proxyAddress)
            }
        }
        return .reject(.noAvailableUpstreams)
    }

    /// A candidate among those `isCandidate` accepts, chosen with probability proportional to its
    /// count (nil when none has one); their list is never built (this runs for every request).
    static func weightedChoice(_ remote: [RemoteUpstream], rng: inout SplitMix64, where isCandidate: (RemoteUpstream) -> Bool) -> RemoteUpstream? {
        var total: UInt64 = 0
        for candidate in remote where isCandidate(candidate) { total += UInt64(candidate.count) }
        guard total > 0 else { return nil }
        var point = rng.bounded(total)
        for candidate in remote where isCandidate(candidate) {
            if point < UInt64(candidate.count) { return candidate }
            point -= UInt64(candidate.count)
        }
        return nil
    }
}
