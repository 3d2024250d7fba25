@testable import PicoModel
import Testing

@Suite("Multi-node harness")
struct ClusterHarnessTests {
    @Test func test_threeNodes_joinThroughOneSeed_agree() {
        var cluster = TestCluster()
        cluster.dnsListing = [0]
        cluster.addNodes(3)
        cluster.run(for: .seconds(3))
        #expect(cluster.violations == [])
        #expect(cluster.hasConverged() == true)
        #expect(cluster.liveNames(seenBy: 0).count == 3)
        #expect(cluster.slots.allSatisfy { $0.ready })
    }

    @Test func test_nodesStartedTogether_withEmptyDNS_mergeOnReresolution() {
        var cluster = TestCluster()
        cluster.dnsListing = []
        cluster.addNodes(3)
        cluster.run(for: .seconds(1))
        #expect(cluster.slots.allSatisfy { $0.ready })
        #expect(cluster.liveNames(seenBy: 0).count == 1)
        cluster.dnsListing = nil
        cluster.run(for: .seconds(32))
        #expect(cluster.hasConverged() == true)
        #expect(cluster.liveNames(seenBy: 1).count == 3)
        #expect(cluster.violations == [])
    }

    @Test func test_crashedNode_isDeclaredDeadByAll_andNeverComesBack() throws {
        var cluster = TestCluster()
        cluster.addNodes(4)
        cluster.run(for: .seconds(3))
        #expect(cluster.hasConverged() == true)
        let crashed = cluster.slots[3].node.me
        // Stale evidence captured while node 3 was alive: a peer's full state listing it, and its
        // own alive announcement.
        let staleState = GossipCodec.encode(cluster.slots[2].node.makeStateExchange(purpose: .pushPull, isReply: false))
        let staleAlive = GossipCodec.datagram(sender: crashed.uid, messages: [cluster.slots[3].node.membership.aliveMessage()])
        cluster.crash(3)
        cluster.run(for: .seconds(15))
        for observer in 0..<3 {
            #expect(cluster.status(of: 3, seenBy: observer) == .dead, "node \(observer) must see the crashed node dead")
        }
        // Past the time dead members are dropped from the list (Piko expires them after 1 minute
        // and #314 resurrects them from a peer's digest).
        cluster.run(for: .seconds(60))
        #expect(cluster.slots[0].node.membership.member(crashed.uid) == nil)
        cluster.deliver(.stateExchangeRequested(ExchangeID(77), bytes: staleState, from: TestCluster.address(2)), to: 0)
        cluster.deliver(.datagramReceived(staleAlive, from: TestCluster.address(3)), to: 1)
        cluster.run(for: .seconds(60))
        for observer in 0..<3 {
            #expect(!cluster.liveNames(seenBy: observer).contains(crashed.name), "ghost of the crashed node at \(observer)")
            #expect(cluster.status(of: 3, seenBy: observer) == .dead)
        }
        let rejoins = cluster.slots[0..<3].flatMap(\.events).filter {
            if case .membership(.memberJoined(let info)) = $0 { return info.uid == crashed.uid }
            return false
        }
        #expect(rejoins.count == 3, "each node learned the crashed node exactly once, before the crash")
        #expect(cluster.violations == [])
    }

    @Test func test_leavingNode_isLeftEverywhere_andNeverDead() {
        var cluster = TestCluster()
        cluster.addNodes(4)
        cluster.run(for: .seconds(3))
        let leaving = cluster.slots[3].node.me.uid
        cluster.deliver(.shutdownRequested, to: 3)
        #expect(!cluster.slots[3].ready)
        cluster.run(for: .seconds(20))
        #expect(cluster.slots[3].exited == .left)
        for observer in 0..<3 {
            #expect(cluster.status(of: 3, seenBy: observer) == .left)
            #expect(!cluster.statusChanges(of: leaving, seenBy: observer).contains(.dead), "node \(observer) showed the leaving node as dead")
        }
        #expect(cluster.violations == [])
    }

    @Test func test_restartOnSameAddress_confirmsOldUIDDeadAtOnce() {
        var cluster = TestCluster()
        cluster.addNodes(3)
        cluster.run(for: .seconds(3))
        let old = cluster.slots[2].node.me.uid
        cluster.restart(2, seed: 99)
        let new = cluster.slots[2].node.me.uid
        #expect(old != new)
        cluster.run(for: .milliseconds(1_500))
        for observer in 0..<2 {
            #expect(cluster.slots[observer].node.membership.tombstone(old)?.status == .dead)
            #expect(cluster.slots[observer].node.membership.member(new)?.state.status == .alive)
            #expect(cluster.statusChanges(of: old, seenBy: observer) == [.dead], "the old UID was replaced without a suspicion")
        }
        #expect(cluster.violations == [])
    }

