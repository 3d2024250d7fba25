/// The settings one node's exchanges share.
public struct ExchangeSettings: Hashable, Sendable {
    /// How long an upstream may take to start its answer (`proxy.timeout`; zero: no limit).
    /// Upgrade requests (WebSocket) and CONNECT are not timed.
    public var upstreamTimeout: Duration
    /// How long a request for an endpoint with no known holder waits for routing to learn one
    /// (`proxy.upstream_wait`; zero: answer 502 at once).
    public var holderWait: Duration
    /// How often one request may move between data loops (a second move happens only when its
    /// tunnel closed while the connection was on its way).
    public var maxMoves: Int
    /// How long a forward's dial to another node may take (`proxy.forward_dial_timeout`), and
    /// how long its request bytes may go unacknowledged (`TCP_USER_TIMEOUT`): short, so a forward
    /// to a node this one cannot reach fails in time for another holder to answer within a
    /// typical client timeout.
    public var forwardDialTimeout: Duration
    /// How long a forward to a heartbeat-capable node may go without a byte from it before its
    /// answer starts (`proxy.forward_answer_timeout`; zero: no such limit), counted from the
    /// forward's start plus `forwardDialTimeout`, then from each heartbeat. The node is asked for
    /// a heartbeat every third of it (`ForwardHeartbeat`), so only a lost hop stays silent this
    /// long, never a slow upstream.
    public var forwardAnswerTimeout: Duration {
        didSet { self.heartbeatInterval = Self.heartbeatInterval(for: self.forwardAnswerTimeout) }
    }

    /// Piko's `proxy.timeout` (30 s), a 1 s wait for a holder, two moves, a 1 s forward dial, a
    /// 1 s forward silence.
    public init(upstreamTimeout: Duration = .seconds(30), holderWait: Duration = .seconds(1), maxMoves: Int = 2,
                forwardDialTimeout: Duration = .seconds(1), forwardAnswerTimeout: Duration = .seconds(1)) {
        self.upstreamTimeout = upstreamTimeout
        self.holderWait = holderWait
        self.maxMoves = maxMoves
        self.forwardDialTimeout = forwardDialTimeout
        self.forwardAnswerTimeout = forwardAnswerTimeout
        self.heartbeatInterval = Self.heartbeatInterval(for: forwardAnswerTimeout)
    }

    /// The heartbeat interval a forward asks for: a third of `forwardAnswerTimeout`, so two
    /// heartbeats may be lost or late before the forward counts as lost (nil: none asked).
    /// Kept with the timeout (a `Duration` division costs hundreds of instructions, and every
    /// forward asks).
    public private(set) var heartbeatInterval: Duration?

    private static func heartbeatInterval(for forwardAnswerTimeout: Duration) -> Duration? {
        forwardAnswerTimeout > .zero ? forwardAnswerTimeout / 3 : nil
    }
}

/// The clocks of a sent exchange, and what its client heard before the answer's head.
public struct SentTiming: Hashable, Sendable {
    /// No answer head by then: 504 (nil: not timed, as upgrades and CONNECT).
    public var answerDeadline: Instant?
    /// A forward to a heartbeat-capable node: nothing from it by then means the hop is lost.
    public var hopSilentAfter: Instant?
    /// At the holder of a forward that asked for heartbeats: when the next one is due.
    public var nextHeartbeat: Instant?
    /// An interim answer of the upstream's (`100 Continue`, `103`) reached the client: the
    /// request may not go elsewhere any more.
    public var clientHeardInterim = false
    /// The forward went silent, no other holder was left, and the request may still go
    /// elsewhere: it waits on its connection, and watches routing for a way out (another holder,
    /// or the node found reachable again: `LoopRouter.timesReachedAgain` above this count).
    public var reachedAgainAtSilence: UInt64?

    /// When the exchange's timer is due next (nil: never).
    public var nextTimer: Instant? {
        Self.earlier(Self.earlier(self.answerDeadline, self.hopSilentAfter), self.nextHeartbeat)
    }

    private static func earlier(_ one: Instant?, _ other: Instant?) -> Instant? {
        guard let one else { return other }
        guard let other else { return one }
        return min(one, other)
    }
}

/// Where an exchange's request went.
public enum ExchangeUpstreamKind: Hashable, Sendable {
    /// A stream on this node's tunnel.
    case tunnel(TunnelID)
    /// A forward to another node (`x-pico-forward: true`, one hop).
    case peer(NodeUID, name: String)
}

