import PicoModel

/// One pod of the simulated StatefulSet: a stable name and, while it runs, one process (a
/// `ClusterNode`) with its own address, boot number and timers.
public struct SimPod: Sendable {
    /// What the pod's process is doing.
    public enum State: Hashable, Sendable {
        /// No process (never started, deleted, or crashed and not restarted).
        case down
        /// Running normally.
        case running
        /// Frozen (SIGSTOP): inputs wait in its inbox until it resumes.
        case paused
        /// The process asked to exit (graceful leave done, or join failed).
        case exited(Lifecycle.ExitReason)

        /// True for a process that exists and can receive input (running or paused).
        public var hasProcess: Bool {
            switch self {
            case .running, .paused: true
            case .down, .exited: false
            }
        }
    }

    /// Stable name, `pico-<index>`.
    public let name: String
    /// Position in the StatefulSet.
    public let index: Int
    /// The process's state.
    public internal(set) var state: State = .down
    /// The running (or last) process's machine.
    public internal(set) var node: ClusterNode?
    /// The node's invariant problems and table sizes (none without a node). A check that finds
    /// nothing remembers the node's stamp: the next one skips whatever reads only state written
    /// by no step since (`ClusterNode.checkInvariants(cleanAt:)`, which finds exactly what a
    /// whole check would).
    mutating func nodeHealth() -> (problems: [String], sizes: [TableSize]) {
        // One mutating call through `self.node?`, in place: reading the node's non-mutating
        // members through the optional still copied the whole node (a twentieth of the 20-pod
        // rollout's time).
        guard let health = self.node?.health(cleanAt: self.cleanStamp) else { return ([], []) }
        self.cleanStamp = health.problems.isEmpty ? health.stamp : nil
        return (health.problems, health.sizes)
    }

    /// The running node's stamp at its last invariant check, when that found nothing (nil: not
    /// checked clean yet). Reset with every new process: stamps of two processes do not compare.
    var cleanStamp: ClusterNode.InvariantStamp?

    /// How the node sees membership: the live members besides itself, and the first of `uids`
    /// (other than itself) it does not see as live; nil without a node. `mutating` for the same
    /// reason as `nodeHealth`.
    mutating func liveView(of uids: [NodeUID]) -> (others: Int, missing: NodeUID?)? {
        // Optional chaining, not `case .some(let node)`: binding the node copied it whole.
        guard let me = self.node?.me.uid, let others = self.node?.membership.liveMemberCount else { return nil }
        for uid in uids where uid != me && !(self.node?.membership.isLive(uid) ?? false) { return (others, uid) }
        return (others, nil)
    }

    /// True when a process (running or paused) has UID `uid`. `mutating` for the same reason as
    /// `nodeHealth` (a closure reading `pods[index].node?.me` copied the node's description).
    mutating func runs(_ uid: NodeUID) -> Bool {
        guard self.hasProcess else { return false }
        return self.node?.membership.me.uid == uid
    }

    /// The node's description (nil without a node). `ClusterNode.me` is computed, and a computed
    /// property read through the pods array (`pods[i].node?.me`) copied the whole pod, nodes
    /// included, per request; `mutating` so the read is in place.
    mutating func nodeInfo() -> NodeInfo? {
        self.node?.me
    }

    /// The node's endpoint table as endpoint → holder → listeners (empty without a node);
    /// `mutating` for the same reason as `nodeInfo`.
    mutating func endpointCounts() -> [String: [NodeUID: UInt32]] {
        self.node?.endpoints.countsByEndpoint ?? [:]
    }

    /// Adds this pod's running node's tunnels to `counts` (endpoint → holder UID → tunnels);
    /// `mutating` for the same reason as `nodeInfo`.
    mutating func countTunnels(into counts: inout [String: [NodeUID: UInt32]]) {
        guard self.state == .running, let uid = self.node?.me.uid else { return }
        for tunnel in self.node?.upstreams.allTunnels ?? [] { counts[tunnel.endpoint, default: [:]][uid, default: 0] += 1 }
    }

    /// Runs `body` with this pod's router, read in place (passing `pods[index].router` as an
    /// argument copied it, tables and all, once per request); `mutating` for that reason only.
    mutating func withRouter<Result>(_ body: (LoopRouter) -> Result) -> Result {
        body(self.router)
    }

    /// Increases with every start; events for an older boot are discarded.
    public internal(set) var boot = 0
    /// The current process's gossip address (a fresh pod IP per boot).
    public internal(set) var address: Address?
    /// What `/ready` answers.
    public internal(set) var ready = false
    /// Since when it has been ready (nil while not ready).
    public internal(set) var readySince: Instant?
    var timerGenerations: [TimerID: UInt64] = [:]
    /// The process's data-loop router, kept current by its node's `.routingChanged` directives
    /// (the simulated process has one data loop).
    public internal(set) var router = LoopRouter(loop: 0, seed: 0)
    /// Exchanges waiting here for routing to learn a holder, in arrival order.
    var waiting: [ExchangeKey] = []
    var steps = 0
    var inbox: [SimEvent] = []

