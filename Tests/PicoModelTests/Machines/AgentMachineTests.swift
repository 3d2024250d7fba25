import PicoModel
import Testing

@Suite("AgentMachine: Piko's backoff and make-before-break")
struct AgentMachineTests {
    static let now = Instant.zero + .seconds(100)

    /// An agent whose first tunnel (1) its node just asked to move: its replacement is dialling.
    static func toldToMove(rng: inout SplitMix64) -> AgentMachine {
        var agent = AgentMachine()
        _ = agent.handle(.dialDue, now: Self.now, rng: &rng)
        _ = agent.handle(.tunnelOpened(TunnelID(1)), now: Self.now, rng: &rng)
        _ = agent.handle(.toldToMove(TunnelID(1)), now: Self.now, rng: &rng)
        return agent
    }

    @Test func test_failedDials_backOffFrom100msDoublingTo15s_withAtMostTenPercentJitter() {
        var agent = AgentMachine()
        var rng = SplitMix64(seed: 1)
        #expect(agent.handle(.dialDue, now: Self.now, rng: &rng) == [.dialNow])
        var expected = Duration.milliseconds(100)
        for _ in 0..<12 {
            guard case .retry(let due)? = agent.handle(.dialFailed, now: Self.now, rng: &rng).first else {
                Issue.record("a failed dial schedules a retry")
                return
            }
            let delay = due - Self.now
            #expect(delay >= expected && delay <= expected + expected / 10, "\(delay) for \(expected)")
            #expect(agent.connecting)
            expected = min(expected * 2, .seconds(15))
        }
        #expect(agent.backoff == .seconds(15))
    }

    @Test func test_aRequestOnASettledTunnel_resetsTheBackoff() {
        var agent = AgentMachine()
        var rng = SplitMix64(seed: 2)
        _ = agent.handle(.dialDue, now: Self.now, rng: &rng)
        _ = agent.handle(.dialFailed, now: Self.now, rng: &rng)
        _ = agent.handle(.dialFailed, now: Self.now, rng: &rng)
        #expect(agent.backoff == .milliseconds(400))
        #expect(agent.handle(.tunnelOpened(TunnelID(1)), now: Self.now, rng: &rng).isEmpty)
        #expect(!agent.connecting)
        _ = agent.handle(.requestSucceeded(TunnelID(1)), now: Self.now, rng: &rng)
        #expect(agent.backoff == .milliseconds(100))
    }

    @Test func test_goAway_opensTheReplacementFirst_andTheNodeClosesTheOld() {
        var agent = AgentMachine()
        var rng = SplitMix64(seed: 3)
        _ = agent.handle(.dialDue, now: Self.now, rng: &rng)
        _ = agent.handle(.tunnelOpened(TunnelID(1)), now: Self.now, rng: &rng)
        #expect(!agent.isReplacing)
        #expect(agent.handle(.toldToMove(TunnelID(1)), now: Self.now, rng: &rng) == [.dialNow])
        #expect(agent.tunnels.map(\.id) == [TunnelID(1)] && agent.tunnels[0].moving, "the old tunnel keeps serving")
        #expect(agent.isReplacing, "the dial says it replaces a moved tunnel")
        #expect(agent.handle(.toldToMove(TunnelID(1)), now: Self.now, rng: &rng).isEmpty, "one dial at a time")
        _ = agent.handle(.tunnelOpened(TunnelID(2)), now: Self.now, rng: &rng)
        #expect(agent.handle(.tunnelClosedByNode(TunnelID(1)), now: Self.now, rng: &rng).isEmpty, "the replacement is already there")
        #expect(agent.tunnels.map(\.id) == [TunnelID(2)])
        #expect(!agent.isReplacing)
    }