/// What the shell does next for one exchange.
public enum ExchangeAction: Hashable, Sendable {
    /// Open a stream on local tunnel `id` (on this loop) and send the request on it; arm the
    /// exchange's timer for `deadline` when given. An upstream the exchange had before is reset.
    case openStream(TunnelID, deadline: Instant?)
    /// Forward the request to `uid` at `proxyAddress` (asking for heartbeats as
    /// `heartbeatRequest` says); arm the exchange's timer for `deadline`. An upstream the
    /// exchange had before is reset.
    case forward(uid: NodeUID, name: String, proxyAddress: Address, deadline: Instant?)
    /// Hand the connection (with the request) to data loop `loop`, where it starts again.
    case move(toLoop: Int)
    /// Keep the request until routing changes (offer `.routingChanged`) or `until` passes
    /// (offer `.timerFired`).
    case wait(until: Instant)
    /// Keep going; the exchange's timer is now due at `deadline` (offer `.timerFired` then).
    case armTimer(Instant)
    /// Keep the upstream and keep waiting for its answer, but offer `.routingChanged` as routing
    /// changes (the forward went silent: a way out may open), and `.timerFired` at `until`.
    case watchRouting(until: Instant?)
    /// Write a heartbeat (`ForwardHeartbeat.interimBytes`) to the node that forwarded the
    /// request, and arm the exchange's timer for `next`.
    case heartbeat(next: Instant)
    /// Answer with this status and Piko's JSON error message; the request body, if any, is read
    /// and dropped. `close` when the connection must not carry another request.
    case answer(status: Int, message: String, close: Bool)
    /// Answer a request another node forwarded, which reached no upstream here, as `.answer`
    /// does, with `UnservedForward.header` added: the forwarding node may send it elsewhere.
    case answerUnserved(status: Int, message: String)
    /// Part of the answer reached the client already: the only way left to report a failure is
    /// closing the connection.
    case closeConnection
    /// Nothing to do.
    case none
}

/// A fact about reachability the exchange learned, for the node (see `Reachability`).
public enum ReachabilityReport: Hashable, Sendable {
    /// A forward to the member failed before any answer byte.
    case unreachable(NodeUID)
    /// The member answered a forward although the loop held evidence against it.
    case reachable(NodeUID)
    /// The loop just learned that the member heartbeats forwards (every loop should hold its
    /// silence against it); when `wasUnreachable`, it is also reachable again (its heartbeat
    /// came over the forward's connection).
    case heartbeats(NodeUID, wasUnreachable: Bool)
}

/// What one proxied request does at one node, from its head to its answer: where it is routed
/// (a local tunnel, another loop, another node, or a wait for routing to learn a holder), when a
/// failed forward goes to another holder, when it times out and which status it is answered
/// with. Both shells run it: the runtime's proxy connections and the simulator's requests. It
/// reads routing from the caller's `LoopRouter` and tells the node what it learned about
/// reachability; it performs no I/O and reads no clock.
///
/// Status rules: a port with auth refuses a request without a token that verifies and permits
/// its endpoint, 401 with Piko's message, before anything else; `/_pico…` and `/_piko…` paths
/// 404, except the TCP route, whose bad handshakes get `TCPRoute`'s 400, 403, 405 or 426; no
/// endpoint 400; an endpoint ID too long 400; no holder
/// (after the wait) 502 `no available upstreams`; a failed upstream 502 `upstream
/// unreachable`; no answer within `upstreamTimeout` 504 `upstream timeout`.
///
/// A forwarded request that finds no holder here is answered `.answerUnserved`; the forwarding
/// node, told so (`forwardUnserved`), sends it to another holder (`UnservedForward`).
///
/// Hop liveness (`ForwardHeartbeat`): a forward asks its node for heartbeats; at the holder, the
/// exchange of such a forward asks its shell to write one every interval until the answer
/// starts; at the forwarding node, a forward to a node known to heartbeat that hears nothing for
/// `forwardAnswerTimeout` counts as failed before any answer byte (evidence against the node; an
/// idempotent bodyless request goes to another holder).
public struct RequestExchange: Sendable {
    /// Where the exchange is in its life.
    public enum State: Hashable, Sendable {
        /// The head arrived; not routed yet.
        case received
        /// No holder is known yet: waiting, at most until `until`, for routing to learn one.
        case waitingForHolder(until: Instant)
        /// Moving to data loop `loop` (it starts again there as a new exchange).
        case moving(toLoop: Int)
        /// Sent to an upstream; no answer head reached the client yet.
        case sent(ExchangeUpstreamKind, SentTiming)
        /// The upstream's answer is reaching the client.
        case answering(ExchangeUpstreamKind)
        /// The exchange answered (with `status`) or failed; nothing more happens.
        case finished(status: Int)
    }

