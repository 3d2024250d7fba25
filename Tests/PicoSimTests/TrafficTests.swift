import PicoModel
@testable import PicoSim
import Testing

@Suite("Traffic: agents, clients, load balancer")
struct TrafficTests {
    static func startedWorld(pods: Int, seed: UInt64 = 3) -> SimWorld {
        var world = WorldTests.world(pods: pods, seed: seed)
        for index in 0..<pods {
            world.start(index)
            world.run(until: world.now + .seconds(3))
        }
        for (index, endpoint) in ["alpha", "beta", "gamma"].enumerated() {
            world.addAgent(AgentSpec(name: "agent-\(index)", endpoint: endpoint))
        }
        world.run(until: world.now + .seconds(3))
        return world
    }

    @Test func test_requests_reachTheirUpstreams_fromEveryPod() {
        var world = Self.startedWorld(pods: 3)
        world.addClient(ClientSpec(name: "load", endpoints: ["alpha", "beta", "gamma"], rate: 200))
        world.run(until: world.now + .seconds(10))
        let tally = world.traffic.tally
        #expect(tally.ok > 1_900)
        #expect(tally.failed == 0 && tally.unknown == 0)
        #expect(world.traffic.history.contains { $0.path.count == 2 }, "some requests were forwarded once")
        #expect(world.traffic.history.allSatisfy { $0.path.count <= 2 })
        #expect(world.violations.isEmpty)
    }

    @Test func test_rollingRestart_oneAtATime_failsNoRequest() {
        var world = Self.startedWorld(pods: 3)
        world.addClient(ClientSpec(name: "load", endpoints: ["alpha", "beta", "gamma"], rate: 200))
        world.run(until: world.now + .seconds(5))
        for index in [2, 1, 0] {
            world.terminate(index)
            while world.pods[index].state == .running { world.run(until: world.now + .milliseconds(100)) }
            #expect(world.pods[index].state == .exited(.left))
            world.start(index)
            while !world.pods[index].ready { world.run(until: world.now + .milliseconds(100)) }
            world.run(until: world.now + .seconds(5))
        }
        world.run(until: world.now + .seconds(5))
        let tally = world.traffic.tally
        let failures = world.traffic.history.filter { if case .ok = $0.outcome { return false } else { return $0.outcome != nil } }
        #expect(failures.isEmpty, "\(failures.prefix(5))")
        #expect(tally.ok > 5_000)
        #expect(world.violations.isEmpty)
    }

    @Test func test_tcpConnections_liveTheirLifetime_andADrainingEntryPodRelaysThemToTheEnd() {
        // Three pods, one agent per endpoint: two pods of three relay each connection to the
        // holder of its endpoint's only tunnel.
        var world = Self.startedWorld(pods: 3)
        world.addClient(ClientSpec(name: "db", endpoints: ["alpha"], rate: 5, streams: StreamLifetimes(shortest: .seconds(20), longest: .seconds(20))))
        world.run(until: world.now + .seconds(2))
        let holder = world.traffic.tunnels(of: 0)[0].pod
        let entry = (0..<3).first { $0 != holder }!
        let relayed = world.traffic.history.filter { $0.path == [entry, holder] && $0.stream?.openedAt != nil }.map(\.id)
        #expect(!relayed.isEmpty)
        #expect(world.pods[entry].node?.relays == relayed.count)
        // SIGTERM the entry pod: it keeps relaying until the last connection ends, then leaves.
        world.terminate(entry)
        world.run(until: world.now + .seconds(15))
        #expect(world.pods[entry].state == .running, "connections through it are still open")
        world.run(until: world.now + .seconds(10))
        #expect(world.pods[entry].state == .exited(.left))
        for id in relayed {
            #expect(world.traffic.history[Int(id - 1)].outcome == .ok, "connection \(id) lived its lifetime")
        }
        let streams = world.traffic.history.filter { $0.stream?.openedAt != nil && $0.outcome != nil }
        #expect(streams.count > 25 && streams.allSatisfy { $0.outcome == .ok && $0.stream?.cut == nil })
        #expect(world.violations.isEmpty)
    }

