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
        #expect(!rule.refusesReplacement(Self.census(local: 600, others: [0, 0]), now: .seconds(60)))
    }

    /// Evaluates every `Rebalancer.interval` from `from` for `seconds`, with the moves it asks
    /// for counted as in progress (none ends); returns how many it asked for.
    static func run(_ rule: inout Rebalancer, local: Int, moving: inout Int, others: [Int], members: [NodeUID] = Self.members, from: Duration, seconds: Int) -> Int {
        var asked = 0
        for step in 0..<(seconds * 4) {
            let moves = rule.evaluate(Self.census(local: local, moving: moving, others: others, members: members), now: .zero + from + .milliseconds(Int64(step) * 250))
            moving += moves
            asked += moves
        }
        return asked
    }

    @Test func test_movesOnlyAfterTheHold_withTheSameMembers_atItsRate_downToTheMean() {
        var rule = Self.rule()
        let heavy = Self.census(local: 200, others: [50, 50])  // mean 100
        #expect(rule.evaluate(heavy, now: .zero) == 0)
        #expect(rule.state == .above(since: .zero))
        #expect(rule.evaluate(heavy, now: .seconds(9)) == 0, "one sample over is not enough: the hold is 10 s")
        // A member change (a join, a death, a drain) starts the hold over.
        let four = Self.members + [NodeUID(4)]
        #expect(rule.evaluate(Self.census(local: 200, others: [50, 50, 0], members: four), now: .seconds(9)) == 0)
        #expect(rule.state == .above(since: .seconds(9)))
        #expect(rule.evaluate(Self.census(local: 200, others: [50, 50, 0], members: four), now: .milliseconds(18_750)) == 0)
        // At the hold, the first move at once; then 5 % of the unmoved tunnels a second (about
        // ten here), and never more than five seconds of that in progress.
        #expect(rule.evaluate(Self.census(local: 200, others: [50, 50, 0], members: four), now: .seconds(19)) == 1)
        #expect(rule.state == .shedding(allowance: 0))
        var moving = 1
        let firstSecond = Self.run(&rule, local: 200, moving: &moving, others: [50, 50, 0], members: four, from: .milliseconds(19_250), seconds: 1)
        #expect((8...10).contains(firstSecond), "\(firstSecond)")
        let fiveMore = Self.run(&rule, local: 200, moving: &moving, others: [50, 50, 0], members: four, from: .milliseconds(20_250), seconds: 5)
        // Five seconds' worth at the rate of the tunnels still staying: m ≈ ⌈(200 − m) × 5 % × 5⌉.
        #expect((39...41).contains(moving), "\(moving) in progress after \(fiveMore) more")
        // Down to the mean, not merely under the threshold: 76 unmoved against a mean of 75.
        var settled = 4
        #expect(Self.run(&rule, local: 80, moving: &settled, others: [50, 50, 120], members: four, from: .seconds(40), seconds: 1) == 1)
        #expect(rule.state == .cooling(until: .milliseconds(50_250)), "75 unmoved: the round ended at 40.25 s")
        // Cooling: even a fresh imbalance waits.
        #expect(rule.evaluate(Self.census(local: 300, others: [0, 0, 0], members: four), now: .seconds(50)) == 0)
        #expect(rule.evaluate(Self.census(local: 300, others: [0, 0, 0], members: four), now: .milliseconds(50_250)) == 0)
        #expect(rule.state == .above(since: .milliseconds(50_250)))
    }

    @Test func test_aMemberChangeDuringARound_stopsIt_untilAWholeHoldPassesAgain() {
        var rule = Self.rule { $0.hold = .seconds(2) }
        _ = rule.evaluate(Self.census(local: 200, others: [50, 50]), now: .zero)
        #expect(rule.evaluate(Self.census(local: 200, others: [50, 50]), now: .seconds(2)) == 1)
        // A member died, or drained: no longer live.
        let cut = Self.census(local: 200, others: [50], members: [NodeUID(1), NodeUID(2)])
        #expect(rule.evaluate(cut, now: .seconds(3)) == 0)
        #expect(rule.state == .above(since: .seconds(3)))
        #expect(rule.evaluate(Self.census(local: 200, others: [50, 50]), now: .seconds(4)) == 0, "back: the hold starts over")
        #expect(rule.evaluate(Self.census(local: 200, others: [50, 50]), now: .seconds(6)) == 1)
    }

    @Test func test_aRoundInWhichNothingCanMove_endsOnlyOnceNoMoveIsUnderWay() {
        var rule = Self.rule { $0.hold = .zero }
        _ = rule.evaluate(Self.census(local: 200, others: [50, 50]), now: .zero)
        #expect(rule.evaluate(Self.census(local: 200, others: [50, 50]), now: .milliseconds(250)) == 1)
        // The node could ask none (its endpoints are all moving): the allowance is kept while a
        // move is under way, since its end frees an endpoint.
        rule.moved(0, of: 1, inProgress: 3, now: .milliseconds(250))
        #expect(rule.state == .shedding(allowance: 1))
        // None can move and none is under way: the round ends (no shedding, no refusals).
        rule.moved(0, of: 1, inProgress: 0, now: .milliseconds(500))
        #expect(rule.state == .cooling(until: .milliseconds(10_500)))
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
        var moving = 0
        #expect(Self.run(&floor, local: 30, moving: &moving, others: [0, 0], from: .zero, seconds: 10) == 5, "30 − 25")
    }

    @Test func test_replacementsAreRefused_aboveTheMean_orWhileShedding_whenSomeoneIsBelowIt() {
        var rule = Self.rule { $0.hold = .zero }
        #expect(rule.refusesReplacement(Self.census(local: 200, others: [100, 0]), now: .seconds(60)))
        // Anything above the mean refuses (a node near it that took moved agents would soon hold
        // more than its share and move them on); the mean itself takes them.
        #expect(rule.refusesReplacement(Self.census(local: 101, others: [100, 99]), now: .seconds(60)), "101 is above the mean of 100")
        #expect(!rule.refusesReplacement(Self.census(local: 100, others: [105, 95]), now: .seconds(60)), "at the mean")
        #expect(rule.refusesReplacement(Self.census(local: 112, others: [100, 88]), now: .seconds(60)))
        #expect(!rule.refusesReplacement(Self.census(local: 200, others: [200, 200]), now: .seconds(60)), "nobody is below the mean")
        #expect(!rule.refusesReplacement(Self.census(local: 9, others: [0, 0]), now: .seconds(60)), "under min_conns")
        #expect(!rule.refusesReplacement(Self.census(local: 200, moving: 120, others: [100, 100]), now: .seconds(60)), "moving tunnels are leaving")
        #expect(!rule.refusesReplacement(Self.census(local: 50, others: [], members: [NodeUID(1)]), now: .seconds(60)), "alone")
        #expect(!Self.rule { $0.threshold = 0 }.refusesReplacement(Self.census(local: 200, others: [100, 0]), now: .seconds(60)))
        // A node shedding refuses even near the mean: it would move the newcomer again.
        _ = rule.evaluate(Self.census(local: 200, others: [50, 50]), now: .zero)
        #expect(rule.evaluate(Self.census(local: 200, others: [50, 50]), now: .milliseconds(250)) == 1)
        #expect(rule.refusesReplacement(Self.census(local: 105, others: [100, 95]), now: .seconds(60)))
    }

    @Test func test_pikoAgents_areRefusedOnlyWhenOneMoreWouldTakeTheNodeOverTheThreshold() {
        var rule = Self.rule()
        _ = rule.evaluate(Self.census(local: 100, others: [100, 100]), now: .zero)
        // Mean 100, threshold 120: the 120th tunnel is taken, the 121st is not.
        #expect(!rule.refusesPikoAgent(Self.census(local: 119, others: [100, 81]), now: .seconds(10)))
        #expect(rule.refusesPikoAgent(Self.census(local: 120, others: [100, 80]), now: .seconds(10)))
        #expect(!rule.refusesPikoAgent(Self.census(local: 120, others: [100, 80]), now: .seconds(5)), "members changed within the hold")
        #expect(!rule.refusesPikoAgent(Self.census(local: 200, others: [200, 200]), now: .seconds(10)), "nobody is below the mean")
        #expect(!rule.refusesPikoAgent(Self.census(local: 9, others: [0, 0]), now: .seconds(10)), "under min_conns")
        // A node above the mean but under the threshold takes Piko agents (it refuses replacements).
        #expect(!rule.refusesPikoAgent(Self.census(local: 110, others: [100, 90]), now: .seconds(10)))
        #expect(rule.refusesReplacement(Self.census(local: 110, others: [100, 90]), now: .seconds(10)))
        #expect(!Self.rule { $0.threshold = 0 }.refusesPikoAgent(Self.census(local: 200, others: [100, 0]), now: .seconds(60)))
        // With a small threshold one more tunnel takes every node over it: a node at or below the
        // mean never refuses, so the lightest always takes the agent.
        var small = Self.rule { $0.threshold = 0.05 }
        _ = small.evaluate(Self.census(local: 12, others: [12, 13]), now: .zero)
        #expect(!small.refusesPikoAgent(Self.census(local: 12, others: [12, 13]), now: .seconds(10)))
        #expect(small.refusesPikoAgent(Self.census(local: 13, others: [12, 12]), now: .seconds(10)))
        // A shedding node refuses above the mean, whatever the threshold says, but not below it.
        var shedding = Self.rule { $0.hold = .zero }
        _ = shedding.evaluate(Self.census(local: 200, others: [50, 50]), now: .zero)
        #expect(shedding.evaluate(Self.census(local: 200, others: [50, 50]), now: .milliseconds(250)) == 1)
        #expect(shedding.refusesPikoAgent(Self.census(local: 105, others: [100, 95]), now: .milliseconds(250)))
        #expect(!shedding.refusesPikoAgent(Self.census(local: 95, others: [100, 105]), now: .milliseconds(250)))
    }

    @Test func test_whileMembersChange_onlyASheddingNodeRefusesReplacements() {
        var rule = Self.rule()
        _ = rule.evaluate(Self.census(local: 100, others: [100, 100]), now: .seconds(100))
        let heavy = Self.census(local: 112, others: [100, 88])
        #expect(!rule.refusesReplacement(heavy, now: .seconds(105)), "members changed 5 s ago: a draining node's agents must land before its deadline")
        #expect(rule.refusesReplacement(heavy, now: .seconds(110)), "the same members for a whole hold")
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
    static func node(tunnels: [String] = [], agent: TunnelAgent = .pico, peerCounts: [UInt32] = [0, 0],
                     configure: (inout ClusterConfiguration) -> Void = { _ in }) -> ClusterNode {
        var node = ClusterNodeTests.node { configuration in
            configuration.rebalance.hold = .seconds(2)
            configure(&configuration)
        }
        // Opened while the node is alone: nobody is lighter, so nothing is refused.
        for (index, endpoint) in tunnels.enumerated() {
            _ = node.handle(.tunnelOpened(TunnelID(UInt64(index + 1)), endpoint: endpoint, agent: agent), now: .zero)
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

    /// Fires the rebalance timer every `Rebalancer.interval` from second `from` up to the end of
    /// second `to`; returns every move asked.
    static func tick(_ node: inout ClusterNode, from: Int64, to: Int64) -> [TunnelID] {
        (from * 4..<(to + 1) * 4).flatMap { Self.moved(node.handle(.timerFired(.rebalance), now: .milliseconds($0 * 250))) }
    }

    @Test func test_aHeavyNode_movesOneTunnelPerEndpointAtATime_afterTheHold_andReleasesEachAfterItsHandover() {
        // 30 tunnels: three of "multi", 27 of one endpoint each. Mean 10; 5 % of 30 is 1.5 moves a second.
        var node = Self.node(tunnels: ["multi", "multi", "multi"] + (4...30).map { "e\($0)" })
        #expect(node.upstreams.tunnelCount == 30)
        #expect(node.rebalancer.state == .balanced)
        #expect(Self.tick(&node, from: 1, to: 2).isEmpty, "over since 1 s; the hold is 2 s")
        #expect(Self.tick(&node, from: 3, to: 3) == [TunnelID(1), TunnelID(4)], "the endpoint with the most tunnels here first, at once, then at 1.5 a second")
        #expect(node.rebalanceFigures.movesAsked == 2)
        #expect(node.upstreams.tunnel(TunnelID(1))?.isDraining == true)
        // The moving tunnels no longer count in this node's own total (their replacements will
        // count where they land), so moves in progress do not raise the mean.
        let census = node.rebalanceCensus(now: .seconds(3))
        #expect(census.local == 30 && census.moving == 2 && census.memberTotals == [28, 0, 0], "\(census)")
        // While tunnel 1 awaits its replacement, no other tunnel of "multi" moves.
        #expect(Self.tick(&node, from: 4, to: 4) == [TunnelID(5)])
        // "multi" is served besides the moved tunnel by its two others here, but that is no
        // replacement: only a count above that (the agent's new tunnel on peer 2) is.
        let peer = Self.peers()[0]
        let seen = Self.entry(peer, "multi", count: 1, version: 1, into: &node, at: .seconds(5))
        #expect(!seen.contains(.closeTunnel(TunnelID(1))), "other nodes may not know the replacement yet")
        #expect(seen.contains(.schedule(.handoverCheck, at: .seconds(7))))
        // Its replacement is up: the next of its tunnels may move while the old one settles.
        let next = Self.tick(&node, from: 5, to: 6)
        #expect(next.contains(TunnelID(2)) && !next.contains(TunnelID(3)), "\(next)")
        let released = node.handle(.timerFired(.handoverCheck), now: .seconds(7))
        #expect(released.contains(.closeTunnel(TunnelID(1))))
        #expect(released.contains(.event(.rebalanceMoveDone(TunnelID(1), endpoint: "multi"))))
        #expect(node.rebalanceFigures.movesDone == 1)
        // At most five seconds' worth under way: 23 tunnels stay, so 1.15 a second, and
        // ⌈5.75⌉ = 6, until moves whose replacement has not shown for 15 s stop counting.
        _ = Self.tick(&node, from: 7, to: 17)
        #expect(node.upstreams.allTunnels.filter(\.isDraining).count == 6)
        _ = Self.tick(&node, from: 18, to: 30)
        #expect(node.upstreams.allTunnels.filter(\.isDraining).count == 10, "room freed by moves past the wait")
        // e4's agent opens its replacement on peer 2: released once the settle time has passed.
        let replaced = Self.entry(peer, "e4", count: 1, version: 2, into: &node, at: .seconds(31))
        #expect(!replaced.contains(.closeTunnel(TunnelID(4))))
        #expect(!node.handle(.timerFired(.handoverCheck), now: .milliseconds(32_999)).contains(.closeTunnel(TunnelID(4))))
        #expect(node.handle(.timerFired(.handoverCheck), now: .seconds(33)).contains(.closeTunnel(TunnelID(4))))
        #expect(node.upstreams.tunnel(TunnelID(4)) == nil)
        #expect(node.checkInvariants() == [])
    }

    @Test func test_aReplacementCounts_aboveTheLowWaterMark_soAnotherNodesReleaseDoesNotHideIt() {
        var node = Self.node(tunnels: ["shared"] + (2...30).map { "e\($0)" })
        let peer = Self.peers()[0]
        Self.entry(peer, "shared", count: 2, version: 1, into: &node, at: .zero)
        #expect(Self.tick(&node, from: 1, to: 3).first == TunnelID(1))
        // Peer 2 releases one of its own moved tunnels of "shared" (2 → 1), then our agent's
        // replacement lands there (1 → 2): back to the count at the move, and yet a replacement.
        #expect(!Self.entry(peer, "shared", count: 1, version: 2, into: &node, at: .seconds(4)).contains(.closeTunnel(TunnelID(1))))
        let seen = Self.entry(peer, "shared", count: 2, version: 3, into: &node, at: .seconds(5))
        #expect(seen.contains(.schedule(.handoverCheck, at: .seconds(7))))
        #expect(node.handle(.timerFired(.handoverCheck), now: .seconds(7)).contains(.closeTunnel(TunnelID(1))))
    }

    @Test func test_aMovedTunnelWithRequestsInFlight_staysUntilTheyFinish() {
        var node = Self.node(tunnels: (1...30).map { "e\($0)" }) { $0.rebalance.shedRate = 1 }
        _ = node.handle(.routedByLoop(.local(TunnelID(1))), now: .zero)
        _ = Self.tick(&node, from: 1, to: 10)
        let moved = node.upstreams.allTunnels.filter(\.isDraining).map(\.id)
        #expect(moved.count == 20, "down to the mean of 10")
        #expect(!moved.contains(TunnelID(1)), "idle tunnels move first")
        // Each replacement shows on peer 2; each old tunnel is released after the settle time.
        let peer = Self.peers()[0]
        for (version, id) in moved.enumerated() {
            Self.entry(peer, node.upstreams.tunnel(id)!.endpoint, count: 1, version: UInt64(version + 1), into: &node, at: .seconds(11))
        }
        _ = node.handle(.timerFired(.handoverCheck), now: .seconds(13))
        #expect(node.upstreams.tunnelCount == 10)
    }

    @Test func test_pikoAgents_moveOnlyWhileAnotherTunnelOfTheirEndpointStaysHere() {
        // 30 Piko agents: e1…e29 one each, and two of e7's (tunnels 7 and 30).
        var node = Self.node(tunnels: (1...29).map { "e\($0)" } + ["e7"], agent: .piko)
        // Peer 2 serves e3 too, but another node's tunnel may be moving at the same moment
        // (gossip does not say): only e7, which keeps a tunnel here, may move; and while it
        // moves, nothing else can, so the round ends instead of shedding for ever.
        Self.entry(Self.peers()[0], "e3", count: 1, version: 1, into: &node, at: .zero)
        #expect(Self.tick(&node, from: 1, to: 10) == [TunnelID(7)])
        #expect(node.rebalancer.state == .cooling(until: .milliseconds(13_750)), "nothing else can move once tunnel 7 is released: the round ends at 3.75 s")
        // Served besides it here: released as soon as it is idle, with no new tunnel (a Piko
        // agent reconnects only once its tunnel is closed).
        #expect(node.upstreams.tunnel(TunnelID(7)) == nil, "released at once")
        #expect(node.upstreams.tunnel(TunnelID(30))?.isDraining == false)
    }

    @Test func test_pikoAgents_moveOnlyOnceNoPicoAgentCan_andGoAsSoonAsTheyAreIdle() {
        // 20 Pico agents of one endpoint each, then 10 Piko agents of "old": the Piko endpoint
        // has the most tunnels here, yet only Pico agents move while one of them can (moving them
        // is steered: a heavy node refuses their replacements).
        var mixed = Self.node(tunnels: (1...20).map { "e\($0)" })
        for id in 21...30 { _ = mixed.handle(.tunnelOpened(TunnelID(UInt64(id)), endpoint: "old", agent: .piko), now: .zero) }
        let asked = Self.tick(&mixed, from: 1, to: 10)
        #expect(!asked.isEmpty && asked.allSatisfy { $0.rawValue <= 20 }, "\(asked)")
        // One Pico agent and 29 Piko agents of "old": once the Pico one is moving, Piko agents
        // move, and each goes as soon as it is idle (another of its endpoint stays here, so no
        // node needs time to learn of anything), before the next of its endpoint moves.
        var node = Self.node(tunnels: ["solo"])
        for id in 2...30 { _ = node.handle(.tunnelOpened(TunnelID(UInt64(id)), endpoint: "old", agent: .piko), now: .zero) }
        #expect(Self.tick(&node, from: 1, to: 2).isEmpty)
        var steps: [(at: Int64, moved: [TunnelID], closed: [TunnelID])] = []
        for quarter in Int64(12)..<20 {
            let directives = node.handle(.timerFired(.rebalance), now: .milliseconds(quarter * 250))
            let closed = directives.compactMap { if case .closeTunnel(let id) = $0 { id } else { nil } }
            steps.append((quarter * 250, Self.moved(directives), closed))
        }
        let moved = steps.flatMap(\.moved)
        #expect(moved.first == TunnelID(1), "the Pico agent first: \(steps)")
        #expect(moved.count >= 3 && moved.dropFirst().allSatisfy { $0.rawValue >= 2 }, "then Piko agents: \(steps)")
        // Each Piko agent's tunnel is closed in the evaluation that moves it (idle, and its
        // endpoint keeps tunnels here), so the next of "old" may move at the next one.
        for step in steps where step.moved.contains(where: { $0.rawValue >= 2 }) {
            #expect(step.closed == step.moved.filter { $0.rawValue >= 2 }, "\(steps)")
        }
        #expect(node.upstreams.tunnel(TunnelID(1))?.isDraining == true, "the Pico agent's tunnel waits for its replacement")
        // One Pico endpoint of ten tunnels and 20 Piko agents: while the Pico endpoint's move
        // waits for its replacement, none of its other tunnels may move, and Piko agents do.
        var blocked = Self.node(tunnels: Array(repeating: "many", count: 10))
        for id in 11...30 { _ = blocked.handle(.tunnelOpened(TunnelID(UInt64(id)), endpoint: "old", agent: .piko), now: .zero) }
        _ = Self.tick(&blocked, from: 1, to: 2)
        let blockedMoves = Self.tick(&blocked, from: 3, to: 4)
        #expect(blockedMoves.first == TunnelID(1) && blockedMoves.dropFirst().contains { $0.rawValue > 10 } && !blockedMoves.dropFirst().contains { $0.rawValue <= 10 }, "\(blockedMoves)")
    }

    @Test func test_aMoveWhoseReplacementNeverShows_countsAsReplacedAfterTheWait() {
        // "multi" keeps two unmoved tunnels here, so its endpoint is served besides tunnel 1; no
        // count ever rises (another node's release can hide a replacement that landed first).
        var node = Self.node(tunnels: ["multi", "multi", "multi"] + (4...30).map { "e\($0)" })
        _ = Self.tick(&node, from: 1, to: 3)
        #expect(node.upstreams.tunnel(TunnelID(1))?.isDraining == true)
        _ = Self.tick(&node, from: 4, to: 17)
        #expect(node.upstreams.tunnel(TunnelID(1)) != nil, "within the 15 s wait")
        _ = Self.tick(&node, from: 18, to: 19)
        #expect(node.upstreams.tunnel(TunnelID(1)) != nil, "counted as replaced at 18 s: the settle time runs")
        _ = Self.tick(&node, from: 20, to: 20)
        #expect(node.upstreams.tunnel(TunnelID(1)) == nil, "released 2 s later")
        // e4…e30 have no tunnel elsewhere: theirs stay, however long.
        #expect(node.upstreams.tunnel(TunnelID(4))?.isDraining == true)
        // A peer's count is no evidence (that node may be moving its tunnel too): e5 is served
        // by peer 2 from the start, its count never rises, and after the wait its moved tunnel
        // stays, but no longer counts as a move under way nor holds its endpoint.
        var served = Self.node(tunnels: (1...30).map { "e\($0)" })
        Self.entry(Self.peers()[0], "e1", count: 1, version: 1, into: &served, at: .zero)
        _ = Self.tick(&served, from: 1, to: 3)
        #expect(served.upstreams.tunnel(TunnelID(1))?.isDraining == true)
        #expect(served.rebalanceCensus(now: .seconds(4)).moving >= 1)
        let before = served.rebalanceCensus(now: .seconds(4)).moving
        _ = Self.tick(&served, from: 4, to: 30)
        #expect(served.upstreams.tunnel(TunnelID(1))?.isDraining == true, "still there at 30 s")
        #expect(served.movesUnderWay(at: .seconds(30)) < served.moves.count, "moves past the wait no longer count: \(before)")
    }

    @Test func test_replacementsThatLandedLately_areTheLastToMove() {
        // 20 tunnels of agents that were here all along, then 10 replacements of agents another
        // node moved here: this node moves the former first, although the latter are of the
        // endpoint with the most tunnels here.
        var node = Self.node(tunnels: (1...20).map { "e\($0)" })
        for id in 21...30 { _ = node.handle(.tunnelOpened(TunnelID(UInt64(id)), endpoint: "landed", agent: .picoReplacing), now: .zero) }
        let asked = Self.tick(&node, from: 1, to: 10)
        #expect(!asked.isEmpty && asked.allSatisfy { $0.rawValue <= 20 }, "\(asked)")
    }

    @Test func test_theCensus_countsOnlyActiveMembers_soGhostsAndDrainersDoNotSkewTheMean() {
        var node = Self.node(tunnels: (1...15).map { "e\($0)" }, peerCounts: [15, 15])
        #expect(node.rebalanceCensus(now: .seconds(1)).memberTotals.sorted() == [15, 15, 15])
        let peers = Self.peers()
        // The totals are cached until the endpoint table changes: a new entry shows at once.
        Self.entry(peers[0], "more", count: 5, version: 2, into: &node, at: .seconds(1))
        #expect(node.rebalanceCensus(now: .seconds(1)).memberTotals.sorted() == [15, 15, 20])
        // Peer 3 is declared dead (Piko #322 counted such ghosts), then a fourth member drains.
        _ = node.handle(ClusterNodeTests.datagram(from: peers[0], [.dead(subject: peers[1].uid, incarnation: 0, accuser: peers[0].uid)]), now: .seconds(1))
        let drainer = Fixture.info(4)
        _ = node.handle(ClusterNodeTests.datagram(from: drainer, [.alive(info: drainer, incarnation: 0, draining: true)]), now: .seconds(1))
        let census = node.rebalanceCensus(now: .seconds(1))
        #expect(census.members.count == 2)
        #expect(census.memberTotals.sorted() == [15, 20])
        #expect(node.memberViews.first { $0.isLocal }?.tunnels == 15)
        #expect(node.memberViews.first { $0.info.uid == peers[0].uid }?.tunnels == 20)
    }

    @Test func test_aHeavyNode_refusesReplacementsAndPikoAgents_neverAFreshPicoAgent_andOnlyOfServedEndpoints() {
        var node = Self.node(tunnels: (1...30).map { "e\($0 % 10)" })
        // The refusal reads the last evaluation's census (a dial never walks the endpoint table).
        #expect(Self.tick(&node, from: 0, to: 0).isEmpty)
        // A member change within the hold (2 s here) keeps a node that is not shedding from refusing.
        #expect(!node.handle(.tunnelOpened(TunnelID(99), endpoint: "e3", agent: .picoReplacing), now: .seconds(1)).contains(.closeTunnel(TunnelID(99))))
        let refused = node.handle(.tunnelOpened(TunnelID(100), endpoint: "e3", agent: .picoReplacing), now: .seconds(3))
        #expect(refused.contains(.closeTunnel(TunnelID(100))))
        #expect(refused.contains(.event(.tunnelRejected(TunnelID(100), reason: "this node holds 31 tunnels against a cluster mean of 11 and is shedding or above it: reconnect to a lighter node"))))
        #expect(node.rebalanceFigures.tunnelsRefused == 1)
        let unserved = node.handle(.tunnelOpened(TunnelID(101), endpoint: "new", agent: .picoReplacing), now: .seconds(3))
        #expect(!unserved.contains(.closeTunnel(TunnelID(101))), "nobody serves it: refusing would lengthen an outage")
        // A Pico agent dialling fresh may hold no tunnel at all, and every node's view of the
        // others lags behind while counts grow: refusing it could turn it away everywhere.
        #expect(!node.handle(.tunnelOpened(TunnelID(102), endpoint: "e3", agent: .pico), now: .seconds(3)).contains(.closeTunnel(TunnelID(102))))
        // A Piko agent cannot say it moves, and one more takes this node over the threshold:
        // refused while its endpoint is served, taken when it is not.
        let piko = node.handle(.tunnelOpened(TunnelID(103), endpoint: "e3", agent: .piko), now: .seconds(3))
        #expect(piko.contains(.closeTunnel(TunnelID(103))))
        #expect(piko.contains(.event(.tunnelRejected(TunnelID(103), reason: "this node holds 33 tunnels against a cluster mean of 11 and is shedding or one more would take it over the threshold: reconnect to a lighter node"))))
        #expect(!node.handle(.tunnelOpened(TunnelID(104), endpoint: "piko-only", agent: .piko), now: .seconds(3)).contains(.closeTunnel(TunnelID(104))))
        // Off: everything is taken.
        var off = Self.node(tunnels: (1...30).map { "e\($0 % 10)" }) { $0.rebalance.threshold = 0 }
        _ = Self.tick(&off, from: 0, to: 0)
        #expect(!off.handle(.tunnelOpened(TunnelID(100), endpoint: "e3", agent: .picoReplacing), now: .seconds(3)).contains(.closeTunnel(TunnelID(100))))
        #expect(Self.tick(&off, from: 1, to: 30).isEmpty)
    }

    @Test func test_aDrainingNode_neitherRebalancesNorRefuses() {
        var node = Self.node(tunnels: (1...30).map { "e\($0 % 10)" })
        _ = node.handle(.shutdownRequested, now: .seconds(1))
        let rebalance = node.handle(.timerFired(.rebalance), now: .seconds(5))
        #expect(!rebalance.contains { if case .schedule(.rebalance, _) = $0 { true } else { false } }, "the timer stops")
        #expect(!rebalance.contains { if case .event(.rebalanceMoveAsked) = $0 { true } else { false } })
        let late = node.handle(.tunnelOpened(TunnelID(100), endpoint: "e3", agent: .picoReplacing), now: .seconds(5))
        #expect(late.contains(.tellAgentToMove(TunnelID(100))), "asked to move as any tunnel opened during a drain")
        #expect(!late.contains(.closeTunnel(TunnelID(100))))
    }
}

/// Who dialled a tunnel, from its handshake.
@Suite struct TunnelAgentTests {
    @Test func test_theHandshake_tellsPikosAgents_PicosAgents_andReplacementsApart() {
        #expect(TunnelAgent(path: "/piko/v1/upstream/svc", headers: [:]) == .piko)
        #expect(TunnelAgent(path: "/piko/v1/upstream/svc", headers: [TunnelAgent.replacingHeader: "1"]) == .piko, "Piko's agents never open a replacement first")
        #expect(TunnelAgent(path: "/pico/v1/upstream/svc", headers: [:]) == .pico)
        #expect(TunnelAgent(path: "/pico/v1/upstream/svc", headers: ["X-Pico-Replacing": "1"]) == .picoReplacing)
        #expect(TunnelAgent(path: "/pico/v1/upstream/svc", headers: [TunnelAgent.replacingHeader: "yes"]) == .pico, "only 1 says so")
        #expect(!TunnelAgent.piko.reconnectsFirst && TunnelAgent.pico.reconnectsFirst && TunnelAgent.picoReplacing.reconnectsFirst)
    }
}