    /// The request's endpoint, from `x-pico-endpoint`, `x-piko-endpoint` or the `Host` label.
    public let endpoint: String?
    /// Why the request's Pico and Piko fields cannot be believed (they name different endpoints,
    /// or carry different tokens): answered 400 with this message, after a refused token's 401
    /// and before anything else (nil: they agree, or only one of each pair is given).
    let fieldConflict: String?
    /// The request carries `x-pico-forward: true` from a member: with sealed gossip, with a
    /// `ForwardProof` that verified; without, from a live member's proxy host. A peer forwarded
    /// it, so its `X-Forwarded-Proto` and `-Host` are the peer's and are kept. From anyone else
    /// the mark is not trusted for those headers.
    public let arrivedFromPeer: Bool
    /// The request carries `x-pico-forward: true`, trusted or not: it is never forwarded (one
    /// hop). A sender the node does not know as a member yet (it joined moments ago, or forged
    /// gossip hid it) must not make requests bounce between nodes; a client that sets the mark
    /// only keeps its own request from being forwarded.
    public let forwardMarked: Bool
    /// What the port's token check said (`.open` without auth), already narrowed to the
    /// endpoint. A granted token's header never reaches the upstream service.
    public let access: RequestAccess
    let method: String
    let framing: HTTPBodyFraming
    /// The path is under `/_pico` or Piko's `/_piko` and is not the TCP route: reserved, answered
    /// 404, never access-logged.
    public let isPicoPath: Bool
    /// The request asks for the TCP route (`TCPRoute`): its handshake, or why it is refused.
    /// Until its `101` it is routed and timed as a bodyless request; the node that holds a
    /// tunnel answers it itself once the agent accepted the stream (`.openStream`).
    public let tcpRoute: TCPRoute.Reading
    /// An upgrade (WebSocket) or CONNECT: bytes may follow the head at once, and it is not timed.
    let isTunnelled: Bool
    let settings: ExchangeSettings
    /// A peer forwarded the request and asks for a heartbeat this often (trusted only from a
    /// member's proxy host).
    public let heartbeatsOwed: Duration?
    /// The first request its connection carried: its first heartbeat goes out at once, so the
    /// forwarding node learns this node heartbeats even when answers are fast.
    let firstOnConnection: Bool
    /// No answer head by then: 504 (set by the first upstream it is sent to; a retry keeps it).
    private var answerDeadline: Instant?
    /// Where it is.
    public private(set) var state: State = .received
    /// Times its connection moved between loops for it so far.
    public private(set) var moves: Int
    /// Nodes a forward of it failed on before they answered; routing skips them.
    public private(set) var avoiding: [NodeUID]
    /// Times every holder had failed it and it waited for the way to one to open again.
    public private(set) var waitRounds = 0
    /// Times it began waiting for routing to learn a holder (the first wait, and the wait after
    /// every holder failed); a request that waited at all counts once in the node's metrics.
    public private(set) var holderWaits = 0
    /// Waits after every holder failed that one request may take: one, so a partition that
    /// heals within `holderWait` of the last failure still serves it.
    public static let maxWaitRounds = 1

