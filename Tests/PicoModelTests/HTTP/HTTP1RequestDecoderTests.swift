@testable import PicoModel
import Testing

@Suite("HTTP/1.1 request decoder")
struct HTTP1RequestDecoderTests {
    static let get = "GET /a/b?c=d HTTP/1.1\r\nHost: alpha.example.com\r\nAccept: */*\r\n\r\n"

    @Test(arguments: [0, 1, 3, 7])
    func test_pipelinedRequests_decodeTheSame_whateverTheReadSizes(step: Int) throws {
        let text = Self.get + "POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"
            + "PUT /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\nA\r\n0123456789\r\n0\r\nX-Sum: 1\r\n\r\n"
        let (parts, error) = HTTPTest.requestParts(text, step: step)
        #expect(error == nil)
        let heads = parts.compactMap { if case .head(let head) = $0 { head } else { nil } }
        #expect(heads.map(\.method) == ["GET", "POST", "PUT"])
        #expect(heads[0].target == "/a/b?c=d" && heads[0].path == "/a/b" && heads[0].headers.first("host") == "alpha.example.com")
        #expect(parts[1] == .end(trailers: [:]))
        #expect(parts[3] == .body(HTTPTest.body("hello")))
        #expect(parts[6] == .body(HTTPTest.body("abc0123456789")))
        #expect(parts[7] == .end(trailers: ["X-Sum": "1"]))
        #expect(parts.count == 8)
    }

    @Test func test_leadingEmptyLines_areSkipped_withinTheLimit() {
        #expect(HTTPTest.requestParts("\r\n" + Self.get).error == nil)
        #expect(HTTPTest.requestParts(String(repeating: "\r\n", count: 5) + Self.get).error?.statusHint == 400)
    }

    @Test func test_keepAliveRules() {
        func decoderState(_ text: String) -> HTTP1RequestDecoder.State {
            var decoder = HTTP1RequestDecoder()
            decoder.feed(Array(text.utf8))
            while (try? decoder.next()) != nil {}
            return decoder.state
        }
        #expect(decoderState(Self.get) == .head)
        #expect(decoderState("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\nGET / HTTP/1.1\r\n") == .closed, "bytes after a close request are ignored")
        #expect(decoderState("GET / HTTP/1.0\r\n\r\n") == .closed)
        #expect(decoderState("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n") == .head)
    }

    @Test func test_upgradeRequest_pausesAtItsEnd_andHandsOverTheFollowingBytes() throws {
        var decoder = HTTP1RequestDecoder()
        decoder.feed(Array("GET /ws HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n\u{81}\u{05}".utf8))
        guard case .head(let head)? = try? decoder.next() else { Issue.record("no head"); return }
        #expect(head.isUpgrade)
        #expect(try decoder.next() == .end(trailers: [:]))
        #expect(try decoder.next() == nil)
        #expect(decoder.state == .upgradePending)
        #expect(Array(decoder.takeUpgradedBytes()) == Array("\u{81}\u{05}".utf8))
        #expect(decoder.state == .upgraded)
    }

    @Test func test_refusedUpgrade_returnsToRequests() throws {
        var decoder = HTTP1RequestDecoder()
        decoder.feed(Array("GET /ws HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n".utf8) + Array(Self.get.utf8))
        _ = try decoder.next()
        _ = try decoder.next()
        decoder.refuseUpgrade()
        guard case .head(let head)? = try decoder.next() else { Issue.record("no second head"); return }
        #expect(head.target == "/a/b?c=d")
    }

