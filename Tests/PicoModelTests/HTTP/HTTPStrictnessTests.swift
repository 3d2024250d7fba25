@testable import PicoModel
import Testing

/// The strictness docs/data-plane-codecs.md promises, on input a hostile client (or a broken
/// backend) sends: refused at once or rewritten to one meaning before the next hop sees it.
@Suite("HTTP strictness on hostile input")
struct HTTPStrictnessTests {
    // MARK: - Bare line breaks are refused at once, not after the header timeout

    @Test(arguments: [0, 1, 5])
    func test_bareLFHead_isRefusedAtOnce_evenBeforeTheHeadCouldEnd(step: Int) {
        // With bare-LF endings the CRLF CRLF never comes: before, the decoder waited for it.
        let (parts, error) = HTTPTest.requestParts("GET / HTTP/1.1\nHost: a.example.com\n\n", step: step)
        #expect(parts.isEmpty)
        #expect(error?.statusHint == 400 && error?.message == "bare LF in the request head" && error?.offset == 14)
        let partial = HTTPTest.requestParts("GET / HTTP/1.1\nHo")
        #expect(partial.error?.message == "bare LF in the request head", "refused before the rest arrives")
    }

    @Test func test_bareCRHead_andLeadingBareLF_areRefused() {
        #expect(HTTPTest.requestParts("GET / HTTP/1.1\rHost: a\r\n\r\n").error?.message == "bare CR in the request head")
        #expect(HTTPTest.requestParts("\nGET / HTTP/1.1\r\nHost: a\r\n\r\n").error?.message == "bare LF in the request head")
        #expect(HTTPTest.requestParts("GET / HTTP/1.1\r\nHost: a\r\nX: 1\n\r\n\r\n").error?.statusHint == 400)
    }

    @Test(arguments: [0, 1])
    func test_chunkSizeLine_endingInABareLF_isRefusedAtOnce(step: Int) {
        let head = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        let (parts, error) = HTTPTest.requestParts(head + "5\nhello\r\n", step: step)
        #expect(parts.count == 1, "the head, then the refusal")
        #expect(error?.statusHint == 400 && error?.message == "bare LF in the chunk size line")
        #expect(HTTPTest.requestParts(head + "5\r\nhello\r\n0\nX: 1\r\n\r\n").error?.message == "bare LF in the chunk size line")
        #expect(HTTPTest.requestParts(head + "0\r\nX: 1\n\r\n").error?.message == "bare LF in the trailer section")
    }

    @Test func test_bareLFResponseHead_isA502AtOnce() {
        let (_, error) = HTTPTest.responseParts("HTTP/1.1 200 OK\nContent-Length: 0\n\n")
        #expect(error?.statusHint == 502 && error?.message == "bare LF in the response head")
    }

    @Test func test_bodyBytes_mayHoldBareLineBreaks() {
        let text = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\na\nb\r" + HTTP1RequestDecoderTests.get
        let (parts, error) = HTTPTest.requestParts(text)
        #expect(error == nil && parts.count == 5)
    }

    // MARK: - Content-Length: one value, restated once

    @Test func test_equalDuplicateOrListedContentLength_isForwardedAsOneField_andDifferingOnesAreRefused() throws {
        for fields in ["Content-Length: 2, 2\r\n", "Content-Length: 2\r\nContent-Length: 2\r\n", "Content-Length: 2,2\r\nContent-Length: 2\r\n"] {
            let (parts, error) = HTTPTest.requestParts("POST / HTTP/1.1\r\nHost: a\r\n\(fields)\r\nhi")
            #expect(error == nil)
            guard case .head(let head) = parts.first else { Issue.record("no head for \(fields)"); continue }
            let upstream = HTTPProxyRules.upstreamRequest(head, clientIP: nil, scheme: "http", to: .tunnel)
            #expect(upstream.headers["content-length"] == ["2"], "\(fields)")
        }
        #expect(HTTPTest.requestParts("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2, 3\r\n\r\nhi").error?.message == "conflicting Content-Length values")
        #expect(HTTPTest.requestParts("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nhi").error?.statusHint == 400)
        let plain = HTTPRequestHead(method: "POST", target: "/", headers: ["Host": "a", "Content-Length": "2"])
        #expect(HTTPProxyRules.upstreamRequest(plain, clientIP: nil, scheme: "http", to: .tunnel).headers["content-length"] == ["2"])
        let listed = HTTPResponseHead(status: 200, headers: ["Content-Length": "3, 3", "Content-Length": "3"])
        let client = HTTPProxyRules.clientResponse(listed, requestMethod: "GET", clientVersion: .http1_1, clientKeepAlive: true)
        #expect(client.head.headers["content-length"] == ["3"] && client.framing == .length)
    }

    // MARK: - Trailers cannot change framing or routing

