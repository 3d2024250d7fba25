@testable import PicoModel
import Testing

/// The rebalancing rule, driven directly, and through one `ClusterNode`.
@Suite struct RebalancerTests {
    static let members = [NodeUID(1), NodeUID(2), NodeUID(3)]

    static func census(local: Int, moving: Int = 0, others: [Int], members: [NodeUID] = Self.members) -> Rebalancer.Census {
        Rebalancer.Census(local: local, moving: moving, memberTotals: [local] + others, members: members)
    }

    static func rule(_ configure: (inout Rebalancer.Settings) -> Void = { _ in }) -> Rebalancer {
        var settings = Rebalancer.Settings()
        configure(&settings)
        return Rebalancer(settings: settings)
    }

    @Test func test_thresholdZero_turnsEverythingOff() {
        var rule = Self.rule { $0.threshold = 0 }
        #expect(rule.state == .off)
        for second in 0..<60 { #expect(rule.evaluate(Self.census(local: 600, others: [0, 0]), now: .seconds(Int64(second))) == 0) }
        #expect(!rule.refusesNewTunnel(Self.census(local: 600, others: [0, 0])))
    }

    @Test func test_movesOnlyAfterTheHold_withTheSameMembers_atTheBudget_downToTheMean() {
        var rule = Self.rule()
        let heavy = Self.census(local: 200, others: [50, 50])  // mean 100
        #expect(rule.evaluate(heavy, now: .zero) == 0)
        #expect(rule.state == .above(since: .zero))
        #expect(rule.evaluate(heavy, now: .seconds(9)) == 0, "one sample over is not enough: the hold is 10 s")
        // A member change (a join, a death, a flapping partition) starts the hold over.
        let joined = Self.census(local: 200, others: [50, 50, 0], members: Self.members + [NodeUID(4)])
        #expect(rule.evaluate(joined, now: .seconds(9)) == 0)
        #expect(rule.state == .above(since: .seconds(9)))
        #expect(rule.evaluate(joined, now: .seconds(18)) == 0)
        // Mean 75 (300 / 4): 5 % of it is 3.75, so 4 moves a second.
        #expect(rule.evaluate(joined, now: .seconds(19)) == 4)
        #expect(rule.state == .shedding)
        // Moves in progress count as gone; at most five seconds' budget is in flight.
        #expect(rule.evaluate(Self.census(local: 200, moving: 4, others: [50, 50, 0], members: Self.members + [NodeUID(4)]), now: .seconds(20)) == 4)
        #expect(rule.evaluate(Self.census(local: 200, moving: 18, others: [50, 50, 0], members: Self.members + [NodeUID(4)]), now: .seconds(21)) == 2)
        #expect(rule.evaluate(Self.census(local: 200, moving: 20, others: [50, 50, 0], members: Self.members + [NodeUID(4)]), now: .seconds(22)) == 0)
        // Down to the mean, not merely under the threshold: staying 76 against a mean of 75.
        #expect(rule.evaluate(Self.census(local: 80, moving: 4, others: [50, 50, 120], members: Self.members + [NodeUID(4)]), now: .seconds(40)) == 1)
        #expect(rule.evaluate(Self.census(local: 75, others: [75, 75, 75], members: Self.members + [NodeUID(4)]), now: .seconds(41)) == 0)
        #expect(rule.state == .cooling(until: .seconds(71)))
        // Cooling: even a fresh imbalance waits.
        #expect(rule.evaluate(Self.census(local: 300, others: [0, 0, 0], members: Self.members + [NodeUID(4)]), now: .seconds(70)) == 0)
        #expect(rule.evaluate(Self.census(local: 300, others: [0, 0, 0], members: Self.members + [NodeUID(4)]), now: .seconds(71)) == 0)
        #expect(rule.state == .above(since: .seconds(71)))
    }

    @Test func test_aMemberChangeDuringARound_stopsIt_untilAWholeHoldPassesAgain() {
        var rule = Self.rule { $0.hold = .seconds(2) }
        _ = rule.evaluate(Self.census(local: 200, others: [50, 50]), now: .zero)
        #expect(rule.evaluate(Self.census(local: 200, others: [50, 50]), now: .seconds(2)) == 5)
        // A partition: member 3 is suspect, so no longer active.
        let cut = Self.census(local: 200, others: [50], members: [NodeUID(1), NodeUID(2)])
        #expect(rule.evaluate(cut, now: .seconds(3)) == 0)
        #expect(rule.state == .above(since: .seconds(3)))
        #expect(rule.evaluate(Self.census(local: 200, others: [50, 50]), now: .seconds(4)) == 0, "healed: the hold starts over")
        #expect(rule.evaluate(Self.census(local: 200, others: [50, 50]), now: .seconds(6)) == 5)
    }

    @Test func test_neverBelowMinConns_andNotAtTheThreshold() {
        var small = Self.rule()
        for second in 0..<30 { #expect(small.evaluate(Self.census(local: 9, others: [0, 0]), now: .seconds(Int64(second))) == 0) }
        #expect(small.state == .balanced, "9 tunnels: under min_conns")
        var edge = Self.rule { $0.hold = .zero }
        // 120 against a mean of 100 is exactly (1 + 0.2) × mean: not over.
        #expect(edge.evaluate(Self.census(local: 120, others: [90, 90]), now: .zero) == 0)
        #expect(edge.state == .balanced)
        // A round never goes below min_conns: 30 tunnels, mean 10, min_conns 25.
        var floor = Self.rule {
            $0.hold = .zero
            $0.minConns = 25
            $0.shedRate = 1
        }
        _ = floor.evaluate(Self.census(local: 30, others: [0, 0]), now: .zero)
        #expect(floor.evaluate(Self.census(local: 30, others: [0, 0]), now: .seconds(1)) == 5)
    }

    @Test func test_refusal_onlyWellAboveTheMean_whileSomeoneIsBelowIt() {
        let rule = Self.rule()
        #expect(rule.refusesNewTunnel(Self.census(local: 200, others: [100, 0])))
        #expect(!rule.refusesNewTunnel(Self.census(local: 110, others: [100, 90])), "110 is not above (1 + 0.1) × 100")
        #expect(rule.refusesNewTunnel(Self.census(local: 112, others: [100, 88])))
        #expect(!rule.refusesNewTunnel(Self.census(local: 9, others: [0, 0])), "under min_conns")
        #expect(!rule.refusesNewTunnel(Self.census(local: 200, moving: 100, others: [100, 100])), "moving tunnels are leaving")
        #expect(!rule.refusesNewTunnel(Self.census(local: 50, others: [], members: [NodeUID(1)])), "alone")
    }

    @Test func test_settings_nameTheirKeysWhenInvalid() {
        var settings = Rebalancer.Settings()
        settings.threshold = -1
        settings.shedRate = 0
        settings.minConns = -3
        settings.hold = .seconds(-1)
        settings.cooldown = .seconds(7_200)
        let errors = settings.validationErrors()
        #expect(errors.count == 5)
        for key in ["threshold", "shed_rate", "min_conns", "hold", "cooldown"] {
            #expect(errors.contains { $0.hasPrefix("upstream.rebalance.\(key) ") }, "\(key)")
        }
        settings.threshold = .nan
        #expect(settings.validationErrors().contains { $0.hasPrefix("upstream.rebalance.threshold") })
        #expect(Rebalancer.Settings().validationErrors().isEmpty)
    }
}

/// Rebalancing through `ClusterNode`: the census, the moves, the hand-over and the refusals.
@Suite struct ClusterNodeRebalanceTests {
    static func peers() -> [NodeInfo] { [Fixture.info(2), Fixture.info(3)] }

    /// A ready node holding one tunnel (IDs from 1) for each of `tunnels` (endpoint names), then
    /// told of two alive peers holding `peerCounts` tunnels of endpoint `p<peer>`.
    static func node(tunnels: [String] = [], reconnectsFirst: Bool = true, peerCounts: [UInt32] = [0, 0],
                     configure: (inout ClusterConfiguration) -> Void = { _ in }) -> ClusterNode {
        var node = ClusterNodeTests.node { configuration in
            configuration.rebalance.hold = .seconds(2)
            configure(&configuration)
        }
        // Opened while the node is alone: nobody is lighter, so nothing is refused.
        for (index, endpoint) in tunnels.enumerated() {
            _ = node.handle(.tunnelOpened(TunnelID(UInt64(index + 1)), endpoint: endpoint, reconnectsFirst: reconnectsFirst), now: .zero)
        }
        for (peer, count) in zip(Self.peers(), peerCounts) {
            _ = node.handle(ClusterNodeTests.datagram(from: peer, [.alive(info: peer, incarnation: 0, draining: false)]), now: .zero)
            if count > 0 { _ = Self.entry(peer, "p\(peer.uid)", count: count, version: 1, into: &node, at: .zero) }
        }
        return node
    }

    @discardableResult
    static func entry(_ peer: NodeInfo, _ endpoint: String, count: UInt32, version: UInt64, into node: inout ClusterNode, at now: Instant) -> [ClusterDirective] {
        let delta = EndpointDelta(owner: peer.uid, base: version - 1, entries: [.init(endpoint: endpoint, count: count, version: version)])
        return node.handle(.datagramReceived(GossipCodec.datagram(sender: peer.uid, endpointVersion: version, messages: [.endpointDelta(delta)]), from: peer.gossipAddress), now: now)
    }

    static func moved(_ directives: [ClusterDirective]) -> [TunnelID] {
        directives.compactMap { if case .tellAgentToMove(let id) = $0 { id } else { nil } }
    }

    /// Fires the rebalance timer every second from `from` through `to`; returns every move asked.
    static func tick(_ node: inout ClusterNode, from: Int64, to: Int64) -> [TunnelID] {
        (from...to).flatMap { Self.moved(node.handle(.timerFired(.rebalance), now: .seconds($0))) }
    }

    @Test func test_aHeavyNode_movesOneTunnelPerEndpointAtATime_afterTheHold_andReleasesEachAfterItsHandover() {
        // 30 tunnels: three of "multi", 27 of one endpoint each. Mean 10, so one move a second.
        var node = Self.node(tunnels: ["multi", "multi", "multi"] + (4...30).map { "e\($0)" })
        #expect(node.upstreams.tunnelCount == 30)
        #expect(node.rebalancer.state == .balanced)
        #expect(Self.tick(&node, from: 1, to: 2).isEmpty, "the hold is 2 s")
        #expect(Self.tick(&node, from: 3, to: 3) == [TunnelID(1)], "the endpoint with the most tunnels here goes first")
        #expect(node.rebalanceFigures.movesAsked == 1)
        #expect(node.upstreams.tunnel(TunnelID(1))?.isDraining == true)
        // While it moves, no other tunnel of "multi" does.
        #expect(Self.tick(&node, from: 4, to: 4) == [TunnelID(4)])
        // "multi" is served besides the moved tunnel (its other two here): released after the
        // settle time, and then the next of its tunnels may move.
        let released = node.handle(.timerFired(.handoverCheck), now: .seconds(5))
        #expect(released.contains(.closeTunnel(TunnelID(1))))
        #expect(released.contains(.event(.rebalanceMoveDone(TunnelID(1), endpoint: "multi"))))
        #expect(node.rebalanceFigures.movesDone == 1)
        #expect(Self.tick(&node, from: 5, to: 5) == [TunnelID(2)])
        // Tunnel 2 is released at 7, so "multi"'s last tunnel moves at 8. Its endpoint is
        // served by nothing else: it waits for the agent's replacement.
        #expect(Self.tick(&node, from: 6, to: 8) == [TunnelID(5), TunnelID(6), TunnelID(3)])
        // Five seconds' budget in flight at most (4, 5, 6, 3, 7), then none.
        #expect(Self.tick(&node, from: 9, to: 9) == [TunnelID(7)])
        #expect(Self.tick(&node, from: 10, to: 10).isEmpty)
        // e4's agent opens its replacement on peer 2: released once the settle time has passed.
        let seen = Self.entry(Self.peers()[0], "e4", count: 1, version: 1, into: &node, at: .seconds(10))
        #expect(!seen.contains(.closeTunnel(TunnelID(4))), "other nodes may not know the replacement yet")
        #expect(!node.handle(.timerFired(.handoverCheck), now: .milliseconds(11_999)).contains(.closeTunnel(TunnelID(4))))
        #expect(node.handle(.timerFired(.handoverCheck), now: .seconds(12)).contains(.closeTunnel(TunnelID(4))))
        #expect(node.upstreams.tunnel(TunnelID(4)) == nil)
        #expect(node.checkInvariants() == [])
    }

    @Test func test_aMovedTunnelWithRequestsInFlight_staysUntilTheyFinish() {
        var node = Self.node(tunnels: (1...30).map { "e\($0)" }) { $0.rebalance.shedRate = 1 }
        _ = node.handle(.routedByLoop(.local(TunnelID(1))), now: .zero)
        _ = Self.tick(&node, from: 1, to: 3)
        let moved = Set(node.upstreams.allTunnels.filter(\.isDraining).map(\.id))
        #expect(moved.count == 10, "down to the mean: 30 − 10 staying over the mean of 10 at most, budget 10")
        #expect(!moved.contains(TunnelID(1)), "idle tunnels move first")
        // Every endpoint served elsewhere now.
        let peer = Self.peers()[0]
        for (version, id) in moved.sorted().enumerated() {
            Self.entry(peer, node.upstreams.tunnel(id)!.endpoint, count: 1, version: UInt64(version + 1), into: &node, at: .seconds(4))
        }
        _ = node.handle(.timerFired(.handoverCheck), now: .seconds(6))
        #expect(node.upstreams.tunnelCount == 20)
    }

    @Test func test_pikoAgents_moveOnlyWhileTheirEndpointIsServedBesides() {
        var node = Self.node(tunnels: (1...30).map { "e\($0)" }, reconnectsFirst: false)
        #expect(Self.tick(&node, from: 1, to: 10).isEmpty, "each endpoint's only tunnel, and its agent would close before it reconnects")
        // Peer 2 serves e7: that one may move.
        Self.entry(Self.peers()[0], "e7", count: 1, version: 1, into: &node, at: .seconds(11))
        #expect(Self.tick(&node, from: 11, to: 12) == [TunnelID(7)])
        // Already served elsewhere: released after the settle time, with no new tunnel.
        #expect(node.handle(.timerFired(.handoverCheck), now: .seconds(13)).contains(.closeTunnel(TunnelID(7))))
    }

    @Test func test_theCensus_countsOnlyActiveMembers_soGhostsAndDrainersDoNotSkewTheMean() {
        var node = Self.node(tunnels: (1...15).map { "e\($0)" }, peerCounts: [15, 15])
        #expect(node.rebalanceCensus().memberTotals.sorted() == [15, 15, 15])
        let peers = Self.peers()
        // Peer 3 is declared dead (Piko #322 counted such ghosts), then a fourth member drains.
        _ = node.handle(ClusterNodeTests.datagram(from: peers[0], [.dead(subject: peers[1].uid, incarnation: 0, accuser: peers[0].uid)]), now: .seconds(1))
        let drainer = Fixture.info(4)
        _ = node.handle(ClusterNodeTests.datagram(from: drainer, [.alive(info: drainer, incarnation: 0, draining: true)]), now: .seconds(1))
        let census = node.rebalanceCensus()
        #expect(census.members.count == 2)
        #expect(census.memberTotals.sorted() == [15, 15])
        #expect(node.memberViews.first { $0.isLocal }?.tunnels == 15)
        #expect(node.memberViews.first { $0.info.uid == peers[0].uid }?.tunnels == 15)
    }

    @Test func test_aHeavyNode_refusesNewTunnelsOfServedEndpoints_only() {
        var node = Self.node(tunnels: (1...30).map { "e\($0 % 10)" })
        let refused = node.handle(.tunnelOpened(TunnelID(100), endpoint: "e3"), now: .seconds(1))
        #expect(refused.contains(.closeTunnel(TunnelID(100))))
        #expect(refused.contains(.event(.tunnelRejected(TunnelID(100), reason: "this node holds 30 tunnels, well above the cluster mean of 10: reconnect to a lighter node"))))
        #expect(node.rebalanceFigures.tunnelsRefused == 1)
        let unserved = node.handle(.tunnelOpened(TunnelID(101), endpoint: "new"), now: .seconds(1))
        #expect(!unserved.contains(.closeTunnel(TunnelID(101))), "nobody serves it: refusing would lengthen an outage")
        // Off: everything is taken.
        var off = Self.node(tunnels: (1...30).map { "e\($0 % 10)" }) { $0.rebalance.threshold = 0 }
        #expect(!off.handle(.tunnelOpened(TunnelID(100), endpoint: "e3"), now: .seconds(1)).contains(.closeTunnel(TunnelID(100))))
        #expect(Self.tick(&off, from: 1, to: 30).isEmpty)
    }

    @Test func test_aDrainingNode_neitherRebalancesNorRefuses() {
        var node = Self.node(tunnels: (1...30).map { "e\($0 % 10)" })
        _ = node.handle(.shutdownRequested, now: .seconds(1))
        let rebalance = node.handle(.timerFired(.rebalance), now: .seconds(5))
        #expect(!rebalance.contains { if case .schedule(.rebalance, _) = $0 { true } else { false } }, "the timer stops")
        #expect(!rebalance.contains { if case .event(.rebalanceMoveAsked) = $0 { true } else { false } })
        let late = node.handle(.tunnelOpened(TunnelID(100), endpoint: "e3"), now: .seconds(5))
        #expect(late.contains(.tellAgentToMove(TunnelID(100))), "asked to move as any tunnel opened during a drain")
        #expect(!late.contains(.closeTunnel(TunnelID(100))))
    }
}