    /// A new exchange for `head` (whose body framing is `framing`), from a client at
    /// `clientHost` (as the socket reports it; nil when unknown), read by a loop whose router is
    /// `router`. `moves`, `avoiding` and `holderWaits` carry over when the connection moved here for it;
    /// `firstOnConnection` when it is the first request its connection carries.
    public init(head: HTTPRequestHead, framing: HTTPBodyFraming, clientHost: String?, router: borrowing LoopRouter,
                settings: ExchangeSettings, access: RequestAccess = .open, forwardProof: ForwardProof.Check = .notApplicable,
                moves: Int = 0, avoiding: [NodeUID] = [], holderWaits: Int = 0, firstOnConnection: Bool = false) {
        // Two different tokens matter only where a token is read (a port with auth).
        let tokens = access == .open ? nil : HTTPProxyRules.authorizationDisagreement(in: head.headers)
        switch HTTPProxyRules.endpointNaming(of: head) {
        case .named(let endpoint):
            (self.endpoint, self.fieldConflict) = (endpoint, tokens)
        case .unnamed:
            (self.endpoint, self.fieldConflict) = (nil, tokens)
        case .conflicting(let message):
            (self.endpoint, self.fieldConflict) = (nil, message)
        }
        let marked = head.headers.first("x-pico-forward") == "true"
        self.forwardMarked = marked
        switch forwardProof {
        // The router is borrowed (an initializer's parameter is otherwise a copy of all its
        // tables, released again at the end).
        case .notApplicable:
            if marked, let clientHost { self.arrivedFromPeer = router.isPeerHost(clientHost) } else { self.arrivedFromPeer = false }
        case .verified: self.arrivedFromPeer = marked
        case .refused: self.arrivedFromPeer = false
        }
        // Every node checks the token itself, forwarded or not: a member's proof says who sent
        // the request, not what that member's own auth settings let through.
        self.access = access.restricted(to: self.endpoint)
        self.method = head.method
        self.framing = framing
        // An origin-form target starts with its path (which ends at `?` or `#`, in neither
        // prefix), so the prefix is read without building the path. `/_piko` is Piko's reserved
        // path, kept from upstreams as `/_pico` is.
        let path = head.target.hasPrefix("/") ? Substring(head.target) : Substring(head.path)
        let reserved = path.hasPrefix("/_pico") || path.hasPrefix("/_piko")
        self.tcpRoute = reserved ? TCPRoute.read(head) : .notTCPRoute
        self.isPicoPath = reserved && self.tcpRoute == .notTCPRoute
        // The TCP route is answered by a node, not relayed from an upstream: nothing follows its
        // head until the 101, so it is timed and may wait and retry as a bodyless request.
        self.isTunnelled = (head.isUpgrade || head.method == "CONNECT") && self.tcpRoute == .notTCPRoute
        self.heartbeatsOwed = self.arrivedFromPeer && !self.isTunnelled
            ? ForwardHeartbeat.interval(requestedBy: head.headers.first(ForwardHeartbeat.header)) : nil
        self.settings = settings
        self.moves = moves
        self.avoiding = avoiding
        self.holderWaits = holderWaits
        self.firstOnConnection = firstOnConnection
    }

    /// Routes the request (once, after `init`).
    public mutating func start(router: inout LoopRouter, mayWait: Bool, now: Instant) -> ExchangeAction {
        guard case .received = self.state else { return .none }
        if case .refused(let failure) = self.access { return self.finish(answering: 401, failure.message) }
        if let conflict = self.fieldConflict { return self.finish(answering: 400, conflict) }
        if self.isPicoPath { return self.finish(answering: 404, "not found") }
        if case .refused(let status, let message) = self.tcpRoute { return self.finish(answering: status, message) }
        return self.route(router: &router, mayWait: mayWait, now: now)
    }

    /// The local tunnel the last decision named is gone or closing (this loop knows before the
    /// node's change arrives): routes again without it (and may wait for a holder, as at the
    /// start: during a hand-over the replacement may not be known yet).
    public mutating func tunnelUnavailable(_ id: TunnelID, router: inout LoopRouter, mayWait: Bool, now: Instant) -> ExchangeAction {
        guard case .sent(.tunnel(id), _) = self.state else { return .none }
        router.finishStream(on: id)
        router.apply(.tunnelRemoved(id))
        self.state = .received
        return self.route(router: &router, mayWait: mayWait, now: now)
    }

    /// The stream the last decision opened never reached the agent (its tunnel said go-away
    /// while the stream waited for a place to open): a request with nothing after its head, or
    /// the TCP route (which sends the agent nothing before its 101), routes again without the
    /// tunnel, as in `tunnelUnavailable`; any other request lost what it sent, and fails as a
    /// failed tunnel stream does (502).
    public mutating func streamRefused(router: inout LoopRouter, mayWait: Bool, now: Instant) -> ExchangeAction {
        guard case .sent(.tunnel(let id), _) = self.state else { return .none }
        guard self.framing == .none, !self.isTunnelled else {
            return self.upstreamFailed(progress: .answered, router: &router, mayWait: mayWait, now: now).0
        }
        return self.tunnelUnavailable(id, router: &router, mayWait: mayWait, now: now)
    }

    /// The local tunnel the last decision named carries as many streams as it may (yamux's
    /// `maxStreams`): it stays in routing (it is busy, not gone), and the request gets 503
    /// `upstream has too many open streams`; nothing was sent.
    public mutating func tunnelFull(_ id: TunnelID, router: inout LoopRouter) -> ExchangeAction {
        guard case .sent(.tunnel(id), _) = self.state else { return .none }
        router.finishStream(on: id)
        return self.finish(answering: 503, "upstream has too many open streams")
    }

