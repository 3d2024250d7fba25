import PicoModel

/// An upstream agent: keeps one tunnel for its endpoint open through the load balancer, by
/// PicoModel's `AgentMachine` rules (Piko's backoff, make-before-break).
public struct AgentSpec: Hashable, Sendable {
    /// Which agent it is: how it answers a node's GoAway.
    public enum Kind: String, Hashable, Sendable, CaseIterable {
        /// Pico's agent (`pico agent`): opens its replacement through the load balancer first,
        /// saying so in its handshake, and serves on the old tunnel until its node closes it.
        case pico
        /// Piko's agents (the `/piko/v1/upstream/` path): ignore the GoAway and dial again only
        /// once their node closes the tunnel, so they cannot be steered by refusals.
        case piko
    }

    /// A name for reports.
    public var name: String
    /// The endpoint it serves.
    public var endpoint: String
    /// Its tenant (`upstream.tenants`; "" for none).
    public var tenant: String
    /// Which agent it is.
    public var kind: Kind

    /// Creates an agent description.
    public init(name: String, endpoint: String, tenant: String = "", kind: Kind = .pico) {
        self.name = name
        self.endpoint = endpoint
        self.tenant = tenant
        self.kind = kind
    }
}

/// How long a client's TCP connections stay open: each draws a lifetime uniformly between the
/// bounds, counted from the holder's 101.
public struct StreamLifetimes: Hashable, Sendable {
    /// The shortest lifetime.
    public var shortest: Duration
    /// The longest lifetime (at least `shortest`).
    public var longest: Duration

    /// Creates bounds; `longest` below `shortest` is raised to it.
    public init(shortest: Duration, longest: Duration) {
        self.shortest = shortest
        self.longest = max(shortest, longest)
    }

    /// A lifetime between the bounds, whole milliseconds.
    func draw(using rng: inout SplitMix64) -> Duration {
        let span = (self.longest - self.shortest).nanosecondsClamped / 1_000_000
        guard span > 0 else { return self.shortest }
        return self.shortest + .milliseconds(Int64(rng.next() % UInt64(span + 1)))
    }
}

/// A client that sends requests at a fixed rate through the load balancer.
public struct ClientSpec: Hashable, Sendable {
    /// A name for reports.
    public var name: String
    /// Endpoints it calls, chosen uniformly.
    public var endpoints: [String]
    /// Requests per second (open loop, evenly spaced).
    public var rate: Double
    /// How long a request may take before its outcome counts as unknown.
    public var timeout: Duration
    /// How long the upstream takes to answer once the request reaches it.
    public var serviceTime: Duration
    /// True: the k-th endpoint is chosen with weight 1/k (Zipf, exponent 1); false: uniformly.
    public var zipf: Bool
    /// Nil: the client sends HTTP requests. Set: each tick opens a TCP connection on the proxy
    /// port's TCP route (`/_pico/v1/tcp/<endpoint>`, as `pico forward tcp` does); `timeout`
    /// bounds the wait for its 101, and once open it stays for a lifetime drawn from these
    /// bounds, then the client closes it.
    public var streams: StreamLifetimes?

    /// Creates a client description.
    public init(
        name: String, endpoints: [String], rate: Double, timeout: Duration = .seconds(5), serviceTime: Duration = .milliseconds(5),
        zipf: Bool = false, streams: StreamLifetimes? = nil
    ) {
        self.name = name
        self.endpoints = endpoints
        self.rate = rate
        self.timeout = timeout
        self.serviceTime = serviceTime
        self.zipf = zipf
        self.streams = streams
    }

    /// Picks an endpoint with this client's distribution.
    func pickEndpoint(using rng: inout SplitMix64) -> String {
        guard self.zipf, self.endpoints.count > 1 else { return self.endpoints[rng.index(below: self.endpoints.count)] }
        let total = (1...self.endpoints.count).reduce(0.0) { $0 + 1 / Double($1) }
        var point = rng.unitInterval() * total
        for (index, endpoint) in self.endpoints.enumerated() {
            point -= 1 / Double(index + 1)
            if point < 0 { return endpoint }
        }
        return self.endpoints[self.endpoints.count - 1]
    }
}

/// How one request ended, in Jepsen's terms: `ok`, `failed` (it certainly did not reach an
/// upstream) or `unknown` (it may have: the client cannot tell).
public enum RequestOutcome: Hashable, Sendable {
    /// Answered by an upstream.
    case ok
    /// Certainly not served, with the reason (a status from the proxy, or what refused it).
    case failed(String)
    /// The client got no answer, and the upstream may or may not have served it: no answer within
    /// the client's timeout, or the node carrying its stream stopped mid-request.
    case unknown(String)
}

