@testable import PicoModel
import Testing

@Suite("HTTP proxy rules")
struct HTTPProxyRulesTests {
    func request(_ headers: HTTPHeaders, version: HTTPVersion = .http1_1) -> HTTPRequestHead {
        HTTPRequestHead(method: "GET", target: "/x", version: version, headers: headers)
    }

    @Test func test_endpoint_followsPikosRules() {
        #expect(HTTPProxyRules.endpoint(of: self.request(["x-pico-endpoint": "my-ep", "Host": "other.example.com"])) == "my-ep")
        #expect(HTTPProxyRules.endpoint(of: self.request(["x-pico-endpoint": " ", "Host": "foo.pico.example.com:8000"])) == "foo")
        #expect(HTTPProxyRules.endpoint(of: self.request(["Host": "localhost:8000"])) == nil)
        #expect(HTTPProxyRules.endpoint(of: self.request(["Host": "10.0.0.1:8000"])) == nil)
        #expect(HTTPProxyRules.endpoint(of: self.request(["Host": "[::1]:8000"])) == nil)
        #expect(HTTPProxyRules.endpoint(of: self.request(["Host": ""])) == nil)
        #expect(HTTPProxyRules.endpoint(of: self.request([:])) == nil)
        #expect(HTTPProxyRules.endpoint(of: self.request(["Host": "1.2.3.example"])) == "1")
    }