    /// Routing changed while the request waits for a holder: routes again if one appeared. While
    /// it waits on a forward that went silent (`.watchRouting`): goes to another holder that
    /// appeared, or sends itself again, on a fresh connection, to the silent node once it is found
    /// reachable again (it answered another forward, or a direct probe: the cut healed, and TCP's
    /// retransmission backoff could hold the old connection's answer for seconds more). `.none`:
    /// nothing to watch any more.
    public mutating func routingChanged(router: inout LoopRouter, now: Instant) -> ExchangeAction {
        if case .sent(.peer(let uid, _), let timing) = self.state, let reachedAgain = timing.reachedAgainAtSilence {
            return self.silentForwardRoutingChanged(uid: uid, timing: timing, reachedAgain: reachedAgain, router: &router, now: now)
        }
        guard case .waitingForHolder(let until) = self.state else { return .none }
        self.state = .received
        let action = self.route(router: &router, mayWait: false, now: now)
        if case .answer(502, _, _) = action, now < until {
            // Still nobody: keep waiting until the deadline.
            self.state = .waitingForHolder(until: until)
            return .wait(until: until)
        }
        return action
    }

    /// A timer the exchange asked for fired: the holder wait ends (route once more, else 502);
    /// the upstream did not start its answer in time (504); a forward's node went silent (as a
    /// failure before any answer byte: evidence, and another holder when the request allows);
    /// or a heartbeat is due. Early, it only re-arms.
    public mutating func timerFired(router: inout LoopRouter, now: Instant) -> (ExchangeAction, ReachabilityReport?) {
        switch self.state {
        case .waitingForHolder(let until):
            guard now >= until else { return (.wait(until: until), nil) }
            self.state = .received
            return (self.route(router: &router, mayWait: false, now: now), nil)
        case .sent(let upstream, var timing):
            if let deadline = timing.answerDeadline, now >= deadline {
                self.release(upstream, router: &router)
                return (self.finish(answering: 504, "upstream timeout", close: true), nil)
            }
            if let silent = timing.hopSilentAfter, now >= silent, case .peer(let uid, _) = upstream {
                return self.hopWentSilent(upstream, uid: uid, timing: timing, router: &router, now: now)
            }
            if let due = timing.nextHeartbeat, now >= due, let interval = self.heartbeatsOwed {
                timing.nextHeartbeat = now + interval
                self.state = .sent(upstream, timing)
                return (.heartbeat(next: timing.nextTimer ?? now + interval), nil)
            }
            return (timing.nextTimer.map { .armTimer($0) } ?? .none, nil)
        default:
            return (.none, nil)
        }
    }

    /// Nothing came from forward target `uid` for `forwardAnswerTimeout`: evidence against it.
    /// The request goes to another holder when it may be repeated and one is left; otherwise it
    /// keeps waiting for this node's answer (a way back that heals delivers it) until the answer
    /// deadline, and a heartbeat that arrives starts the silence clock again.
    private mutating func hopWentSilent(_ upstream: ExchangeUpstreamKind, uid: NodeUID, timing: SentTiming, router: inout LoopRouter, now: Instant) -> (ExchangeAction, ReachabilityReport?) {
        let report = ReachabilityReport.unreachable(uid)
        let mayGoElsewhere = ForwardRetry.mayRetry(method: self.method, framing: self.framing, progress: .unanswered,
                                                   clientAnswered: timing.clientHeardInterim, retries: self.avoiding.count)
        if mayGoElsewhere, let next = self.routeAvoiding(uid, router: &router, now: now) {
            return (next, report)
        }
        var waiting = timing
        waiting.hopSilentAfter = nil
        guard mayGoElsewhere else {
            self.state = .sent(upstream, waiting)
            return (waiting.nextTimer.map { .armTimer($0) } ?? .none, report)
        }
        waiting.reachedAgainAtSilence = router.timesReachedAgain(uid)
        self.state = .sent(upstream, waiting)
        return (.watchRouting(until: waiting.nextTimer), report)
    }

    /// Routes the request again without `uid` (a forward to it went silent); nil, with nothing
    /// changed, when no other way is left.
    private mutating func routeAvoiding(_ uid: NodeUID, router: inout LoopRouter, now: Instant) -> ExchangeAction? {
        let before = self
        self.avoiding.append(uid)
        self.state = .received
        let next = self.route(router: &router, mayWait: false, now: now)
        if case .answer = next {
            self = before
            return nil
        }
        return next
    }

    /// Routing changed while the request waits on a silent forward to `uid` (see `routingChanged`).
    private mutating func silentForwardRoutingChanged(uid: NodeUID, timing: SentTiming, reachedAgain: UInt64,
                                                     router: inout LoopRouter, now: Instant) -> ExchangeAction {
        if router.timesReachedAgain(uid) > reachedAgain {
            // The way to it works again: send the request again on a fresh connection (any holder
            // routing prefers now, this one included), abandoning the old connection.
            let before = self
            self.state = .received
            let next = self.route(router: &router, mayWait: false, now: now)
            guard case .answer = next else { return next }
            self = before
        } else if let next = self.routeAvoiding(uid, router: &router, now: now) {
            return next
        }
        return .watchRouting(until: timing.nextTimer)
    }

