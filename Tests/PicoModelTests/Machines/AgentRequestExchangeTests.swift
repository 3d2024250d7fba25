@testable import PicoModel
import Testing

/// Drives `AgentRequestExchange` directly through its outcomes: what goes to the backend, what
/// goes back on the stream, how the stream ends and whether the backend connection is kept.
@Suite("AgentRequestExchange")
struct AgentRequestExchangeTests {
    static let now = Instant.zero + .seconds(100)

    static func get(_ extra: HTTPHeaders = [:], method: String = "GET") -> HTTPRequestHead {
        var headers: HTTPHeaders = ["Host": "svc"]
        for field in extra { headers.add(name: field.name, value: field.value) }
        return HTTPRequestHead(method: method, target: "/x", headers: headers)
    }

    static let upgradeRequest = Self.get(["Connection": "Upgrade", "Upgrade": "websocket"])

    static func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }

    static func text(_ action: AgentExchangeAction) -> String? {
        if case .sendToBackend(let bytes) = action { return String(decoding: bytes, as: UTF8.self) }
        return nil
    }

    /// The size of the piece a `.sendToStream` action sends (0 for any other action; large
    /// pieces make poor failure messages).
    static func streamed(_ action: AgentExchangeAction) -> Int {
        if case .sendToStream(let bytes) = action { return bytes.count }
        return 0
    }

    /// An exchange whose GET was sent whole and whose backend is connected.
    static func sentGet(timeout: Duration = .seconds(30)) -> AgentRequestExchange {
        var exchange = AgentRequestExchange(timeout: timeout)
        _ = exchange.requestHead(Self.get(), framing: .none, now: Self.now)
        _ = exchange.requestEnd(trailers: [:])
        return exchange
    }

    // MARK: Plain requests

    @Test func test_plainGet_sendsAnHTTP11EndToEndHead_streamsTheAnswer_andGivesTheConnectionBack() {
        var exchange = AgentRequestExchange(timeout: .seconds(30))
        #expect(exchange.wantsRequestParts)
        let action = exchange.requestHead(Self.get(["Connection": "keep-alive, X-Hop", "Keep-Alive": "timeout=5", "X-Hop": "1", "TE": "trailers", "X-Kept": "2"]),
                                          framing: .none, now: Self.now)
        guard case .openBackend(let head, let deadline) = action else { Issue.record("expected openBackend, got \(action)"); return }
        #expect(deadline == Self.now + .seconds(30))
        #expect(head.version == .http1_1 && head.method == "GET" && head.target == "/x")
        #expect(head.headers.fields.map(\.name) == ["Host", "X-Kept"], "hop-by-hop fields and those Connection names are dropped")
        #expect(exchange.requestEnd(trailers: [:]) == .none)
        #expect(!exchange.wantsRequestParts, "one request per stream: nothing after its end is decoded")

        var output: [UInt8] = []
        let answer = HTTPResponseHead(status: 200, headers: ["Content-Length": "2", "Connection": "keep-alive", "Keep-Alive": "timeout=5"])
        #expect(exchange.responseHead(answer, framing: .length(2), into: &output) == .cancelTimeout)
        #expect(exchange.responseBody([0x6F, 0x6B], into: &output) == .none)
        #expect(exchange.responseEnd(trailers: [:], into: &output) == .finish(keepBackend: true))
        #expect(Self.text(output) == "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", "head, body and end leave together")
        #expect(exchange.state == .finished(.answered(keptBackend: true)))
        #expect(exchange.timerFired() == .none && exchange.streamFailed() == .none && exchange.backendFailed() == .none)
    }

    @Test func test_bodyWithContentLength_isCopiedAsItComes() {
        var exchange = AgentRequestExchange(timeout: .seconds(30))
        guard case .openBackend(let head, _) = exchange.requestHead(Self.get(["Content-Length": "5"], method: "POST"), framing: .length(5), now: Self.now) else {
            Issue.record("expected openBackend"); return
        }
        #expect(head.headers.first("content-length") == "5" && !head.headers.contains("transfer-encoding"))
        #expect(exchange.requestBody(Array("hel".utf8)[...]) == .sendToBackend(Array("hel".utf8)[...]))
        #expect(exchange.requestBody(Array("lo".utf8)[...]) == .sendToBackend(Array("lo".utf8)[...]))
        #expect(exchange.wantsRequestParts)
        #expect(exchange.requestEnd(trailers: [:]) == .none)
        #expect(exchange.state == .awaitingAnswer(.sent, upgrade: false, backendOpen: true))
    }

    @Test func test_chunkedRequest_isReChunked_withItsTrailers() {
        var exchange = AgentRequestExchange(timeout: .seconds(30))
        guard case .openBackend(let head, _) = exchange.requestHead(Self.get(["Transfer-Encoding": "chunked"], method: "POST"), framing: .chunked, now: Self.now) else {
            Issue.record("expected openBackend"); return
        }
        #expect(head.headers["transfer-encoding"] == ["chunked"], "the client's field is replaced by one of ours")
        #expect(Self.text(exchange.requestBody(Array("hello".utf8)[...])) == "5\r\nhello\r\n")
        #expect(Self.text(exchange.requestBody(Array(repeating: 0x61, count: 26)[...]))?.hasPrefix("1a\r\naaaa") == true)
        #expect(Self.text(exchange.requestEnd(trailers: ["X-Sum": "1"])) == "0\r\nX-Sum: 1\r\n\r\n")
    }

    @Test func test_chunkedAnswer_isReChunked_andAnswerPiecesOverTheLimitGoUncopied() {
        var exchange = Self.sentGet()
        var output: [UInt8] = []
        #expect(exchange.responseHead(HTTPResponseHead(status: 200, headers: ["Transfer-Encoding": "chunked"]), framing: .chunked, into: &output) == .cancelTimeout)
        #expect(exchange.responseBody(Array("abc".utf8)[...], into: &output) == .none)
        #expect(exchange.responseEnd(trailers: ["X-T": "v"], into: &output) == .finish(keepBackend: true))
        #expect(Self.text(output) == "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-T: v\r\n\r\n")

        var large = Self.sentGet()
        output = []
        _ = large.responseHead(HTTPResponseHead(status: 200, headers: ["Content-Length": "20000"]), framing: .length(20_000), into: &output)
        let big = Array(repeating: UInt8(0x62), count: AgentRequestExchange.coalesceLimit + 1)[...]
        #expect(Self.streamed(large.responseBody(big, into: &output)) == big.count, "sent as it is, not copied into the output")
        let small = Array(repeating: UInt8(0x62), count: AgentRequestExchange.coalesceLimit)[...]
        #expect(Self.streamed(large.responseBody(small, into: &output)) == 0, "copied into the output")
        #expect(output.count == HTTP1Encoder.encode(HTTPResponseHead(status: 200, headers: ["Content-Length": "20000"])).count + small.count)
    }

    // MARK: Keep-alive

    @Test func test_keepAlive_onlyForACleanHTTP11Answer_toARequestSentWhole() {
        func ending(_ head: HTTPResponseHead, framing: HTTPBodyFraming = .none, eofFirst: Bool = false, requestSent: Bool = true) -> AgentExchangeAction {
            var exchange = AgentRequestExchange(timeout: .seconds(30))
            _ = exchange.requestHead(Self.get(), framing: .length(1), now: Self.now)
            if requestSent { _ = exchange.requestEnd(trailers: [:]) }
            if eofFirst { #expect(exchange.backendReadEOF() == .none) }
            var output: [UInt8] = []
            _ = exchange.responseHead(head, framing: framing, into: &output)
            return exchange.responseEnd(trailers: [:], into: &output)
        }
        #expect(ending(HTTPResponseHead(status: 204)) == .finish(keepBackend: true))
        #expect(ending(HTTPResponseHead(status: 204, headers: ["Connection": "close"])) == .finish(keepBackend: false))
        #expect(ending(HTTPResponseHead(version: .http1_0, status: 204)) == .finish(keepBackend: false))
        #expect(ending(HTTPResponseHead(version: .http1_0, status: 204, headers: ["Connection": "keep-alive"])) == .finish(keepBackend: false))
        #expect(ending(HTTPResponseHead(status: 200), framing: .untilClose) == .finish(keepBackend: false))
        #expect(ending(HTTPResponseHead(status: 204), eofFirst: true) == .finish(keepBackend: false))
        #expect(ending(HTTPResponseHead(status: 204), requestSent: false) == .finish(keepBackend: false), "the backend still expects request bytes")
    }

    @Test func test_closeDelimitedAnswer_isCopied_andEndsWithTheStream() {
        var exchange = Self.sentGet()
        var output: [UInt8] = []
        _ = exchange.responseHead(HTTPResponseHead(version: .http1_0, status: 200), framing: .untilClose, into: &output)
        #expect(exchange.responseBody(Array("data".utf8)[...], into: &output) == .none)
        #expect(exchange.backendReadEOF() == .none)
        #expect(exchange.responseEnd(trailers: [:], into: &output) == .finish(keepBackend: false))
        #expect(Self.text(output) == "HTTP/1.1 200 OK\r\n\r\ndata")
        #expect(exchange.backendFailed() == .none, "the answer ended: the EOF is no failure")
    }

    // MARK: Upgrades

    @Test func test_upgrade_101_becomesAPipe_whoseHalfClosesAreCarriedOver() {
        var exchange = AgentRequestExchange(timeout: .seconds(30))
        guard case .openBackend(let head, let deadline) = exchange.requestHead(Self.upgradeRequest, framing: .none, now: Self.now) else {
            Issue.record("expected openBackend"); return
        }
        #expect(deadline == nil, "an upgrade is not timed")
        #expect(head.headers.first("upgrade") == "websocket" && head.headers.hasToken("connection", "upgrade"))
        _ = exchange.requestEnd(trailers: [:])
        var output: [UInt8] = []
        let switching = HTTPResponseHead(status: 101, headers: ["Connection": "Upgrade", "Upgrade": "websocket"])
        #expect(exchange.responseHead(switching, framing: .none, into: &output) == .startPipe)
        #expect(Self.text(output) == "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", "the 101 goes back as it came")
        #expect(exchange.isPiping && !exchange.wantsRequestParts)
        #expect(exchange.timerFired() == .none)
        #expect(exchange.streamInputFinished() == .shutdownBackendWrite)
        #expect(exchange.state == .piping(nodeFinished: true))
        #expect(exchange.streamInputFinished() == .none)
        #expect(exchange.backendReadEOF() == .finish(keepBackend: false))
        #expect(exchange.state == .finished(.pipeClosed))
    }

    @Test func test_pipe_endsWhenTheBackendClosesFirst_orTheNodeFailsTheStream() {
        func piping() -> AgentRequestExchange {
            var exchange = AgentRequestExchange(timeout: .seconds(30))
            _ = exchange.requestHead(Self.upgradeRequest, framing: .none, now: Self.now)
            var output: [UInt8] = []
            _ = exchange.responseHead(HTTPResponseHead(status: 101), framing: .none, into: &output)
            return exchange
        }
        var eof = piping()
        #expect(eof.backendReadEOF() == .finish(keepBackend: false))
        var closed = piping()
        #expect(closed.backendFailed() == .finish(keepBackend: false))
        var failed = piping()
        #expect(failed.streamFailed() == .abandon)
        #expect(failed.state == .finished(.streamFailed))
    }

    @Test func test_101ToAPlainRequest_isNoPipe_andARefusedUpgradeIsAnOrdinaryAnswer() {
        var plain = Self.sentGet()
        var output: [UInt8] = []
        #expect(plain.responseHead(HTTPResponseHead(status: 101), framing: .none, into: &output) == .cancelTimeout)
        #expect(!plain.isPiping)

        var refused = AgentRequestExchange(timeout: .seconds(30))
        _ = refused.requestHead(Self.upgradeRequest, framing: .none, now: Self.now)
        _ = refused.requestEnd(trailers: [:])
        output = []
        #expect(refused.responseHead(HTTPResponseHead(status: 400, headers: ["Content-Length": "0"]), framing: .length(0), into: &output) == .cancelTimeout)
        #expect(refused.responseEnd(trailers: [:], into: &output) == .finish(keepBackend: true))
    }

    // MARK: Failures

    @Test func test_dialFailure_is502_upstreamUnreachable() {
        var exchange = AgentRequestExchange(timeout: .seconds(30))
        _ = exchange.requestHead(Self.get(), framing: .none, now: Self.now)
        #expect(exchange.backendUnavailable() == .answer(status: 502, message: "upstream unreachable"))
        #expect(exchange.state == .finished(.failed(status: 502)))
        #expect(!exchange.wantsRequestParts)
        #expect(exchange.requestEnd(trailers: [:]) == .none && exchange.timerFired() == .none && exchange.streamFailed() == .none)
    }

    @Test func test_backendEOFBeforeTheAnswer_is502_andAnAnswerCutMidBody_resetsTheStream() {
        var early = Self.sentGet()
        #expect(early.backendReadEOF() == .none, "the decoder may still hold a whole answer")
        #expect(early.backendFailed() == .answer(status: 502, message: "upstream unreachable"))

        var cut = Self.sentGet()
        var output: [UInt8] = []
        _ = cut.responseHead(HTTPResponseHead(status: 200, headers: ["Content-Length": "10"]), framing: .length(10), into: &output)
        _ = cut.responseBody(Array("abc".utf8)[...], into: &output)
        #expect(cut.backendReadEOF() == .none)
        #expect(cut.backendFailed() == .reset)
        #expect(cut.state == .finished(.reset))
    }

    @Test func test_timeoutBeforeTheAnswerHead_is504_evenAfterAnInterim100_butNotOnceTheAnswerStarted() {
        var exchange = Self.sentGet()
        var output: [UInt8] = []
        #expect(exchange.responseHead(HTTPResponseHead(status: 100), framing: .none, into: &output) == .none, "an interim head leaves the timeout armed")
        #expect(Self.text(output) == "HTTP/1.1 100 Continue\r\n\r\n")
        #expect(exchange.timerFired() == .answer(status: 504, message: "upstream timeout"))
        #expect(exchange.state == .finished(.failed(status: 504)))

        var started = Self.sentGet()
        _ = started.responseHead(HTTPResponseHead(status: 200, headers: ["Content-Length": "1"]), framing: .length(1), into: &output)
        #expect(started.timerFired() == .none)

        var untimed = AgentRequestExchange(timeout: .zero)
        #expect(untimed.requestHead(Self.get(), framing: .none, now: Self.now) == .openBackend(Self.get(), deadline: nil))
    }

    @Test func test_streamFailedByTheNode_closesTheBackend() {
        var waiting = Self.sentGet()
        #expect(waiting.streamFailed() == .abandon)
        #expect(waiting.state == .finished(.streamFailed))
        var answering = Self.sentGet()
        var output: [UInt8] = []
        _ = answering.responseHead(HTTPResponseHead(status: 200, headers: ["Content-Length": "1"]), framing: .length(1), into: &output)
        #expect(answering.streamFailed() == .abandon)
        #expect(answering.responseEnd(trailers: [:], into: &output) == .none, "nothing after the end")
    }

    @Test func test_brokenRequest_answersTheDecodersStatus_orResetsOnceTheAnswerStarted() {
        var head = AgentRequestExchange(timeout: .seconds(30))
        #expect(head.requestBroken(status: 431, message: "request head larger than 8192 bytes") == .answer(status: 431, message: "request head larger than 8192 bytes"))
        var body = AgentRequestExchange(timeout: .seconds(30))
        _ = body.requestHead(Self.get(), framing: .chunked, now: Self.now)
        #expect(body.requestBroken(status: 400, message: "bad chunk") == .answer(status: 400, message: "bad chunk"))
        var answered = AgentRequestExchange(timeout: .seconds(30))
        _ = answered.requestHead(Self.get(), framing: .chunked, now: Self.now)
        var output: [UInt8] = []
        _ = answered.responseHead(HTTPResponseHead(status: 200, headers: ["Content-Length": "1"]), framing: .length(1), into: &output)
        #expect(answered.requestBroken(status: 400, message: "bad chunk") == .reset, "no error JSON inside an answer already under way")
    }
}