    @Test func test_endpoint_readsPikosFieldToo_andFieldsThatDisagreeNameNothing() {
        #expect(HTTPProxyRules.endpointNaming(of: self.request(["x-piko-endpoint": " svc\t", "Host": "other.example.com"])) == .named("svc"))
        #expect(HTTPProxyRules.endpointNaming(of: self.request(["X-Pico-Endpoint": "svc", "x-piko-endpoint": "svc"])) == .named("svc"))
        #expect(HTTPProxyRules.endpointNaming(of: self.request(["x-pico-endpoint": "svc", "x-piko-endpoint": " "])) == .named("svc"))
        #expect(HTTPProxyRules.endpointNaming(of: self.request(["x-pico-endpoint": "", "x-piko-endpoint": "", "Host": "foo.example.com"])) == .named("foo"))
        #expect(HTTPProxyRules.endpointNaming(of: self.request(["x-pico-endpoint": "a", "x-piko-endpoint": "b", "Host": "a.example.com"]))
            == .conflicting("x-pico-endpoint and x-piko-endpoint name different endpoints"))
        #expect(HTTPProxyRules.endpoint(of: self.request(["x-pico-endpoint": "a", "x-piko-endpoint": "b"])) == nil)
        #expect(HTTPProxyRules.endpointNaming(of: self.request(["Host": "localhost"])) == .unnamed)
    }

    @Test func test_authorizationFields_thatDisagree_areNamed() {
        #expect(HTTPProxyRules.authorizationDisagreement(in: ["x-pico-authorization": "Bearer a", "x-piko-authorization": " Bearer a "]) == nil)
        #expect(HTTPProxyRules.authorizationDisagreement(in: ["x-piko-authorization": "Bearer a", "Authorization": "Bearer b"]) == nil)
        #expect(HTTPProxyRules.authorizationDisagreement(in: ["X-Pico-Authorization": "Bearer a", "x-piko-authorization": "Bearer b"])
            == "x-pico-authorization and x-piko-authorization carry different tokens")
        // The scheme without case, the token without surrounding whitespace; every field counts.
        #expect(HTTPProxyRules.authorizationDisagreement(in: ["x-pico-authorization": "bearer  a", "x-piko-authorization": "Bearer a"]) == nil)
        var repeated: HTTPHeaders = ["x-pico-authorization": "Bearer a", "x-piko-authorization": "Bearer a"]
        repeated.add(name: "x-piko-authorization", value: "Bearer c")
        #expect(HTTPProxyRules.authorizationDisagreement(in: repeated) != nil)
    }

    /// A `Connection` field cannot make a forward lose the endpoint its token was checked for.
    @Test func test_endpointFields_surviveAConnectionFieldThatListsThem() {
        let headers: HTTPHeaders = ["Connection": "x-pico-endpoint, X-Piko-Endpoint, x-other", "x-pico-endpoint": "a", "x-piko-endpoint": "a", "x-other": "1"]
        let kept = HTTPProxyRules.endToEnd(headers, keepUpgrade: false)
        #expect(kept.first("x-pico-endpoint") == "a")
        #expect(kept.first("x-piko-endpoint") == "a")
        #expect(!kept.contains("x-other"))
        #expect(!kept.contains("connection"))
    }

    @Test func test_upstreamPath_acceptsPicosAndPikosPrefixes_andRefusesTheRest() {
        #expect(UpstreamPath.read("/pico/v1/upstream/my-app") == .endpoint("my-app"))
        #expect(UpstreamPath.read("/piko/v1/upstream/my-app") == .endpoint("my-app"))
        for path in ["/", "/pico/v1/upstream", "/piko/v2/upstream/x", "/PIKO/v1/upstream/x", "/_piko/v1/tcp/x"] {
            #expect(UpstreamPath.read(path) == .refused(status: 404, message: "not found"), "\(path)")
        }
        let long = String(repeating: "e", count: EndpointTable.maxEndpointLength + 1)
        for path in ["/piko/v1/upstream/", "/piko/v1/upstream/a/b", "/pico/v1/upstream/\(long)"] {
            #expect(UpstreamPath.read(path) == .refused(status: 400, message: "invalid endpoint id"), "\(path)")
        }
        #expect(UpstreamPath.read("/piko/v1/upstream/\(String(long.dropLast()))") == .endpoint(String(long.dropLast())))
        // Piko's SDK escapes the ID; the node decodes it, and refuses what no endpoint can be.
        #expect(UpstreamPath.read("/piko/v1/upstream/a%20b%c3%a9") == .endpoint("a bé"))
        for path in ["/piko/v1/upstream/a%2Fb", "/piko/v1/upstream/%2f", "/pico/v1/upstream/a%2", "/pico/v1/upstream/a%zz",
                     "/pico/v1/upstream/%ff", "/pico/v1/upstream/a%0Ab", "/pico/v1/upstream/%7F", "/pico/v1/upstream/%"] {
            #expect(UpstreamPath.read(path) == .refused(status: 400, message: "invalid endpoint id"), "\(path)")
        }
    }

    /// The fast paths agree with the lists they stand for.
    @Test func test_hopByHopCheck_andTokenSearch_matchTheirListForms() {
        for name in HTTPProxyRules.hopByHopFields {
            #expect(HTTPProxyRules.isHopByHop(name))
            #expect(HTTPProxyRules.isHopByHop(name.uppercased()))
        }
        for name in ["host", "content-length", "x-upgrade", "tee", "connections", "keep-alivf", ""] {
            #expect(!HTTPProxyRules.isHopByHop(name))
        }
        let headers: HTTPHeaders = ["Connection": " Keep-Alive ,, UPGRADE\t", "connection": "close", "Upgrade": "websocket", "X": ","]
        for (name, token) in [("connection", "keep-alive"), ("connection", "upgrade"), ("connection", "close"), ("connection", "clos"),
                              ("connection", ""), ("upgrade", "websocket"), ("upgrade", "web"), ("x", ""), ("missing", "a")] {
            #expect(headers.hasToken(name, token) == headers.tokens(name).contains(token), "\(name) \(token)")
        }
        let clean: HTTPHeaders = ["Host": "a", "Accept": "*/*"]
        #expect(HTTPProxyRules.endToEnd(clean, keepUpgrade: false) == clean)
        let named: HTTPHeaders = ["Connection": "x-drop", "X-Drop": "1", "X-Keep": "2", "TE": "trailers"]
        #expect(HTTPProxyRules.endToEnd(named, keepUpgrade: false) == ["X-Keep": "2"])
    }

    @Test func test_upstreamRequest_dropsHopByHopFields_andAddsForwardingFields() {
        let head = self.request([
            "Host": "foo.example.com", "Connection": "keep-alive, X-Secret", "X-Secret": "1", "Keep-Alive": "timeout=5",
            "TE": "trailers", "Proxy-Authorization": "Basic x", "X-Forwarded-For": "9.9.9.9", "Transfer-Encoding": "chunked", "Accept": "*/*",
        ])
        let upstream = HTTPProxyRules.upstreamRequest(head, clientIP: "1.2.3.4", scheme: "http", to: .peer)
        let names = upstream.headers.map { $0.name.lowercased() }
        for gone in ["connection", "x-secret", "keep-alive", "te", "proxy-authorization"] { #expect(!names.contains(gone), "\(gone)") }
        #expect(upstream.headers.first("x-forwarded-for") == "9.9.9.9, 1.2.3.4")
        #expect(upstream.headers.first("x-forwarded-proto") == "http")
        #expect(upstream.headers.first("x-forwarded-host") == "foo.example.com")
        #expect(upstream.headers.first("x-pico-forward") == "true")
        #expect(upstream.headers["transfer-encoding"] == ["chunked"], "the framing is restated once")
        #expect(upstream.headers.first("accept") == "*/*")
    }

    @Test func test_upstreamRequest_dropsTheVerifiedTokenField_towardsAnUpstreamOnly() {
        let head = HTTPRequestHead(method: "GET", target: "/", headers: ["Host": "svc", "X-Pico-Authorization": "Bearer t", "Authorization": "Basic own"])
        let toTunnel = HTTPProxyRules.upstreamRequest(head, clientIP: nil, scheme: "http", to: .tunnel, credentialHeader: "x-pico-authorization")
        #expect(!toTunnel.headers.contains("x-pico-authorization") && toTunnel.headers.first("authorization") == "Basic own")
        // A peer verifies the token again, so it goes along, with this node's proof; a client's
        // own proof never travels.
        var withProof = head
        withProof.headers.add(name: "x-pico-forward-proof", value: "client-made")
        let toPeer = HTTPProxyRules.upstreamRequest(withProof, clientIP: nil, scheme: "http", to: .peer, credentialHeader: "x-pico-authorization", proof: "1.abc")
        #expect(toPeer.headers.first("x-pico-authorization") == "Bearer t" && toPeer.headers["x-pico-forward-proof"] == ["1.abc"])
        let toTunnelWithClientProof = HTTPProxyRules.upstreamRequest(withProof, clientIP: nil, scheme: "http", to: .tunnel)
        #expect(!toTunnelWithClientProof.headers.contains("x-pico-forward-proof"))
        let withoutAuth = HTTPProxyRules.upstreamRequest(head, clientIP: nil, scheme: "http", to: .tunnel)
        #expect(withoutAuth.headers.first("x-pico-authorization") == "Bearer t", "a port without auth consumes nothing")
    }

    @Test func test_upstreamRequest_keepsAnUpgradeHandshake() {
        let head = self.request(["Host": "a.b.c", "Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Key": "k"])
        let upstream = HTTPProxyRules.upstreamRequest(head, clientIP: nil, scheme: "http", to: .tunnel)
        #expect(upstream.isUpgrade)
        #expect(upstream.headers.first("upgrade") == "websocket")
    }

    @Test func test_clientResponse_chunksACloseDelimitedBodyForHTTP11_andClosesForHTTP10() {
        let response = HTTPResponseHead(status: 200, headers: ["Connection": "close", "Content-Type": "text/plain"])
        let modern = HTTPProxyRules.clientResponse(response, requestMethod: "GET", clientVersion: .http1_1, clientKeepAlive: true)
        #expect(modern.framing == .chunked && modern.keepAlive)
        #expect(modern.head.headers.first("transfer-encoding") == "chunked" && !modern.head.headers.contains("connection"))
        let old = HTTPProxyRules.clientResponse(response, requestMethod: "GET", clientVersion: .http1_0, clientKeepAlive: true)
        #expect(old.framing == .untilClose && !old.keepAlive)
        #expect(old.head.headers.first("connection") == "close")
        let sized = HTTPProxyRules.clientResponse(HTTPResponseHead(status: 200, headers: ["Content-Length": "3"]), requestMethod: "GET", clientVersion: .http1_0, clientKeepAlive: true)
        #expect(sized.framing == .length && sized.keepAlive && sized.head.headers.first("connection") == "keep-alive")
        let head = HTTPProxyRules.clientResponse(HTTPResponseHead(status: 200, headers: ["Content-Length": "3"]), requestMethod: "HEAD", clientVersion: .http1_1, clientKeepAlive: false)
        #expect(head.framing == .none && head.head.headers.first("connection") == "close")
    }
}
