import PicoModel
@testable import PicoSim
import Testing

@Suite("Rollout controller")
struct RolloutTests {
    @Test func test_rollingUpdate_replacesEveryPodHighestFirst_withoutAFailedRequest() {
        var world = TrafficTests.startedWorld(pods: 3)
        world.addClient(ClientSpec(name: "load", endpoints: ["alpha", "beta", "gamma"], rate: 200))
        world.run(until: world.now + .seconds(2))
        let start = world.now
        let oldUIDs = world.pods.map { $0.node!.me.uid }
        world.startRollout(maxUnavailable: 1, minReadySeconds: .seconds(5))
        while world.rollout?.isComplete == false, world.now - start < .seconds(300) { world.run(until: world.now + .seconds(1)) }
        world.run(until: world.now + .seconds(5))
        #expect(world.rollout?.replaced == [2, 1, 0])
        #expect(zip(oldUIDs, world.pods.map { $0.node!.me.uid }).allSatisfy { $0 != $1 }, "every pod is a new process")
        for checker in CheckerTests.all + [.noFailedRequests(windows: [start...world.now])] {
            let result = checker.check(world)
            #expect(result.passed, "\(result)")
        }
        #expect(world.traffic.tally.ok > 5_000)
    }

    @Test func test_terminationGracePeriod_killsAPodThatTakesTooLong() {
        var world = TrafficTests.startedWorld(pods: 3)
        world.startRollout(maxUnavailable: 1, terminationGracePeriod: .seconds(1))
        world.run(until: world.now + .seconds(60))
        #expect(world.rollout?.isComplete == true)
        #expect(world.pods.allSatisfy { $0.boot == 2 && $0.state == .running })
        // The built-in 5 s drain minimum outlasts a 1 s grace period: every pod was killed.
        #expect(world.stops.count == 3)
        #expect(world.pods.allSatisfy { $0.ready })
    }

    @Test func test_aProcessStartedWhileTheOldOneTerminated_isTheReplacement_notKilledAtTheGracePeriod() {
        var world = TrafficTests.startedWorld(pods: 3)
        world.startRollout(maxUnavailable: 1, terminationGracePeriod: .seconds(30))
        world.run(until: world.now + .seconds(1))
        #expect(world.isShuttingDown(2))
        world.crash(2)
        world.start(2)
        let boot = world.pods[2].boot
        world.run(until: world.now + .seconds(40))
        #expect(world.pods[2].boot == boot, "the restarted process is left alone")
        #expect(world.stops.filter { $0.pod == 2 }.count == 1, "one stop: the crash, no SIGKILL 30 s later")
        #expect(world.rollout?.replaced.first == 2)
    }
}