    @Test func test_aReplacementLandingOnAnotherDrainingNode_movesAgainAfterTheBackoff() {
        var rng = SplitMix64(seed: 4)
        var agent = Self.toldToMove(rng: &rng)
        _ = agent.handle(.tunnelOpened(TunnelID(2)), now: Self.now, rng: &rng)
        let directives = agent.handle(.toldToMove(TunnelID(2)), now: Self.now, rng: &rng)
        guard case .retry(let due)? = directives.first else {
            Issue.record("expected a delayed dial, got \(directives)")
            return
        }
        #expect(due > Self.now)
    }

    @Test func test_aTunnelClosedAsSoonAsItOpened_isARefusal_redialledAfterAGrowingBackoff() {
        var rng = SplitMix64(seed: 5)
        var agent = AgentMachine()
        var now = Self.now
        var delays: [Duration] = []
        _ = agent.handle(.dialDue, now: now, rng: &rng)
        for round in 1...4 {
            _ = agent.handle(.tunnelOpened(TunnelID(UInt64(round))), now: now, rng: &rng)
            guard case .retry(let due)? = agent.handle(.tunnelClosedByNode(TunnelID(UInt64(round))), now: now + .milliseconds(5), rng: &rng).first else {
                Issue.record("round \(round): expected a delayed dial")
                return
            }
            delays.append(due - now)
            now = due
            #expect(agent.handle(.dialDue, now: now, rng: &rng) == [.dialNow])
        }
        #expect(zip(delays, delays.dropFirst()).allSatisfy { $0 < $1 }, "\(delays)")
    }

    @Test func test_losingTheLastTunnel_redialsAtOnceWhenClosed_afterTheBackoffWhenBroken() {
        var rng = SplitMix64(seed: 5)
        var closed = AgentMachine()
        _ = closed.handle(.dialDue, now: Self.now, rng: &rng)
        _ = closed.handle(.tunnelOpened(TunnelID(1)), now: Self.now, rng: &rng)
        #expect(closed.handle(.tunnelClosedByNode(TunnelID(1)), now: Self.now + .seconds(6), rng: &rng) == [.dialNow], "it served for a while")
        var broken = AgentMachine()
        _ = broken.handle(.dialDue, now: Self.now, rng: &rng)
        _ = broken.handle(.tunnelOpened(TunnelID(1)), now: Self.now, rng: &rng)
        _ = broken.handle(.tunnelOpened(TunnelID(2)), now: Self.now, rng: &rng)
        #expect(broken.handle(.tunnelBroken(TunnelID(1)), now: Self.now, rng: &rng).isEmpty, "another tunnel still serves")
        guard case .retry? = broken.handle(.tunnelBroken(TunnelID(2)), now: Self.now, rng: &rng).first else {
            Issue.record("the last broken tunnel schedules a retry")
            return
        }
    }

    @Test func test_replacementBreaking_whileTheOldTunnelIsMoving_redialsAfterTheBackoff() {
        // fuzz-736: the replacement landed on a pod that crashed; the old tunnel's node keeps it
        // until a replacement is served elsewhere, so the agent must dial again by itself.
        var rng = SplitMix64(seed: 6)
        var agent = Self.toldToMove(rng: &rng)
        _ = agent.handle(.tunnelOpened(TunnelID(2)), now: Self.now, rng: &rng)
        guard case .retry(let due)? = agent.handle(.tunnelBroken(TunnelID(2)), now: Self.now, rng: &rng).first else {
            Issue.record("a broken replacement schedules another one")
            return
        }
        #expect(due > Self.now)
        #expect(agent.handle(.dialDue, now: due, rng: &rng) == [.dialNow])
        _ = agent.handle(.tunnelOpened(TunnelID(3)), now: due, rng: &rng)
        #expect(agent.handle(.tunnelClosedByNode(TunnelID(1)), now: due, rng: &rng).isEmpty)
        #expect(agent.tunnels.map(\.id) == [TunnelID(3)])
    }

