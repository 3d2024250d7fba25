@testable import PicoModel
import Testing

/// The TCP route's reading of a handshake, and how `RequestExchange` routes and times it.
@Suite("TCP route")
struct TCPRouteTests {
    static let key = "dGhlIHNhbXBsZSBub25jZQ=="
    static let now = Instant.zero + .seconds(100)

    static func handshake(_ path: String, host: String = "pico.example:8000", extra: HTTPHeaders = [:]) -> HTTPRequestHead {
        WebSocketHandshake.request(target: path, host: host, key: Self.key, headers: extra)
    }

    @Test func test_bothPrefixes_nameTheEndpoint_percentDecoded_andTheSubprotocolIsNegotiated() {
        #expect(TCPRoute.read(Self.handshake("/_pico/v1/tcp/db")) == .handshake(.init(endpoint: "db", key: Self.key, halfClose: false)))
        #expect(TCPRoute.read(Self.handshake("/_piko/v1/tcp/my%20db?x=1")) == .handshake(.init(endpoint: "my db", key: Self.key, halfClose: false)))
        let offered = Self.handshake("/_pico/v1/tcp/db", extra: ["Sec-WebSocket-Protocol": "chat, \(TCPRoute.halfCloseSubprotocol)"])
        guard case .handshake(let accepted) = TCPRoute.read(offered) else {
            Issue.record("refused a valid handshake")
            return
        }
        #expect(accepted.halfClose)
        let answer = accepted.switchingProtocols
        #expect(answer.status == 101 && answer.headers.first("sec-websocket-protocol") == TCPRoute.halfCloseSubprotocol)
        #expect(WebSocketHandshake.accepts(answer, key: Self.key))
        #expect(TCPRoute.read(Self.handshake("/_pico/v1/upstream/db")) == .notTCPRoute)
        #expect(TCPRoute.read(Self.handshake("/db")) == .notTCPRoute)
    }

    @Test func test_badPaths_handshakes_andCrossSiteOrigins_areRefusedWithTheirStatus() {
        #expect(TCPRoute.read(Self.handshake("/_pico/v1/tcp/")) == .refused(status: 400, message: "invalid endpoint id"))
        #expect(TCPRoute.read(Self.handshake("/_pico/v1/tcp/a/b")) == .refused(status: 400, message: "invalid endpoint id"))
        #expect(TCPRoute.read(Self.handshake("/_pico/v1/tcp/a%2")) == .refused(status: 400, message: "invalid endpoint id"))
        var plain = Self.handshake("/_pico/v1/tcp/db")
        plain.headers.remove("upgrade")
        guard case .refused(426, let message) = TCPRoute.read(plain) else {
            Issue.record("a plain GET on the TCP route was not refused with 426")
            return
        }
        #expect(message.hasPrefix("the TCP route needs a WebSocket handshake"))
        var post = Self.handshake("/_pico/v1/tcp/db")
        post.method = "POST"
        if case .refused(let status, _) = TCPRoute.read(post) { #expect(status == 405) } else { Issue.record("accepted a POST") }
        // Browsers send Origin: same host passes (case aside), another host or port does not.
        #expect(TCPRoute.read(Self.handshake("/_pico/v1/tcp/db", extra: ["Origin": "https://PICO.example:8000"])) != .notTCPRoute)
        if case .refused = TCPRoute.read(Self.handshake("/_pico/v1/tcp/db", extra: ["Origin": "https://pico.example:8000"])) { Issue.record("refused a same-origin page") }
        for origin in ["https://evil.example", "https://pico.example:9000", "null", "pico.example:8000"] {
            guard case .refused(403, let why) = TCPRoute.read(Self.handshake("/_pico/v1/tcp/db", extra: ["Origin": origin])) else {
                Issue.record("Origin \(origin) was not refused")
                continue
            }
            #expect(why.hasPrefix("cross-origin WebSocket refused"))
        }
        var two = Self.handshake("/_pico/v1/tcp/db", extra: ["Origin": "https://pico.example:8000"])
        two.headers.add(name: "Origin", value: "https://pico.example:8000")
        if case .refused(let status, _) = TCPRoute.read(two) { #expect(status == 403) } else { Issue.record("accepted two Origin fields") }
    }

    @Test func test_thePathNamesTheEndpoint_andAFieldNamingAnotherIsAConflict() {
        #expect(HTTPProxyRules.endpoint(of: Self.handshake("/_pico/v1/tcp/db")) == "db")
        #expect(HTTPProxyRules.endpoint(of: Self.handshake("/_pico/v1/tcp/db", extra: ["x-pico-endpoint": "db"])) == "db")
        #expect(HTTPProxyRules.endpointNaming(of: Self.handshake("/_pico/v1/tcp/db", extra: ["x-piko-endpoint": "other"]))
            == .conflicting("the TCP route's path and x-piko-endpoint name different endpoints"))
        // The Host label never names the route's endpoint.
        #expect(HTTPProxyRules.endpoint(of: Self.handshake("/_pico/v1/tcp/", host: "web.example.com")) == nil)
        var router = LoopRouter(loop: 0, seed: 1)
        var conflict = RequestExchange(head: Self.handshake("/_pico/v1/tcp/db", extra: ["x-pico-endpoint": "web"]), framing: .none, clientHost: "192.0.2.1",
                                       router: router, settings: ExchangeSettings())
        #expect(conflict.start(router: &router, mayWait: true, now: Self.now)
            == .answer(status: 400, message: "the TCP route's path and x-pico-endpoint name different endpoints", close: false))
    }