    @Test func test_partition_longerThanDetection_healsAfterward() {
        var cluster = TestCluster()
        cluster.addNodes(4)
        cluster.run(for: .seconds(3))
        cluster.partition([0, 1], [2, 3])
        cluster.run(for: .seconds(40))
        #expect(cluster.status(of: 2, seenBy: 0) == .dead)
        #expect(cluster.status(of: 0, seenBy: 3) == .dead)
        cluster.heal()
        cluster.run(for: .seconds(45))
        #expect(cluster.hasConverged() == true)
        #expect(cluster.liveNames(seenBy: 0).count == 4)
        #expect(cluster.violations == [])
    }

    @Test func test_endpointOnOneNode_isRoutableFromOthers_andGoesWithItsTunnel() {
        var cluster = TestCluster()
        cluster.addNodes(3)
        cluster.run(for: .seconds(3))
        cluster.deliver(.tunnelOpened(TunnelID(1), endpoint: "svc"), to: 0)
        cluster.run(for: .seconds(1))
        let owner = cluster.slots[0].node.me
        for (index, node) in [1, 2].enumerated() {
            cluster.deliver(.routeRequest(RequestID(UInt64(index)), endpoint: "svc", forwarded: false), to: node)
            #expect(cluster.slots[node].routes.last?.1 == .forward(uid: owner.uid, name: owner.name, proxyAddress: owner.proxyAddress))
        }
        cluster.deliver(.routeRequest(RequestID(9), endpoint: "svc", forwarded: false), to: 0)
        #expect(cluster.slots[0].routes.last?.1 == .local(TunnelID(1)))
        cluster.deliver(.routeRequest(RequestID(10), endpoint: "svc", forwarded: true), to: 1)
        #expect(cluster.slots[1].routes.last?.1 == .reject(.noAvailableUpstreams), "a forwarded request is never forwarded again")
        cluster.deliver(.tunnelClosed(TunnelID(1)), to: 0)
        cluster.run(for: .seconds(1))
        for node in [1, 2] {
            cluster.deliver(.routeRequest(RequestID(20), endpoint: "svc", forwarded: false), to: node)
            #expect(cluster.slots[node].routes.last?.1 == .reject(.noAvailableUpstreams))
        }
        #expect(cluster.violations == [])
    }
}

@Suite("Graceful hand-over")
struct DrainHarnessTests {
    @Test(arguments: [50, 8_000])
    func test_drainingNode_handsOverItsTunnel_withoutFailingARequest(agentDelayMilliseconds: Int) {
        var cluster = TestCluster()
        cluster.addNodes(3)
        cluster.run(for: .seconds(3))
        let old = cluster.openTunnel(endpoint: "svc", on: 2)
        // A slow agent (8 s, beyond the 5 s minimum drain) shows the old tunnel is kept until its
        // replacement is routable: make-before-break.
        cluster.traffic!.agentDelay = .milliseconds(agentDelayMilliseconds)
        // Sparse enough that the old tunnel is often idle: only the hand-over rule keeps it open.
        cluster.traffic!.interval = .milliseconds(100)
        cluster.run(for: .seconds(1))
        cluster.startTraffic(endpoint: "svc")
        cluster.run(for: .seconds(1))
        cluster.deliver(.shutdownRequested, to: 2)
        cluster.run(for: .seconds(30))
        let traffic = cluster.traffic!
        #expect(traffic.failures == [])
        #expect(traffic.completed > 500)
        #expect(cluster.slots[2].exited == .left)
        #expect(cluster.slots[2].movedTunnels == [old])
        #expect(cluster.slots[2].closedTunnels == [old], "the old tunnel was released by its node")
        #expect(cluster.status(of: 2, seenBy: 0) == .left)
        #expect(cluster.violations == [])
    }

    @Test func test_drainingNode_withNoOtherNode_releasesTunnelsAndExits() {
        var cluster = TestCluster()
        cluster.addNodes(1, join: false)
        cluster.run(for: .seconds(1))
        cluster.openTunnel(endpoint: "svc", on: 0)
        cluster.deliver(.shutdownRequested, to: 0)
        cluster.run(for: .seconds(10))
        #expect(cluster.slots[0].exited == .left)
        #expect(cluster.violations == [])
    }
}