    /// The forward's node sent a heartbeat: it is alive, reachable and heartbeat-capable (the
    /// only proof of that: a mark or field could come from anything between the nodes), and the
    /// silence clock starts again. Returns the timer to arm, and news for the node: that the
    /// member heartbeats, when the loop did not know, and that it is reachable, if doubted.
    public mutating func heardFromHop(router: inout LoopRouter, now: Instant) -> (ExchangeAction, ReachabilityReport?) {
        guard case .sent(.peer(let uid, let name), var timing) = self.state else { return (.none, nil) }
        let learned = router.learnHeartbeats(uid)
        // Alive after all: no more watching for a way around it.
        timing.reachedAgainAtSilence = nil
        if self.settings.forwardAnswerTimeout > .zero { timing.hopSilentAfter = now + self.settings.forwardAnswerTimeout }
        self.state = .sent(.peer(uid, name: name), timing)
        let doubted = router.isUnreachable(uid)
        let report: ReachabilityReport? = learned ? .heartbeats(uid, wasUnreachable: doubted) : doubted ? .reachable(uid) : nil
        return (timing.nextTimer.map { .armTimer($0) } ?? .none, report)
    }

    /// What an interim answer (1xx) from the upstream means, and what to do with it.
    public enum InterimAnswer: Hashable, Sendable {
        /// The heartbeat of the node this request was forwarded to: the client hears nothing of
        /// it. Carry out the action and tell the node the report.
        case heartbeat(ExchangeAction, ReachabilityReport?)
        /// The upstream's own: write `head` to the client (stripped of the heartbeat field, which
        /// only a holder may send), then carry out the action.
        case relay(HTTPResponseHead, ExchangeAction)
    }

    /// An interim answer arrived from the upstream, before its answer head. A `102` with the
    /// heartbeat field counts as the hop's heartbeat only on a forward (a tunnel's upstream
    /// cannot pose as a node); any other is relayed to the client, without the field.
    public mutating func interimAnswer(_ head: HTTPResponseHead, router: inout LoopRouter, now: Instant) -> InterimAnswer {
        if self.peer != nil, ForwardHeartbeat.isHeartbeat(head) {
            let (action, report) = self.heardFromHop(router: &router, now: now)
            return .heartbeat(action, report)
        }
        var relayed = head
        if relayed.headers.contains(ForwardHeartbeat.header) { relayed.headers.remove(ForwardHeartbeat.header) }
        return .relay(relayed, self.interimRelayed(now: now))
    }

    /// An interim answer of the upstream's (`100 Continue`, `103 Early Hints`) reached the
    /// client: the request can no longer go elsewhere, and a forward's node is alive. Returns
    /// the timer to arm.
    public mutating func interimRelayed(now: Instant) -> ExchangeAction {
        guard case .sent(let upstream, var timing) = self.state else { return .none }
        timing.clientHeardInterim = true
        timing.reachedAgainAtSilence = nil
        if timing.hopSilentAfter != nil { timing.hopSilentAfter = now + self.settings.forwardAnswerTimeout }
        self.state = .sent(upstream, timing)
        return timing.nextTimer.map { .armTimer($0) } ?? .none
    }

    /// The upstream's answer head reached the client (interim answers aside). Returns what the
    /// node should learn: a peer that answered is reachable, if the loop doubted it.
    public mutating func answerStarted(router: LoopRouter) -> ReachabilityReport? {
        guard case .sent(let upstream, _) = self.state else { return nil }
        self.state = .answering(upstream)
        if case .peer(let uid, _) = upstream, router.isUnreachable(uid) { return .reachable(uid) }
        return nil
    }

    /// The heartbeat interval to ask of the node a forward goes to (`ForwardHeartbeat`); nil for
    /// a request that is not being forwarded, or is not timed (upgrades and CONNECT).
    public var heartbeatRequest: Duration? {
        guard case .sent(.peer, _) = self.state, !self.isTunnelled else { return nil }
        return self.settings.heartbeatInterval
    }