/// What cut a TCP connection before the end of its lifetime.
public struct StreamCut: Hashable, Sendable {
    /// When.
    public var at: Instant
    /// The pod whose process stopped, or whose node closed the tunnel, under it.
    public var pod: Int
    /// True when that process was killed (a crash or SIGKILL), not shut down by itself.
    public var crashed: Bool
    /// That process's drain deadline (grace period minus its leave budget after SIGTERM), if it
    /// was shutting down.
    public var drainDeadline: Instant?

    /// True when the process ended the connection although it did not have to: it was not
    /// killed, and its drain deadline had not come (or it was not shutting down at all).
    public var early: Bool {
        guard !self.crashed else { return false }
        return self.drainDeadline.map { self.at < $0 } ?? true
    }
}

/// The life of one TCP connection (a client with `streams`).
public struct StreamRecord: Hashable, Sendable {
    /// How long it stays open once its 101 arrived.
    public var lifetime: Duration
    /// When its 101 reached the client (nil: not open yet, or never).
    public var openedAt: Instant?
    /// What cut it before its lifetime ended (nil: not cut).
    public var cut: StreamCut?
}

/// The client-side history of one request.
public struct RequestRecord: Hashable, Sendable {
    /// The request's number.
    public var id: UInt64
    /// The client index.
    public var client: Int
    /// The endpoint asked for.
    public var endpoint: String
    /// When the client sent it.
    public var issuedAt: Instant
    /// When it ended (nil while pending).
    public var finishedAt: Instant?
    /// How it ended (nil while pending).
    public var outcome: RequestOutcome?
    /// Pods it visited, in order (a forward that failed before it reached its pod and went to
    /// another holder adds only the pod that served it).
    public var path: [Int]
    /// Forwards in a row it went through (0: served by the entry pod; at most 1: one hop).
    public var hops = 0
    /// Whether a pod holding a tunnel of its endpoint was its entry pod or one the entry pod
    /// could exchange bytes with both ways, by the network's real state (not any node's view):
    /// when it arrived and, for a request that did not succeed, for at least
    /// `SimWorld.servableReachability` without a break during its life. Nil until it reached a pod.
    public var holderReachable: Bool?
    /// When a holder was reachable from its entry pod during its life (nil until it reached a pod).
    public var reachability: ReachabilityStretch?
    /// For a TCP connection: its life (nil for an HTTP request).
    public var stream: StreamRecord?
}

/// Agents, clients, the load balancer's view of readiness, and the request history.
public struct SimTraffic: Sendable {
    /// Where a tunnel landed: the pod (and its process) the load balancer sent it to.
    struct Placement: Hashable, Sendable {
        var agent: Int
        var pod: Int
        var boot: Int
        /// When the node registered it.
        var openedAt: Instant
    }

    /// An agent: PicoModel's `AgentMachine` decides; the world dials and delivers. Piko's agents
    /// dial again at once after a closed session (`backsOffAfterRefusal` off).
    struct Agent: Sendable {
        var spec: AgentSpec
        var machine: AgentMachine

        init(spec: AgentSpec) {
            self.spec = spec
            var settings = AgentMachine.Settings()
            settings.backsOffAfterRefusal = spec.kind == .pico
            self.machine = AgentMachine(settings: settings)
        }
    }

    /// A tunnel as the world sees it: the agent's view plus where it landed.
    struct PlacedTunnel: Hashable, Sendable {
        var id: TunnelID
        var pod: Int
        var boot: Int
        var moving: Bool
    }

    /// One request's exchange at one pod: where it runs and what it holds. Its machine is kept
    /// beside it in `ExchangeStore`, so reading or changing these few words never copies the
    /// machine.
    struct Exchange: Sendable {
        var pod: Int
        var boot: Int
        /// The tunnel the pod's node counts this request on (`.streamFinished` is owed).
        var countedTunnel: TunnelID?
        /// When the exchange's one pending timer event fires (nil: none pending); a later
        /// deadline waits for it, as a runtime connection keeps one timer.
        var timerDue: Instant?
        /// The connection its current forward went out on (nil: none); what comes back on
        /// another (an abandoned forward's) is dropped, as a reset connection's would be.
        var forwardConnection: UInt64?
        /// The connection it arrived on (0: from a client).
        var arrivedOn: UInt64 = 0
        /// The pod's node counts it among its relays (a forwarded TCP connection that is open;
        /// `.relayEnded` is owed).
        var relaying = false
    }

