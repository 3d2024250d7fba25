import PicoModel
@testable import PicoSim
import Testing

@Suite("Surge rollout")
struct SurgeRolloutTests {
    @Test func test_surgeRollout_startsNewPodsFirst_andFailsNoRequest() {
        var world = WorldTests.world(pods: 4, seed: 31)
        for index in 0..<3 {
            world.start(index)
            world.run(until: world.now + .seconds(3))
        }
        for (index, endpoint) in ["alpha", "beta"].enumerated() { world.addAgent(AgentSpec(name: "a\(index)", endpoint: endpoint)) }
        world.run(until: world.now + .seconds(3))
        world.addClient(ClientSpec(name: "load", endpoints: ["alpha", "beta"], rate: 100))
        world.run(until: world.now + .seconds(2))
        let start = world.now
        let old = Set((0..<3).compactMap { world.pods[$0].node?.me.uid })
        world.startSurgeRollout(maxSurge: 1, maxUnavailable: 0, minReadySeconds: .seconds(2), terminationGracePeriod: .seconds(60))
        world.run(until: world.now + .milliseconds(50))
        #expect(world.pods[3].hasProcess, "the surge pod starts before any old pod is terminated")
        #expect((0..<3).allSatisfy { world.pods[$0].state == .running && world.pods[$0].ready })
        while world.surgeRollout?.isComplete == false, world.now - start < .seconds(300) { world.run(until: world.now + .seconds(1)) }
        world.run(until: world.now + .seconds(5))
        #expect(world.surgeRollout?.isComplete == true)
        let running = world.pods.indices.filter { world.pods[$0].state == .running }
        #expect(running.count == 3)
        #expect(running.allSatisfy { !old.contains(world.pods[$0].node!.me.uid) }, "every running process is new")
        for checker in CheckerTests.all + [.noFailedRequests(windows: [start...world.now])] {
            #expect(checker.check(world).passed, "\(checker.check(world))")
        }
    }

    @Test func test_anOrdinalRestartedWhileTerminating_isNotKilledAtTheGracePeriod() {
        // seed 11883: the old pod crashed while draining, was started again, and the rollout
        // SIGKILLed the new process 30 s after it had signalled the old one.
        var world = WorldTests.world(pods: 4, seed: 31)
        for index in 0..<3 { world.start(index) }
        world.run(until: world.now + .seconds(5))
        world.startSurgeRollout(maxSurge: 1, maxUnavailable: 1, minReadySeconds: .seconds(1), terminationGracePeriod: .seconds(30))
        world.run(until: world.now + .milliseconds(50))
        let signalled = (0..<3).filter { world.isShuttingDown($0) }
        #expect(signalled == [2])
        world.crash(2)
        world.start(2)
        let boot = world.pods[2].boot
        world.run(until: world.now + .seconds(40))
        #expect(world.pods[2].boot == boot && world.pods[2].state == .running, "not the rollout's to kill")
        #expect(world.stops.filter { $0.pod == 2 && $0.crashed }.count == 1, "only the timeline's crash")
    }

    @Test func test_bothZero_isRefusedInScenarioFiles() {
        let text = ScenarioTests.minimal + "  timeline:\n    - at: 10s\n      rollout: {maxUnavailable: 0, maxSurge: 0}\n"
        #expect(ScenarioTests.error(text).contains("maxSurge and maxUnavailable cannot both be 0"))
    }
}
