@testable import PicoModel
import Testing

/// Drives `AgentTCPConnection` through its outcomes.
@Suite("AgentTCPConnection")
struct AgentTCPConnectionTests {
    static let now = Instant.zero + .seconds(10)

    @Test func test_theStreamIsAcknowledgedOnlyOnceTheServiceAccepted_andEachDirectionEndsOnItsOwn() {
        var connection = AgentTCPConnection(timeout: .seconds(2))
        #expect(connection.start(now: Self.now) == .dial(deadline: Self.now + .seconds(2)))
        #expect(connection.streamEnded() == nil, "nothing to shut before the service accepted")
        #expect(connection.connected() == .acknowledgeAndPipe)
        #expect(connection.timerFired(now: Self.now + .seconds(5)) == nil, "a late timer changes nothing")
        #expect(connection.serviceEnded() == [.finishStream])
        #expect(connection.state == .piping(fromNode: .open, fromService: .ended))
        #expect(connection.streamEnded() == .close)
        #expect(connection.state == .finished(.closed))

        var other = AgentTCPConnection(timeout: .zero)
        #expect(other.start(now: Self.now) == .dial(deadline: nil))
        _ = other.connected()
        #expect(other.streamEnded() == .shutdownServiceWrite)
        #expect(other.serviceEnded() == [.finishStream, .close])
        #expect(other.serviceEnded() == [] && other.streamFailed() == nil)
    }

    @Test func test_aRefusedOrSlowDial_resetsTheStream_andFailuresEndAtOnce() {
        var refused = AgentTCPConnection(timeout: .seconds(2))
        _ = refused.start(now: Self.now)
        #expect(refused.serviceFailed("connection refused") == .resetAndClose)
        #expect(refused.state == .finished(.dialFailed("connection refused")))
        #expect(refused.connected() == nil)

        var slow = AgentTCPConnection(timeout: .seconds(2))
        _ = slow.start(now: Self.now)
        #expect(slow.timerFired(now: Self.now + .seconds(1)) == nil, "early: nothing")
        #expect(slow.timerFired(now: Self.now + .seconds(2)) == .resetAndClose)
        #expect(slow.state == .finished(.dialFailed("no connection within 2.0 seconds")))

        var reset = AgentTCPConnection(timeout: .seconds(2))
        _ = reset.start(now: Self.now)
        _ = reset.connected()
        #expect(reset.streamFailed() == .closeService)
        #expect(reset.serviceFailed("x") == nil)

        var broken = AgentTCPConnection(timeout: .seconds(2))
        _ = broken.start(now: Self.now)
        _ = broken.connected()
        #expect(broken.serviceFailed("connection reset by peer") == .resetAndClose)
        #expect(broken.state == .finished(.serviceFailed("connection reset by peer")))
    }
}
