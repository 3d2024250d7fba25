@testable import PicoModel
import Testing

/// Drives `RequestExchange` directly through its outcomes, with a `LoopRouter` fed as the node
/// feeds it.
@Suite("RequestExchange")
struct RequestExchangeTests {
    static let near = RemoteUpstream(uid: Fixture.info(2).uid, name: "pico-2", proxyAddress: Address(host: "10.0.0.2", port: 8000), count: 1, draining: false)
    static let far = RemoteUpstream(uid: Fixture.info(3).uid, name: "pico-3", proxyAddress: Address(host: "10.0.0.3", port: 8000), count: 1, draining: false)
    static let now = Instant.zero + .seconds(100)

    static func head(_ endpoint: String? = "svc", path: String = "/", method: String = "GET", forwardMark: Bool = false) -> HTTPRequestHead {
        var headers: HTTPHeaders = ["host": "localhost"]
        if let endpoint { headers.add(name: "x-pico-endpoint", value: endpoint) }
        if forwardMark { headers.add(name: "x-pico-forward", value: "true") }
        return HTTPRequestHead(method: method, target: path, headers: headers)
    }

    static func exchange(_ head: HTTPRequestHead = Self.head(), from host: String = "192.0.2.1", router: LoopRouter,
                         framing: HTTPBodyFraming = .none, settings: ExchangeSettings = ExchangeSettings()) -> RequestExchange {
        RequestExchange(head: head, framing: framing, clientHost: host, router: router, settings: settings)
    }

    /// Starts `exchange`, which must go to another node; returns that node (nil, recorded as an
    /// issue, when it did not).
    static func startForwarded(_ exchange: inout RequestExchange, router: inout LoopRouter) -> NodeUID? {
        guard case .forward(let uid, _, _, _) = exchange.start(router: &router, mayWait: true, now: Self.now) else {
            Issue.record("expected a forward")
            return nil
        }
        return uid
    }

    @Test func test_localTunnel_opensAStream_withTheUpstreamDeadline_andCountsItUntilFinished() {
        var router = LoopRouter(loop: 0, seed: 1)
        router.apply(.tunnelAdded(TunnelID(1), endpoint: "svc", loop: 0, draining: false))
        var exchange = Self.exchange(router: router)
        #expect(exchange.start(router: &router, mayWait: true, now: Self.now) == .openStream(TunnelID(1), deadline: Self.now + .seconds(30)))
        #expect(exchange.tunnel == TunnelID(1))
        #expect(exchange.answerStarted(router: router) == nil)
        exchange.finished(status: 200, router: &router)
        #expect(exchange.state == .finished(status: 200))
        #expect(exchange.tunnel == nil)
    }

    @Test func test_statusRules_404_400_502() {
        var router = LoopRouter(loop: 0, seed: 1)
        var pico = Self.exchange(Self.head(path: "/_pico/anything"), router: router)
        #expect(pico.start(router: &router, mayWait: true, now: Self.now) == .answer(status: 404, message: "not found", close: false))
        var missing = Self.exchange(Self.head(nil), router: router)
        #expect(missing.start(router: &router, mayWait: true, now: Self.now) == .answer(status: 400, message: "missing endpoint id", close: false))
        var long = Self.exchange(Self.head(String(repeating: "e", count: EndpointTable.maxEndpointLength + 1)), router: router)
        #expect(long.start(router: &router, mayWait: true, now: Self.now) == .answer(status: 400, message: "invalid endpoint id", close: false))
        var none = Self.exchange(router: router)
        #expect(none.start(router: &router, mayWait: false, now: Self.now) == .answer(status: 502, message: "no available upstreams", close: false))
    }