    /// Until its 101 the route is a bodyless request: timed, waits for a holder, retried.
    @Test func test_theRoute_isTimedAndMayWait_unlikeAnUpgradeRelayedToAnUpstream() {
        var router = LoopRouter(loop: 0, seed: 1)
        var waiting = RequestExchange(head: Self.handshake("/_pico/v1/tcp/db"), framing: .none, clientHost: "192.0.2.1", router: router, settings: ExchangeSettings())
        #expect(!waiting.isPicoPath)
        #expect(waiting.start(router: &router, mayWait: true, now: Self.now) == .wait(until: Self.now + .seconds(1)))
        router.apply(.tunnelAdded(TunnelID(1), endpoint: "db", loop: 0, draining: false))
        #expect(waiting.routingChanged(router: &router, now: Self.now + .milliseconds(10)) == .openStream(TunnelID(1), deadline: Self.now + .milliseconds(10) + .seconds(30)))
        var refusedElsewhere = RequestExchange(head: Self.handshake("/_pico/v1/other"), framing: .none, clientHost: "192.0.2.1", router: router, settings: ExchangeSettings())
        #expect(refusedElsewhere.isPicoPath)
        #expect(refusedElsewhere.start(router: &router, mayWait: true, now: Self.now) == .answer(status: 404, message: "not found", close: false))
        var badHandshake = Self.handshake("/_piko/v1/tcp/db")
        badHandshake.headers.remove("sec-websocket-key")
        var bad = RequestExchange(head: badHandshake, framing: .none, clientHost: "192.0.2.1", router: router, settings: ExchangeSettings())
        #expect(bad.start(router: &router, mayWait: true, now: Self.now)
            == .answer(status: 400, message: "the TCP route needs a WebSocket handshake: missing or malformed Sec-WebSocket-Key", close: false))
    }

    @Test func test_aForwardedRoute_asksForHeartbeats_andGoesToAnotherHolderWhenTheFirstFailsBeforeAnswering() {
        var router = LoopRouter(loop: 0, seed: 1)
        router.apply(.remoteHolders(endpoint: "db", [RequestExchangeTests.near, RequestExchangeTests.far]))
        var exchange = RequestExchange(head: Self.handshake("/_pico/v1/tcp/db"), framing: .none, clientHost: "192.0.2.1", router: router, settings: ExchangeSettings())
        guard case .forward(let first, _, _, let deadline) = exchange.start(router: &router, mayWait: true, now: Self.now) else {
            Issue.record("expected a forward")
            return
        }
        #expect(deadline == Self.now + .seconds(30))
        #expect(exchange.heartbeatRequest != nil)
        let (next, report) = exchange.upstreamFailed(progress: .unanswered, router: &router, now: Self.now + .milliseconds(5))
        #expect(report == .unreachable(first))
        guard case .forward(let second, _, _, _) = next else {
            Issue.record("expected a forward to the other holder, got \(next)")
            return
        }
        #expect(second != first)
    }
}
