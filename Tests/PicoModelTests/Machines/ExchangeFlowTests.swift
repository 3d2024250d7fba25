@testable import PicoModel
import Testing

/// Drives `ExchangeFlow` directly: bodies, back-pressure, answers, upgrades, Pico's own answers,
/// and how the connection goes on after each.
@Suite("ExchangeFlow")
struct ExchangeFlowTests {
    static func request(_ method: String = "GET", version: HTTPVersion = .http1_1, headers: HTTPHeaders = ["host": "svc"]) -> HTTPRequestHead {
        HTTPRequestHead(method: method, target: "/", version: version, headers: headers)
    }

    static func answer(_ status: Int = 200, version: HTTPVersion = .http1_1, headers: HTTPHeaders = ["content-length": "2"]) -> HTTPResponseHead {
        HTTPResponseHead(version: version, status: status, headers: headers)
    }

    static let upgradeRequest = Self.request(headers: ["host": "svc", "connection": "upgrade", "upgrade": "websocket"])

    @Test func test_keptAliveRequest_endsUpstream_relaysTheAnswer_thenReadsTheNextRequest() {
        var flow = ExchangeFlow(head: Self.request(), framing: .none)
        #expect(flow.readsRequestParts)
        #expect(flow.requestEnd() == .endUpstreamRequest(lastChunk: false, finish: true))
        #expect(!flow.readsRequestParts, "a pipelined request waits until this answer is complete")
        #expect(flow.clientStatus == 499, "no answer yet: a client that leaves now is logged 499")
        guard case .relay(let head, refuseUpgrade: false) = flow.answerHead(Self.answer(), upstreamFraming: .length(2)) else {
            Issue.record("expected a relayed answer")
            return
        }
        #expect(head.headers.first("connection") == nil)
        #expect(flow.clientFraming == .length)
        #expect(flow.answerEnded() == ExchangeFlow.Completion(upstream: .completed(reusable: true), ending: .nextRequest))
        #expect(flow.state == .finished(status: 200))
    }

    @Test func test_clientOrUpstreamThatCloses_closesOrDropsTheirConnection() {
        var old = ExchangeFlow(head: Self.request(version: .http1_0, headers: ["host": "svc"]), framing: .none)
        _ = old.requestEnd()
        _ = old.answerHead(Self.answer(), upstreamFraming: .length(2))
        #expect(old.answerEnded()?.ending == .closeWhenWritten, "an HTTP/1.0 client without keep-alive")

        var closing = ExchangeFlow(head: Self.request(), framing: .none)
        _ = closing.requestEnd()
        _ = closing.answerHead(Self.answer(headers: ["content-length": "2", "connection": "close"]), upstreamFraming: .length(2))
        #expect(closing.answerEnded() == ExchangeFlow.Completion(upstream: .completed(reusable: false), ending: .nextRequest),
                "the upstream closes its connection; the client's stays")