    @Test func test_tcpConnections_longerThanTheGracePeriod_areCutAtTheDrainDeadline_notBefore() {
        var world = Self.startedWorld(pods: 3)
        world.addClient(ClientSpec(name: "db", endpoints: ["alpha"], rate: 2, streams: StreamLifetimes(shortest: .seconds(600), longest: .seconds(600))))
        world.run(until: world.now + .seconds(2))
        let holder = world.traffic.tunnels(of: 0)[0].pod
        let started = world.now
        world.terminate(holder)
        world.run(until: world.now + .seconds(70))
        let cuts = world.traffic.history.compactMap(\.stream?.cut)
        #expect(!cuts.isEmpty)
        let deadline = started + world.settings.node.gracePeriod - world.settings.node.membership.leaveTimeout
        #expect(cuts.allSatisfy { $0.at >= deadline && !$0.early && !$0.crashed && $0.drainDeadline == deadline })
        #expect(Checker.streamsNotCutEarly.check(world).passed)
        #expect(Checker.noFailedRequests(windows: [Instant.zero...world.now]).check(world).passed, "a cut at the deadline is not a failure")
        // Connections opened after the agent moved went to its new tunnel.
        #expect(Checker.newStreamsOnNewTunnels.check(world).passed)
        #expect(world.traffic.history.contains { $0.issuedAt > started + .seconds(5) && $0.stream?.openedAt != nil && $0.outcome == nil })
    }

    @Test func test_tcpConnectionsThatEndBeforeOrWithoutTheir101_leaveNothingCounted() {
        // Clients that give up before any 101 could arrive (3 ms): their exchanges end at every
        // hop, so no node keeps counting a stream or a relay (which would hold its drain).
        var world = Self.startedWorld(pods: 3)
        world.addClient(ClientSpec(name: "db", endpoints: ["alpha"], rate: 20, timeout: .milliseconds(3), streams: StreamLifetimes(shortest: .seconds(5), longest: .seconds(5))))
        world.run(until: world.now + .seconds(5))
        world.stopClients()
        world.run(until: world.now + .seconds(1))
        #expect(world.traffic.history.contains { $0.stream != nil && $0.outcome != nil })
        #expect(world.accountingMismatch() == nil)
        #expect((0..<3).allSatisfy { world.pods[$0].node?.relays == 0 && world.pods[$0].node?.upstreams.allTunnels.allSatisfy { $0.inFlight == 0 } == true })

        // Entry pods frozen while the holder crashes: the cut reaches them when they thaw.
        var frozen = Self.startedWorld(pods: 3)
        frozen.addClient(ClientSpec(name: "db", endpoints: ["alpha"], rate: 5, streams: StreamLifetimes(shortest: .seconds(60), longest: .seconds(60))))
        frozen.run(until: frozen.now + .seconds(3))
        frozen.stopClients()
        let holder = frozen.traffic.tunnels(of: 0)[0].pod
        let entries = (0..<3).filter { $0 != holder }
        #expect(entries.contains { frozen.pods[$0].node?.relays ?? 0 > 0 })
        for pod in entries { frozen.pause(pod) }
        frozen.crash(holder)
        frozen.run(until: frozen.now + .seconds(2))
        for pod in entries { frozen.resume(pod) }
        frozen.run(until: frozen.now + .seconds(1))
        #expect(entries.allSatisfy { frozen.pods[$0].node?.relays == 0 })
        #expect(frozen.accountingMismatch() == nil)
    }

    @Test func test_crash_failsOnlyWhatWasInFlightThere_andAgentsReconnect() {
        var world = Self.startedWorld(pods: 3)
        world.addClient(ClientSpec(name: "load", endpoints: ["alpha", "beta", "gamma"], rate: 100))
        world.run(until: world.now + .seconds(3))
        world.crash(1)
        world.run(until: world.now + .seconds(30))
        let failedAfterSettling = world.traffic.history.filter { record in
            guard let finished = record.finishedAt, finished > world.now - .seconds(10) else { return false }
            return record.outcome != .ok
        }
        #expect(failedAfterSettling.isEmpty, "after detection and re-homing every request succeeds")
        #expect(world.traffic.agents.allSatisfy { !$0.machine.tunnels.isEmpty })
        #expect(world.violations.isEmpty)
    }