    /// Creates a pod that is not running.
    public init(name: String, index: Int) {
        self.name = name
        self.index = index
    }

    /// True when a process exists and can receive input (running or paused). Through the pods
    /// array, read `pods[i].state.hasProcess`: a computed property of the pod itself copies the
    /// whole pod (2 KB, and every table of its node retained) to compute it.
    public var hasProcess: Bool {
        self.state.hasProcess
    }
}

/// Everything that can happen in the simulated world, in the event queue.
public enum SimEvent: Sendable {
    /// A timer of pod `pod`'s boot `boot` fired (stale unless its generation is current).
    case timer(pod: Int, boot: Int, id: TimerID, generation: UInt64)
    /// An input for pod `pod`'s boot `boot` (datagram, stream message, DNS answer, …).
    case input(pod: Int, boot: Int, ClusterInput)
    /// A world action at this time (scenario timeline).
    case action(Int)
    /// The DNS answer catches up with the next readiness listing (after `dnsLag`).
    case dnsRefresh
    /// The kubelet restarts pod `pod`'s exited container (after `recover`).
    case kubeletRestart(pod: Int)
    /// Agents, clients and the load balancer.
    case traffic(TrafficEvent)
    /// Nemesis attack `id` sends its next forged input.
    case nemesis(id: Int)
}

/// Events of the traffic layer.
public enum TrafficEvent: Sendable {
    /// The load balancer now believes these readiness values.
    case believe([Bool])
    /// Agent `agent` tries to open a tunnel through the load balancer.
    case agentConnect(agent: Int)
    /// Agent `agent`'s connection reaches pod `pod` (boot `boot`).
    case tunnelArrives(agent: Int, pod: Int, boot: Int)
    /// Client `client` sends its next request.
    case clientTick(client: Int)
    /// Request `request` reaches pod `pod` (boot `boot`); `forwarded` when another pod sent it.
    /// A forwarded one comes on connection `connection` (0 for a client's).
    case requestArrives(request: UInt64, pod: Int, boot: Int, fromHop: Int?, connection: UInt64)
    /// The upstream's answer to `request`'s stream at hop `hop` is back at its pod.
    case streamDone(request: UInt64, hop: Int)
    /// A timer `request`'s exchange at hop `hop` (on that pod's boot `boot`) asked for fired.
    case exchangeTimer(request: UInt64, hop: Int, boot: Int)
    /// The forward of `request`'s exchange at hop `hop` failed having got `progress` far.
    /// `connection` is the forward's (see `SimTraffic.Exchange.forwardConnection`): an event of an
    /// abandoned forward is dropped.
    case forwardFailed(request: UInt64, hop: Int, connection: UInt64, progress: UpstreamProgress)
    /// The answer of the pod `request` was forwarded to reached its exchange at hop `hop`.
    case peerAnswered(request: UInt64, hop: Int, connection: UInt64, outcome: RequestOutcome)
    /// The pod `request` was forwarded to answered that it reached no upstream there
    /// (`UnservedForward`); the answer reached its exchange at hop `hop`.
    case forwardUnserved(request: UInt64, hop: Int, connection: UInt64)
    /// A heartbeat of the pod `request` was forwarded to reached its exchange at hop `hop`.
    case hopHeartbeat(request: UInt64, hop: Int, connection: UInt64)
    /// TCP retransmits `event`, which pod `from` (boot `boot`) sent back to the exchange at
    /// hop `hop` of `request` while the way was cut (`attempt` retransmissions so far).
    indirect case resend(TrafficEvent, from: Int, boot: Int, request: UInt64, hop: Int, connection: UInt64, attempt: Int)
    /// The 101 of the pod `request` was forwarded to (a TCP connection its agent accepted)
    /// reached its exchange at hop `hop`.
    case peerUpgraded(request: UInt64, hop: Int, connection: UInt64)
    /// The client closes TCP connection `request` at the end of its lifetime.
    case streamClosed(request: UInt64)
    /// The client gives up on `request`.
    case requestTimeout(request: UInt64)
    /// The rollout controller checks its progress.
    case rolloutTick
    /// The surge rollout controller checks its progress.
    case surgeRolloutTick
}

extension ClusterNode {
    /// `checkInvariants(cleanAt:)`, `invariantStamp` and `tableSizes` together. `mutating` only
    /// so that a call through an optional stored in an array element runs on the node in place.
    fileprivate mutating func health(cleanAt stamp: InvariantStamp?) -> (problems: [String], stamp: InvariantStamp, sizes: [TableSize]) {
        (self.checkInvariants(cleanAt: stamp), self.invariantStamp, self.tableSizes)
    }
}