    @Test func test_refusedReplacements_dialAsReplacementsAgain_untilTheLimit_thenFreshAtTheMinimumBackoff() {
        var rng = SplitMix64(seed: 8)
        var agent = Self.toldToMove(rng: &rng)
        // Heavy nodes refuse the replacement (Pico's runtime sees the new tunnel break at once):
        // each retry is a replacement again, at most a second apart.
        var now = Self.now
        var id: UInt64 = 2
        while now - Self.now < .seconds(9) {
            _ = agent.handle(.tunnelOpened(TunnelID(id)), now: now, rng: &rng)
            guard case .retry(let due)? = agent.handle(.tunnelBroken(TunnelID(id)), now: now + .milliseconds(5), rng: &rng).first else {
                Issue.record("a refused replacement is retried")
                return
            }
            #expect(due - now <= .milliseconds(1_105), "the replacing backoff cap")
            #expect(agent.isReplacing, "still within the limit at \(now - Self.now)")
            now = due
            id += 1
        }
        // Ten seconds after the GoAway the move ends: the next dial is fresh (every node takes
        // it), after the minimum backoff.
        now = Self.now + .seconds(10)
        _ = agent.handle(.tunnelOpened(TunnelID(id)), now: now, rng: &rng)
        guard case .retry(let due)? = agent.handle(.tunnelBroken(TunnelID(id)), now: now, rng: &rng).first else {
            Issue.record("a refused replacement is retried")
            return
        }
        #expect(!agent.isReplacing)
        #expect(due - now <= .milliseconds(110))
        #expect(agent.tunnels.map(\.id) == [TunnelID(1)] && agent.tunnels[0].moving, "the old tunnel still goes only when its node closes it")
    }

    @Test func test_pikosAgent_dialsAgainAtOnce_afterAnyClosedSession() {
        // Piko's agent backs off only when a dial fails; a session the node closes, however
        // soon, is followed by a dial at once (the simulator's Piko agents).
        var settings = AgentMachine.Settings()
        settings.backsOffAfterRefusal = false
        var agent = AgentMachine(settings: settings)
        var rng = SplitMix64(seed: 9)
        _ = agent.handle(.dialDue, now: Self.now, rng: &rng)
        for round in UInt64(1)...3 {
            _ = agent.handle(.tunnelOpened(TunnelID(round)), now: Self.now, rng: &rng)
            #expect(agent.handle(.tunnelClosedByNode(TunnelID(round)), now: Self.now + .milliseconds(5), rng: &rng) == [.dialNow])
        }
    }

    @Test func test_aTunnelThatServedForAWhile_startsTheNextEpisodeAtTheMinimumBackoff() {
        var agent = AgentMachine()
        var rng = SplitMix64(seed: 7)
        // No node was up for a while: the delay grew.
        _ = agent.handle(.dialDue, now: Self.now, rng: &rng)
        for _ in 0..<6 { _ = agent.handle(.dialFailed, now: Self.now, rng: &rng) }
        #expect(agent.backoff == .milliseconds(6_400))
        _ = agent.handle(.dialDue, now: Self.now, rng: &rng)
        _ = agent.handle(.tunnelOpened(TunnelID(1)), now: Self.now, rng: &rng)
        // A GoAway 1 s after opening is part of the same episode; 5 s after, a new one.
        var early = agent
        _ = early.handle(.toldToMove(TunnelID(1)), now: Self.now + .seconds(1), rng: &rng)
        #expect(early.backoff == .milliseconds(6_400))
        _ = agent.handle(.toldToMove(TunnelID(1)), now: Self.now + .seconds(5), rng: &rng)
        #expect(agent.backoff == .milliseconds(100))
        // The replacement lands on another draining node: retried after 100 ms (plus jitter), not 6.4 s.
        _ = agent.handle(.tunnelOpened(TunnelID(2)), now: Self.now + .seconds(5), rng: &rng)
        guard case .retry(let due)? = agent.handle(.toldToMove(TunnelID(2)), now: Self.now + .seconds(5), rng: &rng).first else {
            Issue.record("expected a delayed dial")
            return
        }
        #expect(due <= Self.now + .seconds(5) + .milliseconds(110))
    }
}