    @Test func test_framingRoutingAndHopByHopTrailers_areDropped_othersKept() {
        let text = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n"
            + "Content-Length: 5\r\nX-Checksum: abc\r\nTransfer-Encoding: chunked\r\nHost: evil\r\nConnection: close\r\nTE: trailers\r\n"
            + "X-Pico-Forward: true\r\nx-pico-endpoint: zz\r\nX-Other: 1\r\n\r\n"
        let (parts, error) = HTTPTest.requestParts(text)
        #expect(error == nil)
        #expect(parts.last == .end(trailers: ["X-Checksum": "abc", "X-Other": "1"]))
    }

    // MARK: - Absolute-form targets

    @Test func test_absoluteFormTarget_becomesOriginForm_withHostFromTheAuthority() {
        let (parts, error) = HTTPTest.requestParts("GET http://api.example.com:8080/a/b?c=d HTTP/1.1\r\nHost: other.example.com\r\n\r\n")
        #expect(error == nil)
        guard case .head(let head) = parts.first else { Issue.record("no head"); return }
        #expect(head.target == "/a/b?c=d")
        #expect(head.headers["host"] == ["api.example.com:8080"], "the authority replaces the client's Host")
        #expect(HTTPProxyRules.endpoint(of: head) == "api")
        for (target, origin) in [("HTTPS://x.example.com", "/"), ("http://x.example.com?q=1", "/?q=1"), ("http://[::1]:80/p", "/p")] {
            let decoded = HTTPTest.requestParts("GET \(target) HTTP/1.1\r\nHost: x\r\n\r\n")
            guard case .head(let head) = decoded.parts.first else { Issue.record("no head for \(target)"); continue }
            #expect(head.target == origin, "\(target)")
        }
        let pico = HTTPTest.requestParts("GET http://a.example.com/_pico/x HTTP/1.1\r\nHost: a\r\n\r\n")
        if case .head(let head) = pico.parts.first { #expect(head.target == "/_pico/x" && head.path == "/_pico/x") }
    }

    @Test func test_absoluteFormTarget_withUserInfoOrAnotherScheme_orNoSlash_isRefused() {
        for target in ["http://user@a.example.com/", "ftp://a.example.com/", "http:///x", "a.example.com/x", "http://a b/"] {
            let error = HTTPTest.requestParts("GET \(target) HTTP/1.1\r\nHost: a\r\n\r\n").error
            #expect(error?.statusHint == 400, "\(target)")
        }
        #expect(HTTPTest.requestParts("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n").error == nil)
        #expect(HTTPTest.requestParts("CONNECT a.example.com:443 HTTP/1.1\r\nHost: a.example.com:443\r\n\r\n").error == nil)
    }

    // MARK: - Forwarding fields state what the node saw

    @Test func test_clientForwardingFields_areReplaced_butAPeersAreKept() {
        let head = HTTPRequestHead(method: "GET", target: "/", headers: [
            "Host": "api.example.com", "X-Forwarded-Host": "evil.example.com", "X-Forwarded-Proto": "https", "X-Forwarded-For": "6.6.6.6",
        ])
        let fromClient = HTTPProxyRules.upstreamRequest(head, clientIP: "1.2.3.4", scheme: "http", to: .tunnel)
        #expect(fromClient.headers["x-forwarded-host"] == ["api.example.com"])
        #expect(fromClient.headers["x-forwarded-proto"] == ["http"])
        #expect(fromClient.headers.first("x-forwarded-for") == "6.6.6.6, 1.2.3.4", "the chain is appended to, as every proxy does")
        var forwarded = head
        forwarded.headers.add(name: "x-pico-forward", value: "true")
        let fromPeer = HTTPProxyRules.upstreamRequest(forwarded, clientIP: "10.0.0.2", scheme: "http", to: .tunnel, arrivedFromPeer: true)
        #expect(fromPeer.headers["x-forwarded-host"] == ["evil.example.com"] && fromPeer.headers["x-forwarded-proto"] == ["https"], "the entry node set these")
    }

    @Test func test_xPicoForward_marksOnlyRequestsToAPeer_andNeverReachesTheUpstream() {
        let head = HTTPRequestHead(method: "GET", target: "/", headers: ["Host": "api.example.com", "X-Pico-Forward": "true"])
        let toTunnel = HTTPProxyRules.upstreamRequest(head, clientIP: nil, scheme: "http", to: .tunnel, arrivedFromPeer: true)
        #expect(!toTunnel.headers.contains("x-pico-forward"))
        let plain = HTTPRequestHead(method: "GET", target: "/", headers: ["Host": "api.example.com"])
        #expect(!HTTPProxyRules.upstreamRequest(plain, clientIP: nil, scheme: "http", to: .tunnel).headers.contains("x-pico-forward"))
        #expect(HTTPProxyRules.upstreamRequest(plain, clientIP: nil, scheme: "http", to: .peer).headers["x-pico-forward"] == ["true"])
    }
}