    @Test func test_outcomes_failedWhenCertainlyUnserved_unknownWhenTheUpstreamMayHaveServed() throws {
        var world = Self.startedWorld(pods: 3)
        // Slow upstreams keep streams open, so a crash catches some of them mid-request.
        world.addClient(ClientSpec(name: "slow", endpoints: ["alpha", "beta", "gamma"], rate: 100, timeout: .seconds(2), serviceTime: .milliseconds(500)))
        world.addClient(ClientSpec(name: "nobody", endpoints: ["delta"], rate: 10))
        world.run(until: world.now + .seconds(3))
        let tunnelPods = Set(world.traffic.agents.indices.flatMap { world.traffic.tunnels(of: $0).map(\.pod) })
        let crashed = try #require(tunnelPods.max())
        let frozen = try #require((0..<3).first { $0 != crashed })
        world.pause(frozen)
        world.crash(crashed)
        world.run(until: world.now + .seconds(5))
        let history = world.traffic.history
        #expect(history.contains { $0.outcome == .failed("502 no available upstreams") }, "no upstream for delta: certainly unserved")
        #expect(history.contains { $0.outcome == .unknown("node stopped with the request in flight") })
        #expect(history.contains { $0.outcome == .unknown("no answer within 2s") }, "requests to the frozen pod time out")
        #expect(!history.contains { $0.outcome == .failed("node stopped with the request in flight") })
        #expect(!history.contains { $0.outcome == .failed("connection refused by \(world.pods[frozen].name)") }, "a frozen process still accepts")
        world.resume(frozen)
        world.run(until: world.now + .seconds(20))
        let late = world.traffic.history.filter { $0.issuedAt > world.now - .seconds(8) && $0.issuedAt < world.now - .seconds(3) && $0.endpoint != "delta" }
        #expect(late.count > 400 && late.allSatisfy { $0.outcome == .ok }, "after the thaw and re-homing every request succeeds")
        #expect(world.violations.isEmpty)
    }

    @Test func test_aTunnelDialledToAFrozenPod_waitsForTheThaw_orFailsWhenThePodDies() {
        for thaws in [true, false] {
            var world = WorldTests.world(pods: 1)
            world.start(0)
            world.run(until: .seconds(3))
            world.pause(0)
            world.addAgent(AgentSpec(name: "agent", endpoint: "alpha"))
            world.run(until: .seconds(4))
            #expect(world.traffic.agents[0].machine.connecting, "the upgrade waits in the frozen pod's backlog")
            #expect(!world.hasWorkingTunnel(0))
            if thaws {
                world.resume(0)
                world.run(until: .seconds(5))
                #expect(world.hasWorkingTunnel(0))
            } else {
                // seed 507: the parked dial was lost with the pod and the agent waited for ever.
                world.crash(0)
                world.start(0)
                world.run(until: .seconds(10))
                #expect(world.hasWorkingTunnel(0), "the agent saw the reset and dialled again")
            }
        }
    }

    @Test func test_zipfClients_favourTheFirstEndpoints() {
        let spec = ClientSpec(name: "z", endpoints: ["a", "b", "c", "d"], rate: 1, zipf: true)
        var rng = SplitMix64(seed: 9)
        var counts: [String: Int] = [:]
        for _ in 0..<25_000 { counts[spec.pickEndpoint(using: &rng), default: 0] += 1 }
        // Weights 1, 1/2, 1/3, 1/4 of 25/12: a gets 48 %, d 12 %.
        #expect(abs(Double(counts["a"] ?? 0) / 25_000 - 0.48) < 0.02)
        #expect(abs(Double(counts["d"] ?? 0) / 25_000 - 0.12) < 0.02)
    }
}
