@testable import PicoModel
import Testing

/// Drives `ClientReadWatch` directly: what a slow client owes, and when it gets 408 or a silent
/// close.
@Suite("ClientReadWatch")
struct ClientReadWatchTests {
    static let now = Instant.zero + .seconds(100)
    static let timeouts = ClientReadWatch.Timeouts(idle: .seconds(60), head: .seconds(10), body: .seconds(5))

    @Test func test_aNewConnection_owesItsFirstHeadWithinTheHeaderTimeoutOfItsAccept() {
        var silent = ClientReadWatch(acceptedAt: Self.now, timeouts: Self.timeouts)
        #expect(silent.deadline == Self.now + .seconds(10), "the header timeout, not the idle one")
        #expect(silent.expired(now: Self.now + .seconds(9), bodyHeldBack: false) == .notYet(Self.now + .seconds(10)))
        #expect(silent.expired(now: Self.now + .seconds(10), bodyHeldBack: false) == .closeSilently, "nothing read: no answer")
        #expect(silent.expired(now: Self.now + .seconds(11), bodyHeldBack: false) == .none, "once")

        var trickling = ClientReadWatch(acceptedAt: Self.now, timeouts: Self.timeouts)
        trickling.headBytesRead(now: Self.now + .seconds(9))
        #expect(trickling.deadline == Self.now + .seconds(10), "a first byte late in the window does not restart the clock")
        #expect(trickling.expired(now: Self.now + .seconds(10), bodyHeldBack: false) == .answer(status: 408, message: "request header timeout"))
    }

    @Test func test_betweenRequests_theIdleTimeoutClosesSilently_aStartedHeadGets408() {
        var watch = ClientReadWatch(acceptedAt: Self.now, timeouts: Self.timeouts)
        watch.requestBegan(bodyFollows: false, now: Self.now)
        #expect(watch.deadline == nil, "a whole request owes nothing: the upstream may take its time")
        watch.awaitNextRequest(headStarted: false, now: Self.now + .seconds(1))
        #expect(watch.awaitsNextRequest)
        #expect(watch.deadline == Self.now + .seconds(61))
        watch.headBytesRead(now: Self.now + .seconds(30))
        #expect(!watch.awaitsNextRequest)
        #expect(watch.deadline == Self.now + .seconds(40), "the head's clock starts at its first byte")
        watch.headBytesRead(now: Self.now + .seconds(39))
        #expect(watch.deadline == Self.now + .seconds(40), "more bytes of it do not extend it")
        #expect(watch.expired(now: Self.now + .seconds(40), bodyHeldBack: false) == .answer(status: 408, message: "request header timeout"))

        var idle = ClientReadWatch(owingNothing: Self.timeouts)
        idle.awaitNextRequest(headStarted: false, now: Self.now)
        #expect(idle.expired(now: Self.now + .seconds(60), bodyHeldBack: false) == .closeSilently)

        var pipelined = ClientReadWatch(owingNothing: Self.timeouts)
        pipelined.awaitNextRequest(headStarted: true, now: Self.now)
        #expect(pipelined.deadline == Self.now + .seconds(10), "part of the next head is buffered already")
    }

    @Test func test_aBody_mayPauseForTheReadTimeout_andHeldBackTimeIsNotTheClients() {
        var watch = ClientReadWatch(owingNothing: Self.timeouts)
        watch.requestBegan(bodyFollows: true, now: Self.now)
        #expect(watch.deadline == Self.now + .seconds(5))
        watch.bodyProgressed(now: Self.now + .seconds(4))
        #expect(watch.expired(now: Self.now + .seconds(5), bodyHeldBack: false) == .notYet(Self.now + .seconds(9)), "an early timer re-arms")
        #expect(watch.expired(now: Self.now + .seconds(9), bodyHeldBack: true) == .notYet(Self.now + .seconds(14)),
                "Pico held the client back: the clock restarts")
        #expect(watch.expired(now: Self.now + .seconds(14), bodyHeldBack: false) == .answer(status: 408, message: "request body timeout"))

        var ended = ClientReadWatch(owingNothing: Self.timeouts)
        ended.requestBegan(bodyFollows: true, now: Self.now)
        ended.stopWatching()
        #expect(ended.expired(now: Self.now + .seconds(60), bodyHeldBack: false) == .none, "a body that ended owes nothing")
        ended.bodyProgressed(now: Self.now + .seconds(61))
        #expect(ended.deadline == nil, "bytes after it (an upgrade's) start no clock")
    }
}

extension ClientReadWatchTests {
    @Test func test_aClientWaitingFor100Continue_owesItsBodyOnlyOnceToldToGoOn() {
        var watch = ClientReadWatch(owingNothing: Self.timeouts)
        watch.requestBegan(bodyFollows: true, expectsContinue: true, now: Self.now)
        #expect(watch.deadline == nil, "a slow upstream's silence is not the client's")
        watch.answerHeadSent(status: 103, now: Self.now + .seconds(20))
        #expect(watch.deadline == nil, "early hints do not tell it to go on")
        watch.answerHeadSent(status: 100, now: Self.now + .seconds(30))
        #expect(watch.deadline == Self.now + .seconds(35))
        #expect(watch.expired(now: Self.now + .seconds(35), bodyHeldBack: false) == .answer(status: 408, message: "request body timeout"))

        var refused = ClientReadWatch(owingNothing: Self.timeouts)
        refused.requestBegan(bodyFollows: true, expectsContinue: true, now: Self.now)
        refused.answerHeadSent(status: 502, now: Self.now + .seconds(1))
        #expect(refused.deadline == Self.now + .seconds(6), "after a final answer the rest is read and dropped, within the read timeout")

        var eager = ClientReadWatch(owingNothing: Self.timeouts)
        eager.requestBegan(bodyFollows: true, expectsContinue: true, now: Self.now)
        eager.bodyProgressed(now: Self.now + .seconds(1))
        #expect(eager.deadline == Self.now + .seconds(6), "a client that sent its body anyway (curl after 1 s) owes the rest")
    }

    @Test func test_expectsContinue_isTheHTTP11FieldOnly() {
        #expect(HTTPRequestHead(method: "POST", target: "/", headers: ["Expect": "100-Continue"]).expectsContinue)
        #expect(!HTTPRequestHead(method: "POST", target: "/", version: .http1_0, headers: ["expect": "100-continue"]).expectsContinue,
                "an HTTP/1.0 client's expectation is ignored")
        #expect(!HTTPRequestHead(method: "POST", target: "/", headers: ["expect": "something-else"]).expectsContinue)
    }
}