    /// The upstream failed after getting `progress` far with the request. A forward that failed
    /// before any answer byte is evidence against its node and, when `ForwardRetry` allows, goes
    /// to another holder; when every holder failed, a request that may wait (`mayWait`: the
    /// shell's waiting list has room) waits once, up to `holderWait`, for the way to one to open
    /// again (a partition that cut them all may heal), then tries them all again; otherwise 502
    /// (or, once the answer started, a close).
    public mutating func upstreamFailed(progress: UpstreamProgress, router: inout LoopRouter, mayWait: Bool = false, now: Instant) -> (ExchangeAction, ReachabilityReport?) {
        switch self.state {
        case .sent(let upstream, let timing):
            self.release(upstream, router: &router)
            guard case .peer(let uid, _) = upstream else {
                return (self.finish(answering: 502, "upstream unreachable", close: true), nil)
            }
            // The node weighs the evidence and tells every loop (this one included).
            let report: ReachabilityReport? = progress == .answered ? nil : .unreachable(uid)
            if ForwardRetry.mayRetry(method: self.method, framing: self.framing, progress: progress,
                                     clientAnswered: timing.clientHeardInterim, retries: self.avoiding.count) {
                self.avoiding.append(uid)
                self.state = .received
                return (self.route(router: &router, mayWait: mayWait, now: now), report)
            }
            return (self.finish(answering: 502, "upstream unreachable", close: true), report)
        case .answering(let upstream):
            self.release(upstream, router: &router)
            self.state = .finished(status: 0)
            return (.closeConnection, nil)
        default:
            return (.none, nil)
        }
    }

    /// The node this request was forwarded to answered that it reached no upstream there
    /// (`UnservedForward`: its last tunnel for the endpoint closed before gossip said so). The
    /// request goes to another holder when `ForwardRetry` allows it for a request that was never
    /// sent (no evidence against the node: it answered); when none is left, a request that may
    /// wait (`mayWait`) waits for routing to learn one, as at the start; otherwise 502 `no
    /// available upstreams`. The shell abandons the forward's connection first; `.none` (no
    /// forward is in flight) asks nothing of it.
    public mutating func forwardUnserved(router: inout LoopRouter, mayWait: Bool, now: Instant) -> ExchangeAction {
        guard case .sent(.peer(let uid, _), let timing) = self.state else { return .none }
        guard ForwardRetry.mayRetry(method: self.method, framing: self.framing, progress: .unsent,
                                    clientAnswered: timing.clientHeardInterim, retries: self.avoiding.count) else {
            return self.finish(answering: RouteRejection.noAvailableUpstreams.status, RouteRejection.noAvailableUpstreams.message)
        }
        self.avoiding.append(uid)
        self.state = .received
        let next = self.route(router: &router, mayWait: mayWait, now: now)
        if case .answer(let status, _, _) = next, status == RouteRejection.noAvailableUpstreams.status {
            return self.finish(answering: status, RouteRejection.noAvailableUpstreams.message)
        }
        return next
    }

    /// The node already holds as many connections to the forward's target as it may
    /// (`proxy.forward_max_connections`): the request was not sent, so it goes to another
    /// holder when one is left (no evidence: the target is busy, not unreachable), else 503.
    public mutating func forwardRefused(router: inout LoopRouter, now: Instant) -> ExchangeAction {
        guard case .sent(.peer(let uid, let name), _) = self.state else { return .none }
        if ForwardRetry.mayRetry(method: self.method, framing: self.framing, progress: .unsent, clientAnswered: false, retries: self.avoiding.count) {
            self.avoiding.append(uid)
            self.state = .received
            let next = self.route(router: &router, mayWait: false, now: now)
            if case .answer(502, _, _) = next { return self.finish(answering: 503, "too many requests forwarded to \(name)") }
            return next
        }
        return self.finish(answering: 503, "too many requests forwarded to \(name)")
    }

    /// The request itself broke before any answer reached the client (a malformed body, or a
    /// body that stopped arriving): its upstream, if any, is abandoned and the client gets
    /// `status` (the decoder's 400, 413 or 431, or 408), then the connection closes.
    public mutating func requestBroken(status: Int, message: String, router: inout LoopRouter) -> ExchangeAction {
        switch self.state {
        case .answering(let upstream):
            self.release(upstream, router: &router)
            self.state = .finished(status: 0)
            return .closeConnection
        case .sent(let upstream, _):
            self.release(upstream, router: &router)
        case .finished:
            // Answered already (our own error, with the body still arriving): nothing more can be
            // said, and the rest of the body must not be read as a new request.
            return .closeConnection
        default:
            break
        }
        return self.finish(answering: status, message)
    }

    /// The answer is complete (or the client went away): the exchange ends with `status` (499
    /// when the client left before an answer), releasing its place on the tunnel.
    public mutating func finished(status: Int, router: inout LoopRouter) {
        switch self.state {
        case .sent(let upstream, _), .answering(let upstream):
            self.release(upstream, router: &router)
        default:
            break
        }
        self.state = .finished(status: status)
    }

