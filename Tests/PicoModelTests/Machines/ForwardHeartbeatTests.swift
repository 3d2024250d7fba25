@testable import PicoModel
import Testing

/// Forward heartbeats and the silence rule (`ForwardHeartbeat`, `RequestExchange`): a holder
/// heartbeats a forward while its upstream works, and a forwarding node tells a lost hop from a
/// slow upstream by them.
@Suite("Forward heartbeats")
struct ForwardHeartbeatTests {
    static let near = RequestExchangeTests.near
    static let far = RequestExchangeTests.far
    static let now = RequestExchangeTests.now
    static let peerHost = "10.0.0.9"

    static func forwarded(heartbeat: String?, method: String = "GET") -> HTTPRequestHead {
        var head = RequestExchangeTests.head(method: method, forwardMark: true)
        if let heartbeat { head.headers.add(name: ForwardHeartbeat.header, value: heartbeat) }
        return head
    }

    /// A router whose remote holders of `svc` are `holders`, each already seen heartbeating.
    static func router(_ holders: [RemoteUpstream], learned: Bool = true) -> LoopRouter {
        var router = LoopRouter(loop: 0, seed: 3)
        router.apply(.remoteHolders(endpoint: "svc", holders))
        if learned { for holder in holders { router.learnHeartbeats(holder.uid) } }
        return router
    }

    @Test func test_theRequestField_isMilliseconds_clampedOrRefused() {
        #expect(ForwardHeartbeat.requestValue(every: .milliseconds(333)) == "333")
        #expect(ForwardHeartbeat.requestValue(every: .seconds(1) / 3) == "333")
        #expect(ForwardHeartbeat.interval(requestedBy: "333") == .milliseconds(333))
        #expect(ForwardHeartbeat.interval(requestedBy: "5") == .milliseconds(100), "a flood is refused by raising the interval")
        #expect(ForwardHeartbeat.interval(requestedBy: "999999999") == .seconds(10))
        for bad in [nil, "", "-1", "1e3", "33.3", " 333", "1234567890", "٣٣٣"] {
            #expect(ForwardHeartbeat.interval(requestedBy: bad) == nil, "\(bad ?? "nil")")
        }
        var heartbeat = HTTPResponseHead(status: 102, reason: "Processing", headers: [ForwardHeartbeat.header: "1"])
        #expect(ForwardHeartbeat.isHeartbeat(heartbeat))
        heartbeat.status = 103
        #expect(!ForwardHeartbeat.isHeartbeat(heartbeat), "an upstream's early hints are relayed")
        #expect(!ForwardHeartbeat.isHeartbeat(HTTPResponseHead(status: 102, reason: "Processing")), "an upstream's own 102 is relayed")
    }

    @Test func test_anInterimAnswer_isAHeartbeatOnlyOnAForward_andIsRelayedWithoutTheFieldOtherwise() {
        let decoded = HTTPTest.responseParts(String(decoding: ForwardHeartbeat.interimBytes, as: UTF8.self) + "HTTP/1.1 204 No Content\r\n\r\n")
        #expect(decoded.error == nil)
        #expect(decoded.parts.first == .head(ForwardHeartbeat.interimHead), "what the holder writes is what the simulator delivers")

        var router = Self.router([Self.near], learned: false)
        var forward = RequestExchangeTests.exchange(router: router)
        _ = forward.start(router: &router, mayWait: true, now: Self.now)
        #expect(forward.interimAnswer(ForwardHeartbeat.interimHead, router: &router, now: Self.now + .milliseconds(10))
            == .heartbeat(.armTimer(Self.now + .milliseconds(1_010)), .heartbeats(Self.near.uid, wasUnreachable: false)))
        var hints = HTTPResponseHead(status: 103, headers: ["link": "</a.css>", ForwardHeartbeat.header: "1"])
        guard case .relay(let relayed, _) = forward.interimAnswer(hints, router: &router, now: Self.now + .milliseconds(20)) else {
            Issue.record("an upstream's early hints reach the client")
            return
        }
        hints.headers.remove(ForwardHeartbeat.header)
        #expect(relayed == hints, "without the field")

