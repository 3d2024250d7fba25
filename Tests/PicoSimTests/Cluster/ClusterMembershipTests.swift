@testable import PicoModel
@testable import PicoSim
import Testing

/// Joins, crashes, leaves, restarts and partitions of real `ClusterNode`s in the simulated world
/// (these were the model's multi-node harness tests).
@Suite("Cluster membership in the simulated world")
struct ClusterMembershipTests {
    @Test func test_threeNodes_joinThroughOneSeed_agree() {
        var world = WorldTests.world(pods: 3)
        world.start(0)
        world.run(until: .seconds(2))
        world.start(1)
        world.start(2)
        #expect(world.dnsListing == [0], "the newcomers can only find pico-0")
        world.run(until: world.now + .seconds(3))
        #expect(world.violations.isEmpty)
        #expect(WorldTests.converged(world))
        #expect(WorldTests.liveUIDs(world, seenBy: 0).count == 3)
        #expect(world.pods.allSatisfy { $0.ready })
    }

    @Test func test_nodesStartedTogether_withEmptyDNS_mergeOnReresolution() {
        var world = WorldTests.world(pods: 3)
        for index in 0..<3 { world.start(index) }
        world.run(until: .seconds(1))
        #expect(world.pods.allSatisfy { $0.ready })
        #expect(WorldTests.liveUIDs(world, seenBy: 0).count == 1)
        world.run(until: .seconds(33))
        #expect(WorldTests.converged(world))
        #expect(WorldTests.liveUIDs(world, seenBy: 1).count == 3)
        #expect(world.violations.isEmpty)
    }

