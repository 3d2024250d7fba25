import PicoModel
@testable import PicoSim
import Testing

@Suite("Checkers")
struct CheckerTests {
    static let all: [Checker] = [
        .routeOnlyToLiveOwners(detection: .seconds(10)), .atMostOneHop, .membershipConverged(within: nil), .endpointTablesConverged(within: nil),
        .noGhostMembers, .invariantsHold, .agentsRehomed(within: nil), .noFalseDeaths,
    ]

    @Test func test_rollingRestart_passesEveryChecker() {
        var world = TrafficTests.startedWorld(pods: 3)
        world.addClient(ClientSpec(name: "load", endpoints: ["alpha", "beta", "gamma"], rate: 100))
        let start = world.now
        for index in [2, 1, 0] {
            world.terminate(index)
            while world.pods[index].state == .running { world.run(until: world.now + .milliseconds(100)) }
            world.start(index)
            while !world.pods[index].ready { world.run(until: world.now + .milliseconds(100)) }
            world.run(until: world.now + .seconds(5))
        }
        world.run(until: world.now + .seconds(10))
        for checker in Self.all + [.noFailedRequests(windows: [start...world.now])] {
            let result = checker.check(world)
            #expect(result.passed, "\(result)")
        }
    }

    @Test func test_routeCheck_judgesOnlyRequestsThatReachedAPod() {
        var world = TrafficTests.startedWorld(pods: 2)
        world.traffic.history.append(RequestRecord(id: 900, client: 0, endpoint: "alpha", issuedAt: .seconds(1), finishedAt: .seconds(1), outcome: .failed("no pod behind the load balancer"), path: []))
        #expect(Checker.routeOnlyToLiveOwners(detection: .seconds(15)).check(world).passed, "the load balancer had nobody: no routing happened")
        world.traffic.history.append(RequestRecord(id: 901, client: 0, endpoint: "alpha", issuedAt: .seconds(1), finishedAt: .seconds(1), outcome: .failed("502 no available upstreams"), path: [0]))
        #expect(!Checker.routeOnlyToLiveOwners(detection: .seconds(15)).check(world).passed)
    }

    @Test func test_noFailedRequests_excusesOnlyRequestsThatNoReachableHolderCouldServe_whenAsked() {
        var world = TrafficTests.startedWorld(pods: 2)
        let window = [Instant.zero...world.now + .seconds(10)]
        world.traffic.history.append(RequestRecord(id: 900, client: 0, endpoint: "alpha", issuedAt: .seconds(1), finishedAt: .seconds(1),
                                                   outcome: .failed("502 no available upstreams"), path: [0], holderReachable: false))
        #expect(!Checker.noFailedRequests(windows: window).check(world).passed, "without the excuse every failure counts")
        #expect(Checker.noFailedRequests(windows: window, excuseUnreachable: true).check(world).passed)
        world.traffic.history.append(RequestRecord(id: 901, client: 0, endpoint: "alpha", issuedAt: .seconds(1), finishedAt: .seconds(1),
                                                   outcome: .failed("502 upstream unreachable"), path: [0], holderReachable: true))
        #expect(!Checker.noFailedRequests(windows: window, excuseUnreachable: true).check(world).passed, "a holder was reachable")
    }

    @Test func test_reachabilityStretch_measuresTheLongestUnbrokenStretch_theCurrentOneIncluded() {
        // A forward 22 ms before a cut that healed 100 ms before the client gave up.
        var cut = ReachabilityStretch(reachable: true, now: .seconds(10))
        cut.note(reachable: false, now: .seconds(10) + .milliseconds(22))
        cut.note(reachable: false, now: .seconds(12))
        cut.note(reachable: true, now: .seconds(14) + .milliseconds(900))
        #expect(cut.longest(at: .seconds(15)) == .milliseconds(100))
        #expect(cut.longest(at: .seconds(15)) < SimWorld.servableReachability, "no holder could be counted on: excused")
        // A holder reachable for two seconds before the cut: the cluster had its chance.
        var served = ReachabilityStretch(reachable: true, now: .seconds(10))
        served.note(reachable: true, now: .seconds(11))
        served.note(reachable: false, now: .seconds(12))
        served.note(reachable: true, now: .seconds(14) + .milliseconds(900))
        #expect(served.longest(at: .seconds(15)) == .seconds(2))
        #expect(served.longest(at: .seconds(15)) >= SimWorld.servableReachability)
        // Unreachable at arrival, reachable for the last 1.5 s: not excused any more.
        var late = ReachabilityStretch(reachable: false, now: .seconds(10))
        late.note(reachable: true, now: .seconds(13) + .milliseconds(500))
        #expect(late.longest(at: .seconds(15)) == .milliseconds(1_500))
    }