    /// Each malformed request and the status the server must answer.
    static let refused: [(String, Int, String)] = [
        ("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400, "both Content-Length and Transfer-Encoding"),
        ("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", 400, "conflicting Content-Length"),
        ("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3, 4\r\n\r\n", 400, "conflicting Content-Length"),
        ("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +3\r\n\r\n", 400, "invalid Content-Length"),
        ("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n", 400, "invalid Content-Length"),
        ("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0x10\r\n\r\n", 400, "invalid Content-Length"),
        ("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999\r\n\r\n", 400, "invalid Content-Length"),
        ("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501, "unsupported Transfer-Encoding"),
        ("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 501, "unsupported Transfer-Encoding"),
        ("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: xchunked\r\n\r\n", 501, "unsupported Transfer-Encoding"),
        ("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400, "Transfer-Encoding in an HTTP/1.0 request"),
        ("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400, "invalid chunk size"),
        ("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n 5\r\nhello\r\n", 400, "invalid chunk size"),
        ("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n", 400, "invalid chunk size"),
        ("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000\r\n", 400, "invalid chunk size"),
        ("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n", 400, "chunk data not followed by CRLF"),
        ("GET / HTTP/1.1\nHost: h\r\n\r\n", 400, "bare LF"),
        ("GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n", 400, "bare CR"),
        ("GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n folded\r\n\r\n", 400, "obsolete line folding"),
        ("GET / HTTP/1.1\r\nHost : h\r\n\r\n", 400, "malformed header name"),
        ("GET / HTTP/1.1\r\nHost: h\r\nNoColon\r\n\r\n", 400, "header line without a colon"),
        ("GET / HTTP/1.1\r\nHost: h\r\nX-A: a\u{01}b\r\n\r\n", 400, "control byte in the value of header 'X-A'"),
        ("GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", 400, "missing Host header"),
        ("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, "more than one Host header"),
        ("GET  / HTTP/1.1\r\nHost: h\r\n\r\n", 400, "malformed request line"),
        ("GET /a b HTTP/1.1\r\nHost: h\r\n\r\n", 400, "malformed request line"),
        ("G(T / HTTP/1.1\r\nHost: h\r\n\r\n", 400, "malformed method"),
        ("GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505, "unsupported HTTP/2.0"),
        ("GET / HTTP/1.10\r\nHost: h\r\n\r\n", 400, "malformed HTTP version"),
        ("GET / FOO/1.1\r\nHost: h\r\n\r\n", 400, "malformed HTTP version"),
    ]

    @Test(arguments: 0..<HTTP1RequestDecoderTests.refused.count)
    func test_malformedRequest_isRefused_withTheRightStatus(index: Int) {
        let (text, status, message) = Self.refused[index]
        for step in [0, 1] {
            let error = HTTPTest.requestParts(text, step: step).error
            #expect(error?.statusHint == status, "\(text.debugDescription) step \(step): \(String(describing: error))")
            #expect(error?.message.contains(message) == true, "\(text.debugDescription): \(String(describing: error))")
        }
    }

    @Test func test_agreeingContentLengths_areOneLength() {
        let (parts, error) = HTTPTest.requestParts("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 2, 2\r\nContent-Length: 2\r\n\r\nok")
        #expect(error == nil && parts.count == 3 && parts[1] == .body(HTTPTest.body("ok")))
    }

    @Test func test_limits_give414And431() {
        var limits = HTTPDecoderLimits()
        limits.maxStartLineBytes = 64
        limits.maxHeadBytes = 256
        limits.maxHeaderCount = 4
        let longTarget = "GET /" + String(repeating: "a", count: 100) + " HTTP/1.1\r\nHost: h\r\n\r\n"
        #expect(HTTPTest.requestParts(longTarget, limits: limits).error?.statusHint == 414)
        #expect(HTTPTest.requestParts(String(longTarget.prefix(80)), limits: limits).error?.statusHint == 414, "refused before the line ends")
        let bigHead = "GET / HTTP/1.1\r\nHost: h\r\nX-Big: " + String(repeating: "b", count: 300) + "\r\n\r\n"
        #expect(HTTPTest.requestParts(bigHead, limits: limits).error?.statusHint == 431)
        #expect(HTTPTest.requestParts(String(bigHead.prefix(280)), limits: limits).error?.statusHint == 431, "refused before the head ends")
        let many = "GET / HTTP/1.1\r\nHost: h\r\n" + (1...4).map { "X-\($0): v\r\n" }.joined() + "\r\n"
        #expect(HTTPTest.requestParts(many, limits: limits).error?.statusHint == 431)
    }

    @Test func test_eof_insideAHeadOrBody_isAnError_butBetweenRequestsIsNot() {
        #expect(HTTPTest.requestParts(Self.get, eof: true).error == nil)
        #expect(HTTPTest.requestParts("GET / HTT", eof: true).error?.message.contains("inside the request head") == true)
        let body = HTTPTest.requestParts("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc", eof: true)
        #expect(body.parts.last == .body(HTTPTest.body("abc")) && body.error?.message.contains("inside the body") == true)
        #expect(HTTPTest.requestParts("", eof: true).error == nil)
    }

    @Test func test_afterAnError_theDecoderStaysFailed() throws {
        var decoder = HTTP1RequestDecoder()
        decoder.feed(Array("GET / HTTP/1.1\r\nHost : h\r\n\r\n".utf8))
        #expect(throws: HTTPProtocolError.self) { try decoder.next() }
        decoder.feed(Array(Self.get.utf8))
        #expect(throws: HTTPProtocolError.self) { try decoder.next() }
        #expect(!decoder.isIdle)
    }

    @Test func test_isIdle_onlyBetweenRequests() throws {
        var decoder = HTTP1RequestDecoder()
        #expect(decoder.isIdle)
        decoder.feed(Array("GET / HT".utf8))
        #expect(try decoder.next() == nil)
        #expect(!decoder.isIdle)
        decoder.feed(Array("TP/1.1\r\nHost: h\r\n\r\n".utf8))
        _ = try decoder.next()
        #expect(!decoder.isIdle, "the request has not ended")
        #expect(try decoder.next() == .end(trailers: [:]))
        #expect(decoder.isIdle)
    }

    @Test func test_inputBuffer_resumedSearches_findPatternsSplitAcrossFeeds() throws {
        var buffer = StreamBuffer()
        buffer.append(Array("GET / HTTP/1.1\r".utf8))
        #expect(try buffer.firstCRLF(within: 100) == nil)
        #expect(try buffer.firstEmptyLine(within: 100) == nil)
        buffer.append(Array("\nHost: h\r\n\r".utf8))
        #expect(try buffer.firstCRLF(within: 100) == 14)
        #expect(try buffer.firstEmptyLine(within: 100) == nil)
        buffer.append([0x0A])
        #expect(try buffer.firstEmptyLine(within: 100) == 23)
        #expect(try buffer.firstEmptyLine(within: 10) == nil, "a smaller limit still bounds the search")
        buffer.skip(16)
        #expect(try buffer.firstCRLF(within: 100) == 7, "consuming bytes restarts the search")
    }

    @Test func test_hostileInput_neverTraps_andMemoryStaysBounded() {
        var rng = SplitMix64(seed: 2026)
        let valid = Array((Self.get + "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nwiki\r\n0\r\n\r\n").utf8)
        let alphabet = Array("\r\n :;,0123456789abcdefGET/HTTP1.Host-Content-Length: chunked\t\u{0}\u{7f}".utf8)
        for round in 0..<2_000 {
            var bytes = valid
            for _ in 0..<(1 + rng.index(below: 6)) {
                let position = rng.index(below: bytes.count)
                switch rng.index(below: 3) {
                case 0: bytes[position] = alphabet[rng.index(below: alphabet.count)]
                case 1: bytes.insert(alphabet[rng.index(below: alphabet.count)], at: position)
                default: bytes.remove(at: position)
                }
            }
            if round % 10 == 0 { bytes = (0..<rng.index(below: 400)).map { _ in UInt8(truncatingIfNeeded: rng.next()) } }
            var decoder = HTTP1RequestDecoder()
            var start = 0
            while start < bytes.count {
                let end = min(bytes.count, start + 1 + rng.index(below: 40))
                decoder.feed(bytes[start..<end])
                start = end
                do {
                    while try decoder.next() != nil {}
                } catch {
                    #expect([400, 414, 431, 501, 505].contains(error.statusHint))
                    break
                }
                #expect(decoder.bufferedByteCount <= decoder.limits.maxHeadBytes + 64)
            }
        }
    }
}