    @Test func test_crashedNode_isDeclaredDeadByAll_andNeverComesBack() throws {
        var world = ClusterWorld.joined(pods: 4, seed: 1)
        world.run(until: world.now + .seconds(3))
        #expect(WorldTests.converged(world))
        let crashed = try #require(world.pods[3].node).me
        // Stale evidence captured while pod 3 was alive: a peer's full state listing it, and its
        // own alive announcement.
        var peer = try #require(world.pods[2].node)
        let staleState = GossipCodec.encode(peer.makeStateExchange(purpose: .pushPull, isReply: false, now: world.now))
        let staleAlive = GossipCodec.datagram(sender: crashed.uid, messages: [try #require(world.pods[3].node).membership.aliveMessage()])
        world.crash(3)
        world.run(until: world.now + .seconds(15))
        for observer in 0..<3 {
            #expect(ClusterWorld.status(of: crashed.uid, seenBy: observer, in: world) == .dead, "pod \(observer) must see the crashed node dead")
        }
        // Past the time dead members are dropped from the list (Piko expires them after 1 minute
        // and #314 resurrects them from a peer's digest).
        world.run(until: world.now + .seconds(60))
        #expect(world.pods[0].node?.membership.member(crashed.uid) == nil)
        world.deliver(.stateExchangeRequested(ExchangeID(77), bytes: staleState, from: try #require(world.pods[2].address)), to: 0)
        world.deliver(.datagramReceived(staleAlive, from: crashed.gossipAddress), to: 1)
        world.run(until: world.now + .seconds(60))
        for observer in 0..<3 {
            #expect(!WorldTests.liveUIDs(world, seenBy: observer).contains(crashed.uid), "ghost of the crashed node at pod \(observer)")
            #expect(ClusterWorld.status(of: crashed.uid, seenBy: observer, in: world) == .dead)
        }
        let joins = world.events.filter { _, pod, event in
            guard pod < 3, case .membership(.memberJoined(let info)) = event else { return false }
            return info.uid == crashed.uid
        }
        #expect(joins.count == 3, "each pod learned the crashed node exactly once, before the crash")
        #expect(world.violations.isEmpty)
    }

    @Test func test_leavingNode_isLeftEverywhere_andNeverDead() throws {
        var world = ClusterWorld.joined(pods: 4, seed: 1)
        world.run(until: world.now + .seconds(3))
        let leaving = try #require(world.pods[3].node).me.uid
        world.terminate(3)
        #expect(!world.pods[3].ready)
        world.run(until: world.now + .seconds(20))
        #expect(world.pods[3].state == .exited(.left))
        for observer in 0..<3 {
            #expect(ClusterWorld.status(of: leaving, seenBy: observer, in: world) == .left)
            #expect(!ClusterWorld.statusChanges(of: leaving, seenBy: observer, in: world).contains(.dead), "pod \(observer) showed the leaving node as dead")
        }
        #expect(world.violations.isEmpty)
    }

    @Test func test_restartOnSameAddress_confirmsOldUIDDeadAtOnce() throws {
        var world = ClusterWorld.joined(pods: 3, seed: 1)
        world.run(until: world.now + .seconds(3))
        let old = try #require(world.pods[2].node).me
        world.restartInPlace(2)
        let new = try #require(world.pods[2].node).me
        #expect(old.uid != new.uid)
        #expect(new.gossipAddress == old.gossipAddress, "a container restart keeps the pod IP")
        world.run(until: world.now + .milliseconds(1_500))
        for observer in 0..<2 {
            let membership = try #require(world.pods[observer].node).membership
            #expect(membership.tombstone(old.uid)?.status == .dead)
            #expect(membership.member(new.uid)?.state.status == .alive)
            #expect(ClusterWorld.statusChanges(of: old.uid, seenBy: observer, in: world) == [.dead], "the old UID was replaced without a suspicion")
        }
        #expect(world.violations.isEmpty)
    }

    @Test func test_partition_longerThanDetection_healsAfterward() {
        var world = ClusterWorld.joined(pods: 4, seed: 1)
        world.run(until: world.now + .seconds(3))
        let uids = world.pods.map { $0.node?.me.uid }
        ClusterWorld.partition(&world, [[0, 1], [2, 3]])
        world.run(until: world.now + .seconds(40))
        #expect(uids[2].map { ClusterWorld.status(of: $0, seenBy: 0, in: world) } == .dead)
        #expect(uids[0].map { ClusterWorld.status(of: $0, seenBy: 3, in: world) } == .dead)
        world.network.healAll()
        world.run(until: world.now + .seconds(45))
        #expect(WorldTests.converged(world))
        #expect(WorldTests.liveUIDs(world, seenBy: 0).count == 4)
        #expect(world.violations.isEmpty)
    }

    @Test func test_endpointOnOneNode_isRoutableFromOthers_andGoesWithItsTunnel() throws {
        var world = ClusterWorld.joined(pods: 3, seed: 1)
        world.run(until: world.now + .seconds(3))
        world.deliver(.tunnelOpened(TunnelID(1), endpoint: "svc"), to: 0)
        world.run(until: world.now + .seconds(1))
        let owner = try #require(world.pods[0].node).me
        let toOwner = RouteDecision.forward(uid: owner.uid, name: owner.name, proxyAddress: owner.proxyAddress)
        for pod in [1, 2] {
            let node = try #require(world.pods[pod].node)
            #expect(node.remoteUpstreams(for: "svc") == [RemoteUpstream(uid: owner.uid, name: owner.name, proxyAddress: owner.proxyAddress, count: 1, draining: false)])
            var router = ClusterWorld.loopRouter(of: node, endpoints: ["svc"])
            #expect(router.decide(endpoint: "svc", forwarded: false) == toOwner)
            #expect(router.decide(endpoint: "svc", forwarded: true) == .reject(.noAvailableUpstreams), "a forwarded request is never forwarded again")
        }
        let ownerNode = try #require(world.pods[0].node)
        #expect(ownerNode.remoteUpstreams(for: "svc").isEmpty)
        var ownRouter = ClusterWorld.loopRouter(of: ownerNode, endpoints: ["svc"])
        #expect(ownRouter.decide(endpoint: "svc", forwarded: false) == .local(TunnelID(1)))
        world.deliver(.tunnelClosed(TunnelID(1)), to: 0)
        world.run(until: world.now + .seconds(1))
        for pod in [1, 2] {
            let node = try #require(world.pods[pod].node)
            #expect(node.remoteUpstreams(for: "svc").isEmpty)
            var router = ClusterWorld.loopRouter(of: node, endpoints: ["svc"])
            #expect(router.decide(endpoint: "svc", forwarded: false) == .reject(.noAvailableUpstreams))
        }
        #expect(world.violations.isEmpty)
    }

    @Test func test_sameSeed_sameEvents_inAnotherRun() {
        func run() -> (events: [String], deaths: Int) {
            var world = ClusterWorld.joined(pods: 4, seed: 1)
            world.run(until: world.now + .seconds(5))
            world.crash(1)
            world.run(until: world.now + .seconds(20))
            let deaths = world.events.filter { _, _, event in
                if case .membership(.memberStatusChanged(_, _, _, let to)) = event { return to.status == .dead }
                return false
            }
            return (world.events.map { time, pod, event in "\(time) \(pod) \(event)" }, deaths.count)
        }
        let first = run()
        #expect(first.deaths == 3, "the run includes the crash's detection by the three others")
        #expect(first.events == run().events)
    }
}