    /// The tunnel this exchange counts in flight on (nil when none).
    public var tunnel: TunnelID? {
        switch self.state {
        case .sent(.tunnel(let id), _), .answering(.tunnel(let id)): id
        default: nil
        }
    }

    /// The node this exchange was forwarded to (nil when none).
    public var peer: NodeUID? {
        switch self.state {
        case .sent(.peer(let uid, _), _), .answering(.peer(let uid, _)): uid
        default: nil
        }
    }

    // MARK: - Helpers

    private mutating func route(router: inout LoopRouter, mayWait: Bool, now: Instant) -> ExchangeAction {
        switch router.decide(endpoint: self.endpoint, forwarded: self.forwardMarked, avoiding: self.avoiding) {
        case .local(let id):
            guard let loop = router.loop(of: id), loop != router.loop else {
                let firstHeartbeat = self.heartbeatsOwed.map { self.firstOnConnection ? now : now + $0 }
                let timing = SentTiming(answerDeadline: self.upstreamDeadline(now), nextHeartbeat: firstHeartbeat)
                self.state = .sent(.tunnel(id), timing)
                return .openStream(id, deadline: timing.nextTimer)
            }
            router.finishStream(on: id)
            guard self.moves < self.settings.maxMoves else { return self.finish(answering: 502, "upstream unreachable") }
            self.moves += 1
            self.state = .moving(toLoop: loop)
            return .move(toLoop: loop)
        case .forward(let uid, let name, let address):
            var timing = SentTiming(answerDeadline: self.upstreamDeadline(now))
            if self.settings.forwardAnswerTimeout > .zero, !self.isTunnelled, router.sendsHeartbeats(uid) {
                // The first silence counts from the end of the longest dial: a dial that fails is
                // judged by its own timeout (`.unsent`: any request may go elsewhere), not as silence.
                timing.hopSilentAfter = now + self.settings.forwardDialTimeout + self.settings.forwardAnswerTimeout
            }
            self.state = .sent(.peer(uid, name: name), timing)
            return .forward(uid: uid, name: name, proxyAddress: address, deadline: timing.nextTimer)
        case .reject(let rejection):
            if rejection == .noAvailableUpstreams {
                if !self.avoiding.isEmpty {
                    // Every holder failed. A partition may have cut them all: wait once for the
                    // way to one to open again, then try them all (doubted ones last) again.
                    if mayWait, self.waitRounds < Self.maxWaitRounds, !self.forwardMarked, self.framing == .none, !self.isTunnelled,
                       self.settings.holderWait > .zero, let deadline = self.upstreamDeadline(now), deadline > now {
                        self.waitRounds += 1
                        self.avoiding = []
                        let until = min(now + self.settings.holderWait, deadline)
                        self.holderWaits += 1
                        self.state = .waitingForHolder(until: until)
                        return .wait(until: until)
                    }
                    // The first failure's answer, not "no upstreams".
                    return self.finish(answering: 502, "upstream unreachable")
                }
                // Only a request with nothing after its head waits: body bytes (or an upgrade's)
                // would arrive with nowhere to go.
                if mayWait, !self.forwardMarked, self.framing == .none, !self.isTunnelled, self.settings.holderWait > .zero {
                    let until = now + self.settings.holderWait
                    self.holderWaits += 1
                    self.state = .waitingForHolder(until: until)
                    return .wait(until: until)
                }
            }
            if rejection == .noAvailableUpstreams, self.arrivedFromPeer {
                // Nothing reached an upstream here: the forwarding node may try another holder.
                // (Only a member learns so; anyone else who set the mark gets the plain 502.)
                self.state = .finished(status: rejection.status)
                return .answerUnserved(status: rejection.status, message: rejection.message)
            }
            return self.finish(answering: rejection.status, rejection.message)
        }
    }

    /// The first upstream's deadline, kept by every retry: the client waits `upstreamTimeout`
    /// in all, not once per holder tried.
    private mutating func upstreamDeadline(_ now: Instant) -> Instant? {
        guard self.settings.upstreamTimeout > .zero, !self.isTunnelled else { return nil }
        if let deadline = self.answerDeadline { return deadline }
        self.answerDeadline = now + self.settings.upstreamTimeout
        return self.answerDeadline
    }

    private mutating func release(_ upstream: ExchangeUpstreamKind, router: inout LoopRouter) {
        if case .tunnel(let id) = upstream { router.finishStream(on: id) }
    }

    private mutating func finish(answering status: Int, _ message: String, close: Bool = false) -> ExchangeAction {
        self.state = .finished(status: status)
        return .answer(status: status, message: message, close: close)
    }
}
