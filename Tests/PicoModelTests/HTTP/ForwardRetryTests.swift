@testable import PicoModel
import Testing

@Suite("Forward retry")
struct ForwardRetryTests {
    @Test func test_aRequestTheFailedNodeNeverSaw_goesElsewhere_whateverItsMethod() {
        for method in ["GET", "POST", "DELETE", "PATCH"] {
            #expect(ForwardRetry.mayRetry(method: method, framing: .none, progress: .unsent, clientAnswered: false, retries: 0), "\(method)")
        }
    }

    @Test func test_anUnansweredRequest_goesElsewhere_onlyWhenIdempotentAndSafe() {
        for method in ["GET", "HEAD", "OPTIONS"] {
            #expect(ForwardRetry.mayRetry(method: method, framing: .none, progress: .unanswered, clientAnswered: false, retries: 1))
        }
        for method in ["POST", "PUT", "DELETE", "PATCH"] {
            #expect(!ForwardRetry.mayRetry(method: method, framing: .none, progress: .unanswered, clientAnswered: false, retries: 0), "\(method)")
        }
    }

    @Test func test_neverRetried_withABody_afterAnAnswerByte_afterTheClientHeardSomething_orTooOften() {
        #expect(!ForwardRetry.mayRetry(method: "GET", framing: .length(3), progress: .unsent, clientAnswered: false, retries: 0))
        #expect(!ForwardRetry.mayRetry(method: "POST", framing: .chunked, progress: .unsent, clientAnswered: false, retries: 0))
        #expect(!ForwardRetry.mayRetry(method: "GET", framing: .none, progress: .answered, clientAnswered: false, retries: 0))
        #expect(!ForwardRetry.mayRetry(method: "GET", framing: .none, progress: .unsent, clientAnswered: true, retries: 0))
        #expect(!ForwardRetry.mayRetry(method: "GET", framing: .none, progress: .unsent, clientAnswered: false, retries: ForwardRetry.maxRetries))
    }
}