    @Test func test_crash_excusedOnlyWithinTheDetectionWindow() {
        var world = TrafficTests.startedWorld(pods: 3)
        world.addClient(ClientSpec(name: "load", endpoints: ["alpha", "beta", "gamma"], rate: 100))
        world.run(until: world.now + .seconds(2))
        let crashAt = world.now
        world.crash(2)
        world.run(until: world.now + .seconds(40))
        #expect(Checker.routeOnlyToLiveOwners(detection: .seconds(15)).check(world).passed)
        let strict = Checker.noFailedRequests(windows: [crashAt...world.now]).check(world)
        #expect(!strict.passed, "requests on the crashed pod failed")
        #expect(strict.subject?.hasPrefix("request ") == true && strict.violationTime != nil)
        for checker in [Checker.membershipConverged(within: nil), .endpointTablesConverged(within: nil), .noGhostMembers, .agentsRehomed(within: nil), .invariantsHold] {
            #expect(checker.check(world).passed, "\(checker.check(world))")
        }
    }

    @Test func test_boundedChecks_measureFromTheLastDisturbance() {
        var world = TrafficTests.startedWorld(pods: 3)
        let crashed = world.traffic.agents.indices.flatMap { world.traffic.tunnels(of: $0).map(\.pod) }.max() ?? 2
        for _ in 0..<20 {
            world.run(until: world.now + .milliseconds(100))
            world.observe()
        }
        world.crash(crashed)
        for _ in 0..<400 {
            world.run(until: world.now + .milliseconds(100))
            world.observe()
        }
        let tight = Checker.membershipConverged(within: .seconds(1)).check(world)
        #expect(!tight.passed, "crash detection takes seconds, not one")
        #expect(tight.message?.contains("after the last disturbance") == true)
        #expect(Checker.membershipConverged(within: .seconds(20)).check(world).passed)
        #expect(!Checker.endpointTablesConverged(within: .seconds(1)).check(world).passed)
        #expect(Checker.endpointTablesConverged(within: .seconds(20)).check(world).passed)
        // Every pod down for 10 s: the agents' backoff grows, so re-homing after the restart is slow.
        for pod in 0..<3 where world.pods[pod].state == .running { world.crash(pod) }
        world.run(until: world.now + .seconds(10))
        for pod in 0..<3 { world.start(pod) }
        for _ in 0..<400 {
            world.run(until: world.now + .milliseconds(100))
            world.observe()
        }
        let rehomed = Checker.agentsRehomed(within: .milliseconds(1)).check(world)
        #expect(!rehomed.passed && rehomed.subject?.hasPrefix("agent-") == true, "\(rehomed)")
        #expect(Checker.agentsRehomed(within: .seconds(20)).check(world).passed)
    }

    @Test func test_eachCheckerCanFail() {
        var world = WorldTests.world(pods: 2)
        world.start(0)
        world.start(1)
        world.run(until: .milliseconds(500))
        #expect(!Checker.membershipConverged(within: nil).check(world).passed, "two pods started alone are not one cluster yet")
        let ghost = NodeUID(99)
        world.events.append((.seconds(1), 0, .membership(.memberStatusChanged(uid: ghost, name: "g", from: MemberState(.alive, 0), to: MemberState(.dead, 0)))))
        world.events.append((.seconds(2), 0, .membership(.memberJoined(NodeInfo(uid: ghost, name: "g", gossipAddress: Address(host: "h", port: 1), proxyAddress: Address(host: "h", port: 2), adminAddress: Address(host: "h", port: 3), epoch: 0)))))
        let result = Checker.noGhostMembers.check(world)
        #expect(result.violationTime == .seconds(2) && result.subject == "pico-0")
        world.traffic.history.append(RequestRecord(id: 1, client: 0, endpoint: "x", issuedAt: .zero, finishedAt: .seconds(1), outcome: .ok, path: [0, 1, 0], hops: 2))
        #expect(!Checker.atMostOneHop.check(world).passed)
        world.violations.append((.seconds(3), "pico-1", "own incarnation decreased"))
        #expect(Checker.invariantsHold.check(world).message == "own incarnation decreased")
        #expect(!Checker.noFalseDeaths.check(world).passed, "uid 99 was declared dead without ever stopping")
        world.addAgent(AgentSpec(name: "lonely", endpoint: "e"))
        #expect(Checker.agentsRehomed(within: nil).check(world).passed, "no pod behind the load balancer yet: no tunnel is possible")
        world.traffic.believedReady = [true, true]
        #expect(!Checker.agentsRehomed(within: nil).check(world).passed)
    }
}