    /// Piko's names route like Pico's; names that disagree are neither routed nor forwarded.
    @Test func test_pikosEndpointField_routes_disagreeingFieldsAre400_andPikosReservedPathIs404() {
        var router = LoopRouter(loop: 0, seed: 1)
        router.apply(.tunnelAdded(TunnelID(1), endpoint: "svc", loop: 0, draining: false))
        var piko = Self.exchange(HTTPRequestHead(method: "GET", target: "/", headers: ["host": "localhost", "x-piko-endpoint": "svc"]), router: router)
        #expect(piko.start(router: &router, mayWait: true, now: Self.now) == .openStream(TunnelID(1), deadline: Self.now + .seconds(30)))
        let both: HTTPHeaders = ["host": "localhost", "x-pico-endpoint": "svc", "X-Piko-Endpoint": "other"]
        var conflict = Self.exchange(HTTPRequestHead(method: "GET", target: "/", headers: both), router: router)
        #expect(conflict.endpoint == nil)
        #expect(conflict.start(router: &router, mayWait: true, now: Self.now)
            == .answer(status: 400, message: "x-pico-endpoint and x-piko-endpoint name different endpoints", close: false))
        for path in ["/_piko/v1/upstream/svc", "http://svc.example.com/_piko/x"] {
            var reserved = Self.exchange(Self.head(path: path), router: router)
            #expect(reserved.start(router: &router, mayWait: true, now: Self.now) == .answer(status: 404, message: "not found", close: false))
        }
        // Two different tokens: 400 where a token is read; a port without auth passes both on.
        let twoTokens = HTTPRequestHead(method: "GET", target: "/", headers: [
            "host": "localhost", "x-pico-endpoint": "svc", "x-pico-authorization": "Bearer a", "x-piko-authorization": "Bearer b",
        ])
        let grant = RequestAccess.granted(TokenGrant(endpoints: nil, validUntil: nil, keyFingerprint: "k"), header: "x-pico-authorization")
        var tokens = RequestExchange(head: twoTokens, framing: .none, clientHost: "192.0.2.1", router: router, settings: ExchangeSettings(), access: grant)
        #expect(tokens.start(router: &router, mayWait: true, now: Self.now)
            == .answer(status: 400, message: "x-pico-authorization and x-piko-authorization carry different tokens", close: false))
        var open = Self.exchange(twoTokens, router: router)
        #expect(open.start(router: &router, mayWait: true, now: Self.now) == .openStream(TunnelID(1), deadline: Self.now + .seconds(30)))
        open.finished(status: 200, router: &router)
        var ordinary = Self.exchange(Self.head(path: "/_pik"), router: router)
        #expect(ordinary.start(router: &router, mayWait: true, now: Self.now) == .openStream(TunnelID(1), deadline: Self.now + .seconds(30)))
    }

    @Test func test_aRefusedToken_answers401First_andAGrantOutsideItsEndpointsIsRefused() {
        var router = LoopRouter(loop: 0, seed: 1)
        router.apply(.tunnelAdded(TunnelID(1), endpoint: "svc", loop: 0, draining: false))
        let refused = RequestAccess.refused(AuthFailure(.expired))
        // Before the 404 of /_pico paths and the 400 of a missing endpoint: nothing is revealed.
        for head in [Self.head(path: "/_pico/x"), Self.head(nil), Self.head()] {
            var exchange = RequestExchange(head: head, framing: .none, clientHost: nil, router: router, settings: ExchangeSettings(), access: refused)
            #expect(exchange.start(router: &router, mayWait: true, now: Self.now) == .answer(status: 401, message: "expired token", close: false))
            #expect(exchange.access.consumedHeader == nil)
        }
        let limited = RequestAccess.granted(TokenGrant(endpoints: ["other"], validUntil: nil), header: "authorization")
        var outside = RequestExchange(head: Self.head(), framing: .none, clientHost: nil, router: router, settings: ExchangeSettings(), access: limited)
        #expect(outside.start(router: &router, mayWait: true, now: Self.now) == .answer(status: 401, message: "endpoint not permitted", close: false))
        let allowed = RequestAccess.granted(TokenGrant(endpoints: ["svc"], validUntil: nil), header: "x-pico-authorization")
        var inside = RequestExchange(head: Self.head(), framing: .none, clientHost: nil, router: router, settings: ExchangeSettings(), access: allowed)
        #expect(inside.start(router: &router, mayWait: true, now: Self.now) == .openStream(TunnelID(1), deadline: Self.now + .seconds(30)))
        #expect(inside.access.consumedHeader == "x-pico-authorization")
    }

    @Test func test_withSealedGossip_onlyAProvenForwardIsTrusted_andTheTokenIsCheckedAtEveryNode() {
        var router = LoopRouter(loop: 0, seed: 1)
        router.apply(.tunnelAdded(TunnelID(1), endpoint: "svc", loop: 0, draining: false))
        let missing = RequestAccess.refused(AuthFailure(.missingAuthorization))
        let granted = RequestAccess.granted(TokenGrant(endpoints: nil, validUntil: nil), header: "authorization")
        var proven = RequestExchange(head: Self.head(forwardMark: true), framing: .none, clientHost: "203.0.113.9", router: router,
                                     settings: ExchangeSettings(), access: granted, forwardProof: .verified)
        #expect(proven.arrivedFromPeer && proven.access == granted)
        #expect(proven.start(router: &router, mayWait: true, now: Self.now) == .openStream(TunnelID(1), deadline: Self.now + .seconds(30)))
        // A member's proof does not stand in for a token: a forwarder with other auth settings
        // (or none) cannot let a request through.
        var provenWithoutToken = RequestExchange(head: Self.head(forwardMark: true), framing: .none, clientHost: "203.0.113.9", router: router,
                                                 settings: ExchangeSettings(), access: missing, forwardProof: .verified)
        #expect(provenWithoutToken.start(router: &router, mayWait: true, now: Self.now) == .answer(status: 401, message: "missing authorization", close: false))
        // A mark without a proof that verifies: not a member's, whatever address it comes from;
        // still never forwarded again.
        let claimed = RequestExchange(head: Self.head(forwardMark: true), framing: .none, clientHost: "203.0.113.9", router: router,
                                      settings: ExchangeSettings(), access: granted, forwardProof: .refused)
        #expect(!claimed.arrivedFromPeer && claimed.forwardMarked)
        // A verified proof on a request without the mark proves nothing.
        let unmarked = RequestExchange(head: Self.head(), framing: .none, clientHost: nil, router: router, settings: ExchangeSettings(), access: granted, forwardProof: .verified)
        #expect(!unmarked.arrivedFromPeer)
    }

    @Test func test_forwardProofs_parseStrictly_andAreFreshWithinAMinuteEitherWay() {
        let mac = [UInt8](repeating: 9, count: 32)
        let value = ForwardProof.value(time: 1_700_000_000, mac: mac)
        #expect(ForwardProof.parse(value)?.time == 1_700_000_000 && ForwardProof.parse(value)?.mac == mac)
        for bad in ["", "1700000000", ".abc", "-5.\(Base64URL.encode(mac))", "1700000000.\(Base64URL.encode(mac.dropLast()))",
                    "9999999999999.\(Base64URL.encode(mac))", "17e8.\(Base64URL.encode(mac))", String(repeating: "1", count: 200)] {
            #expect(ForwardProof.parse(bad) == nil, "\(bad)")
        }
        #expect(ForwardProof.isFresh(1_000, now: 1_060) && ForwardProof.isFresh(1_060, now: 1_000))
        #expect(!ForwardProof.isFresh(1_000, now: 1_061) && !ForwardProof.isFresh(1_061, now: 1_000))
        #expect(ForwardProof.message(method: "GET", target: "/a", endpoint: "svc", time: 5) != ForwardProof.message(method: "GET", target: "/a", endpoint: "other", time: 5))
    }

    @Test func test_noHolderYet_waitsBounded_thenServesWhenRoutingLearnsOne() {
        var router = LoopRouter(loop: 0, seed: 1)
        var exchange = Self.exchange(router: router)
        let until = Self.now + .seconds(1)
        #expect(exchange.start(router: &router, mayWait: true, now: Self.now) == .wait(until: until))
        #expect(exchange.routingChanged(router: &router, now: Self.now + .milliseconds(100)) == .wait(until: until), "an unrelated change keeps it waiting")
        #expect(exchange.holderWaits == 1, "one wait, counted once however often it is re-armed")
        router.apply(.remoteHolders(endpoint: "svc", [Self.near]))
        #expect(exchange.routingChanged(router: &router, now: Self.now + .milliseconds(200))
            == .forward(uid: Self.near.uid, name: "pico-2", proxyAddress: Self.near.proxyAddress, deadline: Self.now + .milliseconds(200) + .seconds(30)))
    }

    @Test func test_onlyARequestWithNothingAfterItsHead_waits() {
        var router = LoopRouter(loop: 0, seed: 1)
        var post = Self.exchange(Self.head(method: "POST"), router: router, framing: .length(5))
        #expect(post.start(router: &router, mayWait: true, now: Self.now) == .answer(status: 502, message: "no available upstreams", close: false))
        var upgrade = Self.head()
        upgrade.headers.add(name: "connection", value: "upgrade")
        upgrade.headers.add(name: "upgrade", value: "websocket")
        var socket = Self.exchange(upgrade, router: router)
        #expect(socket.start(router: &router, mayWait: true, now: Self.now) == .answer(status: 502, message: "no available upstreams", close: false))
    }

    @Test func test_aBrokenBody_afterALocalAnswer_closesTheConnection() {
        var router = LoopRouter(loop: 0, seed: 1)
        var pico = Self.exchange(Self.head(path: "/_pico/x", method: "POST"), router: router, framing: .length(100))
        #expect(pico.start(router: &router, mayWait: true, now: Self.now) == .answer(status: 404, message: "not found", close: false))
        #expect(pico.requestBroken(status: 408, message: "request body timeout", router: &router) == .closeConnection,
                "the rest of the body must not be read as a new request")
    }

    @Test func test_aStreamThatNeverReachedTheAgent_routesAgain_onlyWhenNothingButItsHeadWasSent() {
        var router = LoopRouter(loop: 0, seed: 1)
        router.apply(.tunnelAdded(TunnelID(1), endpoint: "svc", loop: 0, draining: false))
        router.apply(.remoteHolders(endpoint: "svc", [Self.near]))
        var get = Self.exchange(router: router)
        _ = get.start(router: &router, mayWait: true, now: Self.now)
        guard case .forward(let uid, _, _, _) = get.streamRefused(router: &router, mayWait: true, now: Self.now) else {
            Issue.record("a bodyless request was not routed again")
            return
        }
        #expect(uid == Self.near.uid)
        router.apply(.tunnelAdded(TunnelID(2), endpoint: "svc", loop: 0, draining: false))
        var post = Self.exchange(Self.head(method: "POST"), router: router, framing: .length(5))
        #expect(post.start(router: &router, mayWait: true, now: Self.now) == .openStream(TunnelID(2), deadline: Self.now + .seconds(30)))
        #expect(post.streamRefused(router: &router, mayWait: true, now: Self.now) == .answer(status: 502, message: "upstream unreachable", close: true),
                "its body was sent on the stream and is gone")
    }

    @Test func test_aFullTunnel_is503_andStaysInRouting() {
        var router = LoopRouter(loop: 0, seed: 1)
        router.apply(.tunnelAdded(TunnelID(1), endpoint: "svc", loop: 0, draining: false))
        var full = Self.exchange(router: router)
        #expect(full.start(router: &router, mayWait: true, now: Self.now) == .openStream(TunnelID(1), deadline: Self.now + .seconds(30)))
        #expect(full.tunnelFull(TunnelID(1), router: &router) == .answer(status: 503, message: "upstream has too many open streams", close: false))
        var next = Self.exchange(router: router)
        #expect(next.start(router: &router, mayWait: true, now: Self.now) == .openStream(TunnelID(1), deadline: Self.now + .seconds(30)),
                "the busy tunnel still serves the next request")
    }

    @Test func test_upgrades_areNotTimed() {
        var router = LoopRouter(loop: 0, seed: 1)
        router.apply(.tunnelAdded(TunnelID(1), endpoint: "svc", loop: 0, draining: false))
        var upgrade = Self.head()
        upgrade.headers.add(name: "connection", value: "upgrade")
        upgrade.headers.add(name: "upgrade", value: "websocket")
        var socket = Self.exchange(upgrade, router: router)
        #expect(socket.start(router: &router, mayWait: true, now: Self.now) == .openStream(TunnelID(1), deadline: nil))
    }

    @Test func test_noHolderAtTheDeadline_is502_andAForwardedRequestNeverWaits() {
        var router = LoopRouter(loop: 0, seed: 1)
        var exchange = Self.exchange(router: router)
        _ = exchange.start(router: &router, mayWait: true, now: Self.now)
        #expect(exchange.timerFired(router: &router, now: Self.now + .milliseconds(999)).0 == .wait(until: Self.now + .seconds(1)))
        #expect(exchange.timerFired(router: &router, now: Self.now + .seconds(1)).0 == .answer(status: 502, message: "no available upstreams", close: false))
        var marked = Self.exchange(Self.head(forwardMark: true), router: router)
        #expect(marked.start(router: &router, mayWait: true, now: Self.now) == .answer(status: 502, message: "no available upstreams", close: false))
        var zero = Self.exchange(router: router, settings: ExchangeSettings(holderWait: .zero))
        #expect(zero.start(router: &router, mayWait: true, now: Self.now) == .answer(status: 502, message: "no available upstreams", close: false))
    }

    @Test func test_forwardMark_neverForwardsAgain_butIsTrustedForHeadersOnlyFromAPeerHost() {
        var router = LoopRouter(loop: 0, seed: 1)
        router.apply(.remoteHolders(endpoint: "svc", [Self.near]))
        router.apply(.peerProxyHosts(["10.0.0.9"]))
        var fromPeer = Self.exchange(Self.head(forwardMark: true), from: "10.0.0.9", router: router)
        #expect(fromPeer.arrivedFromPeer && fromPeer.forwardMarked)
        #expect(fromPeer.start(router: &router, mayWait: true, now: Self.now) == .answerUnserved(status: 502, message: "no available upstreams"))
        var fromClient = Self.exchange(Self.head(forwardMark: true), from: "192.0.2.7", router: router)
        #expect(!fromClient.arrivedFromPeer && fromClient.forwardMarked)
        #expect(fromClient.start(router: &router, mayWait: true, now: Self.now) == .answer(status: 502, message: "no available upstreams", close: false),
                "only a member learns that nothing was served (x-pico-unserved)")
        var unmarked = Self.exchange(router: router)
        #expect(!unmarked.arrivedFromPeer)
        if case .forward = unmarked.start(router: &router, mayWait: true, now: Self.now) {} else { Issue.record("an unmarked request is forwarded") }
    }

    @Test func test_aForwardThatFailsBeforeAnAnswer_isEvidence_andGoesToAnotherHolder() {
        var router = LoopRouter(loop: 0, seed: 3)
        router.apply(.remoteHolders(endpoint: "svc", [Self.near, Self.far]))
        var exchange = Self.exchange(router: router)
        guard let first = Self.startForwarded(&exchange, router: &router) else { return }
        let (action, report) = exchange.upstreamFailed(progress: .unsent, router: &router, now: Self.now + .seconds(1))
        #expect(report == .unreachable(first))
        #expect(!router.isUnreachable(first), "the node weighs the evidence and tells every loop, this one included")
        let other = first == Self.near.uid ? Self.far : Self.near
        #expect(action == .forward(uid: other.uid, name: other.name, proxyAddress: other.proxyAddress, deadline: Self.now + .seconds(30)),
                "a retry keeps the first deadline: the client waits proxy.timeout in all")
        #expect(exchange.avoiding == [first])
        // The second holder failing too: the first failure's answer, not "no upstreams".
        let (last, _) = exchange.upstreamFailed(progress: .unsent, router: &router, now: Self.now + .seconds(2))
        #expect(last == .answer(status: 502, message: "upstream unreachable", close: false))
    }

    @Test func test_aForwardAnsweredUnserved_goesToAnotherHolder_withoutEvidence_andOnlyWhenItMayBeSentAgain() {
        var router = LoopRouter(loop: 0, seed: 3)
        router.apply(.remoteHolders(endpoint: "svc", [Self.near, Self.far]))
        var exchange = Self.exchange(router: router)
        guard let first = Self.startForwarded(&exchange, router: &router) else { return }
        let other = first == Self.near.uid ? Self.far : Self.near
        #expect(exchange.forwardUnserved(router: &router, mayWait: true, now: Self.now + .milliseconds(5))
                == .forward(uid: other.uid, name: other.name, proxyAddress: other.proxyAddress, deadline: Self.now + .seconds(30)))
        #expect(exchange.avoiding == [first] && !router.isUnreachable(first), "the node answered: no evidence against it")
        // The other holder had none either, and the request may not wait: 502, as a holder would say.
        #expect(exchange.forwardUnserved(router: &router, mayWait: false, now: Self.now + .milliseconds(9))
                == .answer(status: 502, message: "no available upstreams", close: false))
        // It may wait (room in the waiting list): routing may learn a holder yet.
        var waiting = Self.exchange(router: router)
        _ = waiting.start(router: &router, mayWait: true, now: Self.now)
        _ = waiting.forwardUnserved(router: &router, mayWait: true, now: Self.now)
        #expect(waiting.forwardUnserved(router: &router, mayWait: true, now: Self.now) == .wait(until: Self.now + .seconds(1)))
        // A request whose body went out with the forward cannot be sent again.
        var post = Self.exchange(Self.head(method: "POST"), router: router, framing: .length(5))
        _ = post.start(router: &router, mayWait: true, now: Self.now)
        #expect(post.forwardUnserved(router: &router, mayWait: true, now: Self.now) == .answer(status: 502, message: "no available upstreams", close: false))
        #expect(post.avoiding.isEmpty)
        // Only a forward's answer means anything: a stream on a local tunnel is not a node.
        router.apply(.tunnelAdded(TunnelID(1), endpoint: "local", loop: 0, draining: false))
        var local = Self.exchange(Self.head("local"), router: router)
        _ = local.start(router: &router, mayWait: true, now: Self.now)
        #expect(local.forwardUnserved(router: &router, mayWait: true, now: Self.now) == .none)
        #expect(local.tunnel == TunnelID(1))
    }

    @Test func test_theUnservedMark_isPerHop_soAnUpstreamCannotSetIt() {
        let upstream = HTTPResponseHead(status: 502, headers: ["x-pico-unserved": "1", "content-length": "0"])
        #expect(UnservedForward.isUnserved(upstream))
        let relayed = HTTPProxyRules.clientResponse(upstream, requestMethod: "GET", clientVersion: .http1_1, clientKeepAlive: true)
        #expect(!relayed.head.headers.contains(UnservedForward.header))
        #expect(!UnservedForward.isUnserved(relayed.head))
        #expect(!UnservedForward.isUnserved(HTTPResponseHead(status: 200, headers: ["x-pico-unserved": "1"])))
    }

    @Test func test_whenEveryHolderFailed_aRequestWaitsOnceForTheWayToOpen_thenTriesThemAllAgain() {
        var router = LoopRouter(loop: 0, seed: 3)
        router.apply(.remoteHolders(endpoint: "svc", [Self.near, Self.far]))
        var exchange = Self.exchange(router: router)
        _ = exchange.start(router: &router, mayWait: true, now: Self.now)
        _ = exchange.upstreamFailed(progress: .unsent, router: &router, mayWait: true, now: Self.now + .seconds(1))
        let (wait, _) = exchange.upstreamFailed(progress: .unsent, router: &router, mayWait: true, now: Self.now + .seconds(2))
        #expect(wait == .wait(until: Self.now + .seconds(3)), "both failed: a partition may heal")
        #expect(exchange.avoiding.isEmpty && exchange.waitRounds == 1)
        guard case .forward = exchange.timerFired(router: &router, now: Self.now + .seconds(3)).0 else {
            Issue.record("after the wait every holder may be tried again")
            return
        }
        _ = exchange.upstreamFailed(progress: .unsent, router: &router, mayWait: true, now: Self.now + .seconds(4))
        let (last, _) = exchange.upstreamFailed(progress: .unsent, router: &router, mayWait: true, now: Self.now + .seconds(5))
        #expect(last == .answer(status: 502, message: "upstream unreachable", close: false), "one wait only")

        // Without room in the waiting list, or for a request with a body, no wait.
        var full = Self.exchange(router: router)
        _ = full.start(router: &router, mayWait: true, now: Self.now)
        _ = full.upstreamFailed(progress: .unsent, router: &router, mayWait: false, now: Self.now)
        #expect(full.upstreamFailed(progress: .unsent, router: &router, mayWait: false, now: Self.now).0 == .answer(status: 502, message: "upstream unreachable", close: false))
    }

    @Test func test_retry_onlyWhenTheRequestCannotTakeEffectTwice() {
        var router = LoopRouter(loop: 0, seed: 3)
        router.apply(.remoteHolders(endpoint: "svc", [Self.near, Self.far]))
        var post = Self.exchange(Self.head(method: "POST"), router: router)
        _ = post.start(router: &router, mayWait: true, now: Self.now)
        let (action, report) = post.upstreamFailed(progress: .unanswered, router: &router, now: Self.now)
        #expect(action == .answer(status: 502, message: "upstream unreachable", close: true), "a POST the peer may have processed is not sent again")
        #expect(report != nil)
        var answered = Self.exchange(router: router)
        _ = answered.start(router: &router, mayWait: true, now: Self.now)
        let (late, evidence) = answered.upstreamFailed(progress: .answered, router: &router, now: Self.now)
        #expect(late == .answer(status: 502, message: "upstream unreachable", close: true))
        #expect(evidence == nil, "a peer that answered something is reachable")
    }

    @Test func test_doubtedHolders_areALastResort_andAnAnswerClearsTheDoubt() {
        var router = LoopRouter(loop: 0, seed: 5)
        router.apply(.remoteHolders(endpoint: "svc", [Self.near, Self.far]))
        router.apply(.unreachable(Self.far.uid, true))
        for _ in 0..<20 {
            var exchange = Self.exchange(router: router)
            #expect(exchange.start(router: &router, mayWait: true, now: Self.now)
                == .forward(uid: Self.near.uid, name: "pico-2", proxyAddress: Self.near.proxyAddress, deadline: Self.now + .seconds(30)))
        }
        router.apply(.remoteHolders(endpoint: "svc", [Self.far]))
        var exchange = Self.exchange(router: router)
        #expect(exchange.start(router: &router, mayWait: true, now: Self.now)
            == .forward(uid: Self.far.uid, name: "pico-3", proxyAddress: Self.far.proxyAddress, deadline: Self.now + .seconds(30)),
                "the only holder is still tried")
        #expect(exchange.answerStarted(router: router) == .reachable(Self.far.uid))
        var suspect = Self.far
        suspect.suspect = true
        router.apply(.unreachable(Self.far.uid, false))
        router.apply(.remoteHolders(endpoint: "svc", [suspect, Self.near]))
        for _ in 0..<20 {
            var next = Self.exchange(router: router)
            #expect(next.start(router: &router, mayWait: true, now: Self.now)
                == .forward(uid: Self.near.uid, name: "pico-2", proxyAddress: Self.near.proxyAddress, deadline: Self.now + .seconds(30)))
        }
    }

    @Test func test_upstreamTimeout_is504_andATunnelFailure_is502_orACloseOnceAnswering() {
        var router = LoopRouter(loop: 0, seed: 1)
        router.apply(.tunnelAdded(TunnelID(1), endpoint: "svc", loop: 0, draining: false))
        var slow = Self.exchange(router: router)
        _ = slow.start(router: &router, mayWait: true, now: Self.now)
        #expect(slow.timerFired(router: &router, now: Self.now + .seconds(30)).0 == .answer(status: 504, message: "upstream timeout", close: true))
        var broken = Self.exchange(router: router)
        _ = broken.start(router: &router, mayWait: true, now: Self.now)
        #expect(broken.upstreamFailed(progress: .answered, router: &router, now: Self.now).0 == .answer(status: 502, message: "upstream unreachable", close: true))
        var streaming = Self.exchange(router: router)
        _ = streaming.start(router: &router, mayWait: true, now: Self.now)
        _ = streaming.answerStarted(router: router)
        #expect(streaming.upstreamFailed(progress: .answered, router: &router, now: Self.now).0 == .closeConnection)
    }

    @Test func test_aTunnelOnAnotherLoop_movesTheConnection_atMostTwice() {
        var router = LoopRouter(loop: 0, seed: 1)
        router.apply(.tunnelAdded(TunnelID(4), endpoint: "svc", loop: 1, draining: false))
        var exchange = Self.exchange(router: router)
        #expect(exchange.start(router: &router, mayWait: true, now: Self.now) == .move(toLoop: 1))
        #expect(exchange.moves == 1)
        var tired = RequestExchange(head: Self.head(), framing: .none, clientHost: nil, router: router, settings: ExchangeSettings(), moves: 2)
        #expect(tired.start(router: &router, mayWait: true, now: Self.now) == .answer(status: 502, message: "upstream unreachable", close: false))
    }

    @Test func test_aClosingTunnel_isDropped_andTheRequestRoutesElsewhere() {
        var router = LoopRouter(loop: 0, seed: 1)
        router.apply(.tunnelAdded(TunnelID(1), endpoint: "svc", loop: 0, draining: false))
        router.apply(.remoteHolders(endpoint: "svc", [Self.near]))
        var exchange = Self.exchange(router: router)
        #expect(exchange.start(router: &router, mayWait: true, now: Self.now) == .openStream(TunnelID(1), deadline: Self.now + .seconds(30)))
        #expect(exchange.tunnelUnavailable(TunnelID(1), router: &router, mayWait: true, now: Self.now)
            == .forward(uid: Self.near.uid, name: "pico-2", proxyAddress: Self.near.proxyAddress, deadline: Self.now + .seconds(30)))
        #expect(router.tunnelCount == 0)
        // With no other holder, the request waits for the replacement instead of a 502.
        var alone = LoopRouter(loop: 0, seed: 1)
        alone.apply(.tunnelAdded(TunnelID(2), endpoint: "svc", loop: 0, draining: true))
        var handedOver = Self.exchange(router: alone)
        _ = handedOver.start(router: &alone, mayWait: true, now: Self.now)
        #expect(handedOver.tunnelUnavailable(TunnelID(2), router: &alone, mayWait: true, now: Self.now) == .wait(until: Self.now + .seconds(1)))
    }

    @Test func test_brokenRequest_andForwardCap_answerWithTheirStatus() {
        var router = LoopRouter(loop: 0, seed: 1)
        router.apply(.remoteHolders(endpoint: "svc", [Self.near]))
        var capped = Self.exchange(router: router)
        _ = capped.start(router: &router, mayWait: true, now: Self.now)
        #expect(capped.forwardRefused(router: &router, now: Self.now) == .answer(status: 503, message: "too many requests forwarded to pico-2", close: false))
        router.apply(.remoteHolders(endpoint: "svc", [Self.near, Self.far]))
        var busy = Self.exchange(router: router)
        guard case .forward(let first, _, _, _) = busy.start(router: &router, mayWait: true, now: Self.now) else {
            Issue.record("expected a forward")
            return
        }
        let other = first == Self.near.uid ? Self.far : Self.near
        #expect(busy.forwardRefused(router: &router, now: Self.now)
            == .forward(uid: other.uid, name: other.name, proxyAddress: other.proxyAddress, deadline: Self.now + .seconds(30)),
                "a busy holder's request goes to another one")
        #expect(!router.isUnreachable(first), "busy is not unreachable")
        for (status, message) in [(400, "bad chunk"), (408, "request body timeout"), (413, "body too large"), (431, "head too large")] {
            var broken = Self.exchange(router: router, framing: .chunked)
            _ = broken.start(router: &router, mayWait: true, now: Self.now)
            #expect(broken.requestBroken(status: status, message: message, router: &router) == .answer(status: status, message: message, close: false))
        }
    }
}
