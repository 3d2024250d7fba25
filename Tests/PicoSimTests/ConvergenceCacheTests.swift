import PicoModel
@testable import PicoSim
import Testing

/// `observe()` reuses convergence verdicts while what they read is unchanged: sampled every
/// 100 ms through joins, cuts, crashes, restarts, freezes and tunnels moving, the reused
/// verdicts always equal freshly computed ones.
@Suite("Convergence cache")
struct ConvergenceCacheTests {
    /// Both verdicts, reused and fresh, at every 100 ms for `duration`.
    static func expectSameVerdicts(_ world: inout SimWorld, for duration: Duration, _ phase: String) -> (differed: Int, samples: Int) {
        var differed = 0
        var samples = 0
        let end = world.now + duration
        while world.now < end {
            world.run(until: world.now + .milliseconds(100))
            let membership = world.cachedMembershipDifference()
            let fresh = world.membershipDifference()
            #expect(membership?.pod == fresh?.pod && membership?.message == fresh?.message, "\(phase) at \(world.now)")
            let endpoints = world.cachedEndpointDifference()
            let freshEndpoints = world.endpointDifference()
            #expect(endpoints?.pod == freshEndpoints?.pod && endpoints?.message == freshEndpoints?.message, "\(phase) at \(world.now)")
            if fresh != nil || freshEndpoints != nil { differed += 1 }
            samples += 1
        }
        return (differed, samples)
    }

    @Test func test_reusedVerdicts_equalFreshOnes_throughFaults() {
        var world = TrafficTests.startedWorld(pods: 4, seed: 17)
        world.addClient(ClientSpec(name: "load", endpoints: ["alpha", "beta", "gamma"], rate: 50))
        var differed = 0
        var samples = 0
        func phase(_ name: String, for duration: Duration, _ act: (inout SimWorld) -> Void) {
            act(&world)
            let seen = Self.expectSameVerdicts(&world, for: duration, name)
            differed += seen.differed
            samples += seen.samples
        }
        phase("steady", for: .seconds(3)) { _ in }
        phase("cut", for: .seconds(12)) { ClusterWorld.partition(&$0, [[0, 1], [2, 3]]) }
        phase("healed", for: .seconds(10)) { $0.network.healAll() }
        phase("crash", for: .seconds(10)) { $0.crash(2) }
        phase("restart", for: .seconds(10)) { $0.start(2) }
        phase("freeze", for: .seconds(8)) { $0.pause(1) }
        phase("thaw", for: .seconds(10)) { $0.resume(1) }
        phase("leave", for: .seconds(10)) { $0.terminate(3) }
        #expect(differed > 10 && differed < samples, "the faults made views differ for a while, then agree (\(differed) of \(samples))")
        #expect(world.violations.isEmpty)
    }
}