        var untilClose = ExchangeFlow(head: Self.request(), framing: .none)
        _ = untilClose.requestEnd()
        guard case .relay(let head, _) = untilClose.answerHead(Self.answer(headers: [:]), upstreamFraming: .untilClose) else {
            Issue.record("expected a relayed answer")
            return
        }
        #expect(head.headers.first("transfer-encoding") == "chunked", "a close-delimited body is chunked to an HTTP/1.1 client")
        #expect(untilClose.clientFraming == .chunked)
        #expect(untilClose.answerEnded() == ExchangeFlow.Completion(upstream: .completed(reusable: false), ending: .nextRequest))
    }

    @Test func test_clientEndOfStream_beforeTheAnswer_closesOnceWritten() {
        var flow = ExchangeFlow(head: Self.request(), framing: .none)
        _ = flow.requestEnd()
        #expect(flow.clientEnded() == .none)
        guard case .relay(let head, _) = flow.answerHead(Self.answer(), upstreamFraming: .length(2)) else {
            Issue.record("expected a relayed answer")
            return
        }
        #expect(head.headers.first("connection") == "close")
        #expect(flow.answerEnded()?.ending == .closeWhenWritten)

        let after = ExchangeFlow(head: Self.request(), framing: .none, clientFinished: true)
        #expect(after.state == .awaitingAnswer(body: .arriving, client: .finished), "a pipelined request after the client's end")
    }

    @Test func test_chunkedBody_heldBackWhileTheUpstreamIsFull_thenEndsWithALastChunk() {
        var flow = ExchangeFlow(head: Self.request("POST"), framing: .chunked)
        #expect(flow.sendsBody && flow.awaitsBody)
        flow.upstreamFull()
        #expect(flow.isHeldBack)
        #expect(!flow.readsRequestParts, "the client is not read while the upstream is full")
        #expect(flow.awaitsBody)
        let resumed = flow.upstreamHasRoom()
        #expect(resumed)
        let resumedAgain = flow.upstreamHasRoom()
        #expect(!resumedAgain, "only a held-back client is read again")
        #expect(flow.readsRequestParts)
        #expect(flow.requestEnd() == .endUpstreamRequest(lastChunk: true, finish: true))
        #expect(!flow.awaitsBody)
    }

    @Test func test_answerBeforeTheBodyEnded_closesLingering_andAbandonsTheUpstream() {
        var flow = ExchangeFlow(head: Self.request("POST"), framing: .length(10))
        _ = flow.answerHead(Self.answer(413), upstreamFraming: .length(2))
        #expect(flow.sendsBody, "the upstream still reads the body while it answers")
        #expect(flow.answerEnded() == ExchangeFlow.Completion(upstream: .abandoned, ending: .closeLingering))
    }

    @Test func test_bodyThatEnds_whileTheAnswerStreams_keepsTheConnection() {
        var flow = ExchangeFlow(head: Self.request("POST"), framing: .length(10))
        _ = flow.answerHead(Self.answer(), upstreamFraming: .length(2))
        #expect(flow.requestEnd() == .endUpstreamRequest(lastChunk: false, finish: true))
        #expect(flow.answerEnded() == ExchangeFlow.Completion(upstream: .completed(reusable: true), ending: .nextRequest))
    }

    @Test func test_picosOwnAnswer_withTheBodyArriving_dropsTheRest_thenKeepsTheConnection() {
        var flow = ExchangeFlow(head: Self.request("POST"), framing: .length(10))
        let own = flow.answeredByPico(status: 404, close: false)
        #expect(own == ExchangeFlow.OwnAnswer(keepAlive: true, completion: nil))
        #expect(!flow.sendsBody && flow.readsRequestParts, "the rest of the body is read and dropped")
        #expect(flow.clientStatus == 404)
        #expect(!flow.awaitsAnswerEnd)
        #expect(flow.requestEnd() == .completed(ExchangeFlow.Completion(upstream: .abandoned, ending: .nextRequest)))
    }

    @Test func test_picosOwnAnswer_thatCloses_leavesTheBodyUnread_butAWholeRequestKeepsItsConnection() {
        var streaming = ExchangeFlow(head: Self.request("POST"), framing: .length(10))
        #expect(streaming.answeredByPico(status: 502, close: true)
            == ExchangeFlow.OwnAnswer(keepAlive: false, completion: ExchangeFlow.Completion(upstream: .abandoned, ending: .closeLingering)))

        var whole = ExchangeFlow(head: Self.request(), framing: .none)
        _ = whole.requestEnd()
        #expect(whole.answeredByPico(status: 504, close: true)
            == ExchangeFlow.OwnAnswer(keepAlive: true, completion: ExchangeFlow.Completion(upstream: .abandoned, ending: .nextRequest)),
            "a 504 after the whole request went out: nothing is unread")

        var unasked = ExchangeFlow(head: Self.request(version: .http1_0, headers: ["host": "svc"]), framing: .none)
        _ = unasked.requestEnd()
        #expect(unasked.answeredByPico(status: 502, close: false).completion?.ending == .closeWhenWritten)
    }

    @Test func test_upgrade_accepted_flowsBothWays_andClosesWhenBothDirectionsFinished() {
        var flow = ExchangeFlow(head: Self.upgradeRequest, framing: .none)
        #expect(flow.requestEnd() == .endUpstreamRequest(lastChunk: false, finish: false), "the client's side goes on after the answer")
        guard case .upgrade(let head, finishUpstream: false) = flow.answerHead(Self.answer(101, headers: ["connection": "upgrade", "upgrade": "websocket"]), upstreamFraming: nil) else {
            Issue.record("expected an upgrade")
            return
        }
        #expect(head.headers.first("upgrade") == "websocket")
        #expect(flow.isTunnelling && !flow.readsRequestParts && !flow.awaitsBody)
        #expect(flow.clientStatus == 101)
        flow.upstreamFull()
        #expect(flow.isHeldBack)
        let resumed = flow.upstreamHasRoom()
        #expect(resumed)
        #expect(flow.clientEnded() == .finishUpstream(thenClose: false))
        let closes = flow.upstreamFinished()
        #expect(closes, "both directions finished: close")

        var upstreamFirst = ExchangeFlow(head: Self.upgradeRequest, framing: .none)
        _ = upstreamFirst.requestEnd()
        _ = upstreamFirst.answerHead(Self.answer(101, headers: [:]), upstreamFraming: nil)
        let closesEarly = upstreamFirst.upstreamFinished()
        #expect(!closesEarly, "the client may still send")
        #expect(upstreamFirst.clientEnded() == .finishUpstream(thenClose: true))
    }

    @Test func test_upgrade_declined_readsHTTPAgain_andPicosAnswerToAnUpgradeCloses() {
        var declined = ExchangeFlow(head: Self.upgradeRequest, framing: .none)
        _ = declined.requestEnd()
        guard case .relay(_, refuseUpgrade: true) = declined.answerHead(Self.answer(), upstreamFraming: .length(2)) else {
            Issue.record("expected a relayed answer that refuses the upgrade")
            return
        }
        #expect(!declined.isTunnelling)

        var answered = ExchangeFlow(head: Self.upgradeRequest, framing: .none)
        _ = answered.requestEnd()
        #expect(answered.answeredByPico(status: 502, close: false)
            == ExchangeFlow.OwnAnswer(keepAlive: false, completion: ExchangeFlow.Completion(upstream: .abandoned, ending: .closeWhenWritten)))

        var plain = ExchangeFlow(head: Self.request(), framing: .none)
        _ = plain.requestEnd()
        guard case .relay = plain.answerHead(Self.answer(101, headers: [:]), upstreamFraming: nil) else {
            Issue.record("a 101 to a request that asked for no upgrade is not a tunnel")
            return
        }
        #expect(!plain.isTunnelling)
    }

    @Test func test_brokenRequest_closesLingering_andAnAbortKeepsWhatTheClientGot() {
        var broken = ExchangeFlow(head: Self.request("POST"), framing: .chunked)
        #expect(broken.requestBroke(status: 400)
            == ExchangeFlow.OwnAnswer(keepAlive: false, completion: ExchangeFlow.Completion(upstream: .abandoned, ending: .closeLingering)))
        #expect(broken.clientStatus == 400)

        var cut = ExchangeFlow(head: Self.request(), framing: .none)
        _ = cut.requestEnd()
        _ = cut.answerHead(Self.answer(200), upstreamFraming: .length(2))
        cut.abort()
        #expect(cut.state == .finished(status: 200))

        var gone = ExchangeFlow(head: Self.request(), framing: .none)
        gone.abort()
        #expect(gone.state == .finished(status: 499), "the client left before any answer")
    }

    @Test func test_movedRequest_thatEndedAlready_doesNotWaitForItsEnd() {
        var flow = ExchangeFlow(head: Self.request(), framing: .none, requestEnded: true)
        #expect(flow.requestEnded && !flow.readsRequestParts)
        #expect(flow.requestEnd() == .none)
        _ = flow.answerHead(Self.answer(), upstreamFraming: .length(2))
        #expect(flow.answerEnded()?.ending == .nextRequest)
    }

    @Test func test_clientThatFinishedBeforeTheUpgrade_hasItsHalfClosePassedOn_andTheTunnelClosesWithTheUpstream() {
        var flow = ExchangeFlow(head: Self.upgradeRequest, framing: .none)
        _ = flow.requestEnd()
        #expect(flow.clientEnded() == .none, "no tunnel yet")
        #expect(flow.answerHead(Self.answer(101, headers: [:]), upstreamFraming: nil) == .upgrade(Self.answer(101, headers: [:]), finishUpstream: true))
        #expect(flow.state == .tunnelling(fromClient: .finished, fromUpstream: .open))
        let closes = flow.upstreamFinished()
        #expect(closes, "both directions finished: the connection closes without a second end of stream")
    }

    @Test func test_picosOwnAnswer_toAHeldBackClient_closesLingering() {
        var flow = ExchangeFlow(head: Self.request("POST"), framing: .length(1_000_000))
        flow.upstreamFull()
        #expect(flow.answeredByPico(status: 502, close: false)
            == ExchangeFlow.OwnAnswer(keepAlive: false, completion: ExchangeFlow.Completion(upstream: .abandoned, ending: .closeLingering)),
            "a client nobody reads would never be resumed to drain its body")
    }

    @Test func test_onlyARequestWithNothingAfterItsHead_goesUpstreamWhole() {
        #expect(ExchangeFlow(head: Self.request(), framing: .none).headIsWholeRequest)
        #expect(!ExchangeFlow(head: Self.request("POST"), framing: .length(3)).headIsWholeRequest)
        #expect(!ExchangeFlow(head: Self.upgradeRequest, framing: .none).headIsWholeRequest)
        #expect(!ExchangeFlow(head: Self.request("CONNECT"), framing: .none).headIsWholeRequest)
    }
}