    /// One move rebalancing asked for.
    public struct RebalanceMove: Hashable, Sendable {
        /// When it was asked.
        public var time: Instant
        /// The pod that asked.
        public var pod: Int
        /// The agent asked to move.
        public var agent: Int
    }

    var agents: [Agent] = []
    /// Every move rebalancing asked for, in order.
    public internal(set) var rebalanceMoves: [RebalanceMove] = []
    var clients: [ClientSpec] = []
    /// What the load balancer believes about each pod's readiness (it learns with a lag).
    public internal(set) var believedReady: [Bool]
    var pendingBeliefs: [[Bool]] = []
    /// Every request, by number (index = id - 1).
    public internal(set) var history: [RequestRecord] = []
    /// Exchanges in progress, by request and hop, with their production machines.
    var exchanges = ExchangeStore()
    var placements: [TunnelID: Placement] = [:]
    /// The tenant whose agent answered each endpoint's first request (looked up, never iterated).
    var servingTenant: [String: String] = [:]
    /// Requests answered by an agent of another tenant than the endpoint's first: when, the
    /// agent, the endpoint, the first tenant (the first few only).
    public internal(set) var crossTenantAnswers: [(time: Instant, agent: String, endpoint: String, first: String)] = []
    /// TCP connections that opened on a tunnel of a shutting-down pod although their agent's
    /// replacement tunnel, reachable from the entry pod, had been open for the hand-over settle
    /// time: when, the request, the old tunnel's pod, since when the replacement was open (the
    /// first few only).
    public internal(set) var streamsOnOldTunnels: [(time: Instant, request: UInt64, pod: Int, replacementSince: Instant)] = []
    var nextTunnel: UInt64 = 1
    /// Numbers forward connections (one per forward attempt).
    var nextConnection: UInt64 = 1
    /// A forwarding process's pooled connections to a node (looked up, never iterated).
    struct PooledConnection: Hashable, Sendable {
        var from: Int
        var fromBoot: Int
        var to: NodeUID
    }
    /// Pairs that carried a forward already: later forwards reuse the pooled connection, so the
    /// holder's first-request heartbeat is sent once per pair.
    var pooledConnections: Set<PooledConnection> = []
    /// The last `heartbeatFieldValue(every:)`.
    var heartbeatField: (interval: Duration, value: String)?
    var rng: SplitMix64

    init(podCount: Int, rng: SplitMix64) {
        self.believedReady = Array(repeating: false, count: podCount)
        self.rng = rng
    }

    /// Requests by outcome: (ok, failed, unknown, pending).
    public var tally: (ok: Int, failed: Int, unknown: Int, pending: Int) {
        var tally = (ok: 0, failed: 0, unknown: 0, pending: 0)
        for record in self.history {
            switch record.outcome {
            case .ok: tally.ok += 1
            case .failed: tally.failed += 1
            case .unknown: tally.unknown += 1
            case nil: tally.pending += 1
            }
        }
        return tally
    }

    /// The tunnels agent `agent` holds, oldest first, with where each landed.
    func tunnels(of agent: Int) -> [PlacedTunnel] {
        self.agents[agent].machine.tunnels.compactMap { tunnel in
            self.placements[tunnel.id].map { PlacedTunnel(id: tunnel.id, pod: $0.pod, boot: $0.boot, moving: tunnel.moving) }
        }
    }

    /// `ForwardHeartbeat.requestValue(every:)`, worked out once per interval (every forward of a
    /// run asks with the same one).
    mutating func heartbeatFieldValue(every interval: Duration) -> String {
        if let known = self.heartbeatField, known.interval == interval { return known.value }
        let value = ForwardHeartbeat.requestValue(every: interval)
        self.heartbeatField = (interval, value)
        return value
    }

    /// A pod the load balancer would send a new connection to, at random among those it believes
    /// ready.
    mutating func pickPod() -> Int? {
        // The same draw as picking from a list of the ready pods, without building the list.
        let readyCount = self.believedReady.reduce(0) { $0 + ($1 ? 1 : 0) }
        guard readyCount > 0 else { return nil }
        var remaining = self.rng.index(below: readyCount)
        for pod in self.believedReady.indices where self.believedReady[pod] {
            if remaining == 0 { return pod }
            remaining -= 1
        }
        return nil
    }
}

/// One request's exchange at one hop: 0 at the pod the load balancer chose, 1 at the pod it was
/// forwarded to (2 only if that pod forwarded it again, which `at-most-one-hop` reports).
struct ExchangeKey: Hashable, Comparable, Sendable {
    var request: UInt64
    var hop: Int
    static func < (lhs: ExchangeKey, rhs: ExchangeKey) -> Bool { (lhs.request, lhs.hop) < (rhs.request, rhs.hop) }
}