        var tunnelRouter = LoopRouter(loop: 0, seed: 1)
        tunnelRouter.apply(.tunnelAdded(TunnelID(1), endpoint: "svc", loop: 0, draining: false))
        var local = RequestExchangeTests.exchange(router: tunnelRouter)
        _ = local.start(router: &tunnelRouter, mayWait: true, now: Self.now)
        guard case .relay(let posing, _) = local.interimAnswer(ForwardHeartbeat.interimHead, router: &tunnelRouter, now: Self.now) else {
            Issue.record("a tunnel's upstream cannot pose as a heartbeating node")
            return
        }
        #expect(posing == HTTPResponseHead(status: 102, reason: "Processing"))
    }

    @Test func test_aForwardAsksForHeartbeats_andAnUpstreamNeverSeesTheField() {
        var head = RequestExchangeTests.head()
        head.headers.add(name: ForwardHeartbeat.header, value: "7")
        let toPeer = HTTPProxyRules.upstreamRequest(head, clientIP: "192.0.2.1", scheme: "http", to: .peer, heartbeat: .milliseconds(333))
        #expect(toPeer.headers["x-pico-heartbeat"] == ["333"], "the client's own value is replaced")
        let unasked = HTTPProxyRules.upstreamRequest(head, clientIP: "192.0.2.1", scheme: "http", to: .peer)
        #expect(!unasked.headers.contains(ForwardHeartbeat.header))
        let toTunnel = HTTPProxyRules.upstreamRequest(head, clientIP: "192.0.2.1", scheme: "http", to: .tunnel, heartbeat: .milliseconds(333))
        #expect(!toTunnel.headers.contains(ForwardHeartbeat.header))
    }

    @Test func test_theHolderOfATrustedForward_heartbeatsUntilTheAnswerStarts() {
        var router = LoopRouter(loop: 0, seed: 1)
        router.apply(.tunnelAdded(TunnelID(1), endpoint: "svc", loop: 0, draining: false))
        router.apply(.peerProxyHosts([Self.peerHost]))
        var exchange = RequestExchangeTests.exchange(Self.forwarded(heartbeat: "333"), from: Self.peerHost, router: router)
        #expect(exchange.heartbeatsOwed == .milliseconds(333))
        #expect(exchange.start(router: &router, mayWait: true, now: Self.now) == .openStream(TunnelID(1), deadline: Self.now + .milliseconds(333)))
        #expect(exchange.timerFired(router: &router, now: Self.now + .milliseconds(200)).0 == .armTimer(Self.now + .milliseconds(333)), "early: re-arms only")
        #expect(exchange.timerFired(router: &router, now: Self.now + .milliseconds(333)).0 == .heartbeat(next: Self.now + .milliseconds(666)))
        #expect(exchange.timerFired(router: &router, now: Self.now + .milliseconds(666)).0 == .heartbeat(next: Self.now + .milliseconds(999)))
        #expect(exchange.answerStarted(router: router) == nil)
        #expect(exchange.timerFired(router: &router, now: Self.now + .seconds(1)).0 == .none, "no heartbeat once the answer started")

        // The first request on its connection heartbeats at once: the forwarding node learns
        // this node heartbeats even when its answers are fast.
        var first = RequestExchange(head: Self.forwarded(heartbeat: "333"), framing: .none, clientHost: Self.peerHost, router: router,
                                    settings: ExchangeSettings(), firstOnConnection: true)
        #expect(first.start(router: &router, mayWait: true, now: Self.now) == .openStream(TunnelID(1), deadline: Self.now))
        #expect(first.timerFired(router: &router, now: Self.now).0 == .heartbeat(next: Self.now + .milliseconds(333)))

        // The same request from a host that is no member: no heartbeats, only the upstream timeout.
        var stranger = RequestExchangeTests.exchange(Self.forwarded(heartbeat: "333"), from: "192.0.2.1", router: router)
        #expect(stranger.heartbeatsOwed == nil)
        #expect(stranger.start(router: &router, mayWait: true, now: Self.now) == .openStream(TunnelID(1), deadline: Self.now + .seconds(30)))
    }

    @Test func test_silenceCountsOnlyForANodeSeenHeartbeating_fromTheEndOfTheDial() {
        var router = Self.router([Self.near], learned: false)
        var first = RequestExchangeTests.exchange(router: router)
        #expect(first.start(router: &router, mayWait: true, now: Self.now)
            == .forward(uid: Self.near.uid, name: "pico-2", proxyAddress: Self.near.proxyAddress, deadline: Self.now + .seconds(30)),
            "a node not known to heartbeat (an older version) is given the whole upstream timeout")
        #expect(first.heartbeatRequest == .seconds(1) / 3)
        #expect(first.heardFromHop(router: &router, now: Self.now + .milliseconds(1)) == (.armTimer(Self.now + .milliseconds(1_001)), .heartbeats(Self.near.uid, wasUnreachable: false)),
                "a heartbeat teaches the loop, and is news for the node, which tells every loop")
        #expect(first.answerStarted(router: router) == nil)
        #expect(router.sendsHeartbeats(Self.near.uid))

        var second = RequestExchangeTests.exchange(router: router)
        #expect(second.start(router: &router, mayWait: true, now: Self.now)
            == .forward(uid: Self.near.uid, name: "pico-2", proxyAddress: Self.near.proxyAddress, deadline: Self.now + .seconds(2)),
            "silence counts after the 1 s dial timeout plus the 1 s answer timeout")
        #expect(second.heardFromHop(router: &router, now: Self.now + .milliseconds(1_500)) == (.armTimer(Self.now + .milliseconds(2_500)), nil))
        #expect(second.timerFired(router: &router, now: Self.now + .seconds(2)).0 == .armTimer(Self.now + .milliseconds(2_500)),
                "a heartbeat moved the silence deadline")

        // A heartbeat also teaches the loop (a node whose answers were never seen yet).
        var fresh = Self.router([Self.far], learned: false)
        var third = RequestExchangeTests.exchange(router: fresh)
        _ = third.start(router: &fresh, mayWait: true, now: Self.now)
        #expect(third.heardFromHop(router: &fresh, now: Self.now + .milliseconds(300))
            == (.armTimer(Self.now + .milliseconds(1_300)), .heartbeats(Self.far.uid, wasUnreachable: false)))
        #expect(fresh.sendsHeartbeats(Self.far.uid))
    }

    @Test func test_aSilentHop_isEvidence_andAGetGoesToAnotherHolder() {
        var router = Self.router([Self.near, Self.far])
        var exchange = RequestExchangeTests.exchange(router: router)
        guard case .forward(let first, _, _, let deadline) = exchange.start(router: &router, mayWait: true, now: Self.now) else {
            Issue.record("expected a forward")
            return
        }
        #expect(deadline == Self.now + .seconds(2))
        let (action, report) = exchange.timerFired(router: &router, now: Self.now + .seconds(2))
        #expect(report == .unreachable(first))
        let other = first == Self.near.uid ? Self.far : Self.near
        #expect(action == .forward(uid: other.uid, name: other.name, proxyAddress: other.proxyAddress, deadline: Self.now + .seconds(4)))
        #expect(exchange.avoiding == [first])
    }

    @Test func test_aSilentHop_withNowhereElseToGo_keepsWaitingForItsAnswer() {
        var router = Self.router([Self.near])
        var exchange = RequestExchangeTests.exchange(router: router)
        _ = exchange.start(router: &router, mayWait: true, now: Self.now)
        let (action, report) = exchange.timerFired(router: &router, now: Self.now + .seconds(2))
        #expect(report == .unreachable(Self.near.uid), "still evidence: other requests prefer other holders")
        #expect(action == .watchRouting(until: Self.now + .seconds(30)), "the way back may heal: wait for the answer until the upstream timeout")
        #expect(exchange.peer == Self.near.uid && exchange.avoiding.isEmpty)
        #expect(exchange.heardFromHop(router: &router, now: Self.now + .seconds(3)).0 == .armTimer(Self.now + .seconds(4)), "a heartbeat restarts the watch")
        #expect(exchange.routingChanged(router: &router, now: Self.now + .seconds(3)) == .none, "alive after all: nothing to watch")
        #expect(exchange.timerFired(router: &router, now: Self.now + .seconds(30)).0 == .answer(status: 504, message: "upstream timeout", close: true))
    }

    @Test func test_aSilentHop_withNowhereElseToGo_isSentAgain_onceTheNodeIsReachedAgain() {
        for reached in [RoutingChange.answeredDirectly(Self.near.uid), .unreachable(Self.near.uid, false)] {
            var router = Self.router([Self.near])
            var exchange = RequestExchangeTests.exchange(router: router)
            _ = exchange.start(router: &router, mayWait: true, now: Self.now)
            #expect(exchange.timerFired(router: &router, now: Self.now + .seconds(2)).0 == .watchRouting(until: Self.now + .seconds(30)))
            router.apply(.unreachable(Self.near.uid, true))
            router.apply(.peerProxyHosts(["10.0.0.2"]))
            #expect(exchange.routingChanged(router: &router, now: Self.now + .seconds(3)) == .watchRouting(until: Self.now + .seconds(30)),
                    "the cut has not healed: keep waiting on the old connection")
            router.apply(reached)
            #expect(exchange.routingChanged(router: &router, now: Self.now + .seconds(4))
                == .forward(uid: Self.near.uid, name: Self.near.name, proxyAddress: Self.near.proxyAddress, deadline: Self.now + .seconds(6)),
                "\(reached): sent again on a fresh connection, keeping the client's deadline")
            #expect(exchange.avoiding.isEmpty)
        }
    }

    @Test func test_aSilentHop_goesToAHolderThatAppearsLater_butAPostStaysWithItsNode() {
        var router = Self.router([Self.near])
        var get = RequestExchangeTests.exchange(router: router)
        _ = get.start(router: &router, mayWait: true, now: Self.now)
        var post = RequestExchangeTests.exchange(RequestExchangeTests.head(method: "POST"), router: router)
        _ = post.start(router: &router, mayWait: true, now: Self.now)
        #expect(get.timerFired(router: &router, now: Self.now + .seconds(2)).0 == .watchRouting(until: Self.now + .seconds(30)))
        #expect(post.timerFired(router: &router, now: Self.now + .seconds(2)).0 == .armTimer(Self.now + .seconds(30)))
        router.apply(.remoteHolders(endpoint: "svc", [Self.near, Self.far]))
        router.learnHeartbeats(Self.far.uid)
        #expect(get.routingChanged(router: &router, now: Self.now + .seconds(3))
            == .forward(uid: Self.far.uid, name: Self.far.name, proxyAddress: Self.far.proxyAddress, deadline: Self.now + .seconds(5)))
        #expect(get.avoiding == [Self.near.uid])
        #expect(post.routingChanged(router: &router, now: Self.now + .seconds(3)) == .none, "a POST may have taken effect")
    }

    @Test func test_aSilentHop_isNotRetried_forAPost_orOnceTheClientHeardAnInterim() {
        var router = Self.router([Self.near, Self.far])
        var post = RequestExchangeTests.exchange(RequestExchangeTests.head(method: "POST"), router: router)
        _ = post.start(router: &router, mayWait: true, now: Self.now)
        let (postAction, _) = post.timerFired(router: &router, now: Self.now + .seconds(2))
        #expect(postAction == .armTimer(Self.now + .seconds(30)), "a POST may have taken effect: it waits for its own answer")

        var get = RequestExchangeTests.exchange(router: router)
        _ = get.start(router: &router, mayWait: true, now: Self.now)
        #expect(get.interimRelayed(now: Self.now + .milliseconds(500)) == .armTimer(Self.now + .milliseconds(1_500)))
        let (getAction, _) = get.timerFired(router: &router, now: Self.now + .milliseconds(1_500))
        #expect(getAction == .armTimer(Self.now + .seconds(30)), "the client heard a 100 or 103 already")
        let (failed, _) = get.upstreamFailed(progress: .unanswered, router: &router, now: Self.now + .seconds(3))
        #expect(failed == .answer(status: 502, message: "upstream unreachable", close: true), "nor is a broken connection retried then")
    }

    @Test func test_noSilenceRule_whenTurnedOff_orForAnUpgrade() {
        var settings = ExchangeSettings()
        settings.forwardAnswerTimeout = .zero
        var router = Self.router([Self.near])
        var exchange = RequestExchangeTests.exchange(router: router, settings: settings)
        #expect(exchange.start(router: &router, mayWait: true, now: Self.now)
            == .forward(uid: Self.near.uid, name: "pico-2", proxyAddress: Self.near.proxyAddress, deadline: Self.now + .seconds(30)))
        #expect(exchange.heartbeatRequest == nil)

        var upgrade = RequestExchangeTests.head()
        upgrade.headers.add(name: "connection", value: "upgrade")
        upgrade.headers.add(name: "upgrade", value: "websocket")
        var tunnelled = RequestExchangeTests.exchange(upgrade, router: router)
        #expect(tunnelled.start(router: &router, mayWait: true, now: Self.now)
            == .forward(uid: Self.near.uid, name: "pico-2", proxyAddress: Self.near.proxyAddress, deadline: nil))
        #expect(tunnelled.heartbeatRequest == nil)
    }

    @Test func test_theLoopRemembersABoundedNumberOfHeartbeatingNodes_andForgetsDeadOnes() {
        var router = LoopRouter(loop: 0, seed: 1)
        router.apply(.heartbeats(Self.near.uid, true))
        #expect(router.sendsHeartbeats(Self.near.uid))
        router.apply(.heartbeats(Self.near.uid, false))
        #expect(!router.sendsHeartbeats(Self.near.uid))
        for index in 0..<LoopRouter.maxHeartbeatPeers { router.learnHeartbeats(NodeUID(UInt64(index + 1))) }
        #expect(router.sendsHeartbeats(NodeUID(1)))
        router.learnHeartbeats(NodeUID(999_999))
        #expect(router.sendsHeartbeats(NodeUID(999_999)))
        #expect(!router.sendsHeartbeats(NodeUID(1)), "full: it starts over")
    }
}
