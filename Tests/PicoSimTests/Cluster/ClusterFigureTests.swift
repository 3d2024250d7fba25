import PicoModel
@testable import PicoSim
import Testing

/// Cluster behaviour against the anchors' figures (membership-anchors.md §7), in virtual time.
@Suite("Cluster figures")
struct ClusterFigureTests {
    /// T9: no false DEAD declaration in an hour of 10 % uniform datagram loss (N = 5).
    @Test func test_tenPercentLoss_forAnHour_declaresNobodyDead() {
        var falseDeaths: [String] = []
        var lossy = LinkProfile.lan
        lossy.loss = 0.10
        for seed in 1...6 {
            var world = ClusterWorld.joined(pods: 5, seed: UInt64(seed), network: lossy)
            world.run(until: world.now + .seconds(600))
            for (_, pod, event) in world.events {
                if case .membership(.memberStatusChanged(_, let name, _, let to)) = event, to.status == .dead {
                    falseDeaths.append("seed \(seed): pod \(pod) declared \(name) dead")
                }
            }
            #expect(world.violations.isEmpty)
            #expect(WorldTests.converged(world))
        }
        #expect(falseDeaths == [])
    }

    /// T6: a crash is DEAD at every node within 6 s, worst of 8 seeds (memberlist's anchor: about
    /// 6 s at N = 3, 9.5 s p99 at N = 10; the old defaults took up to 7.8 s here). Issue 24's goal
    /// is 5 s on average, 8 s p99, up to 100 pods: `bench/membership` measures the larger sizes.
    @Test(arguments: [3, 10])
    func test_crash_isDeadEverywhere_withinTheAnchorBound(size: Int) throws {
        var worst: Duration = .zero
        for seed in 1...8 {
            var world = ClusterWorld.joined(pods: size, seed: UInt64(seed))
            world.run(until: world.now + .seconds(5))
            let crashed = try #require(world.pods[size - 1].node).me.uid
            world.crash(size - 1)
            let crashedAt = world.now
            func everyoneSeesItDead() -> Bool {
                (0..<(size - 1)).allSatisfy { ClusterWorld.status(of: crashed, seenBy: $0, in: world) == .dead }
            }
            while !everyoneSeesItDead(), world.now - crashedAt < .seconds(30) { world.run(until: world.now + .milliseconds(50)) }
            worst = max(worst, world.now - crashedAt)
            #expect(world.violations.isEmpty)
        }
        #expect(worst <= .seconds(6), "worst crash-to-dead-everywhere was \(worst)")
    }

    /// T11: steady-state gossip traffic stays far below 0.5 KB per node per second.
    @Test func test_steadyState_bytesPerNodePerSecond() {
        var world = ClusterWorld.joined(pods: 5, seed: 1)
        world.run(until: world.now + .seconds(40))
        let before = world.bytesSent.reduce(0, +)
        world.run(until: world.now + .seconds(60))
        let perNodePerSecond = Double(world.bytesSent.reduce(0, +) - before) / 5 / 60
        #expect(perNodePerSecond < 200, "\(perNodePerSecond) bytes/node/s of datagram payload")
    }

    /// T13: after a partition long enough for each side to declare the other dead, the healed
    /// cluster has one view within a reconnect period (30 s bound), each node taking a new UID at
    /// most once.
    @Test func test_healedPartition_convergesWithinThirtySeconds() {
        for seed in 1...4 {
            var world = ClusterWorld.joined(pods: 6, seed: UInt64(seed))
            world.run(until: world.now + .seconds(3))
            ClusterWorld.partition(&world, [[0, 1, 2], [3, 4, 5]])
            world.run(until: world.now + .seconds(40))
            world.network.healAll()
            let healedAt = world.now
            while !WorldTests.converged(world), world.now - healedAt < .seconds(60) { world.run(until: world.now + .milliseconds(100)) }
            #expect(world.now - healedAt <= .seconds(30), "seed \(seed)")
            for pod in 0..<6 {
                let rebirths = world.events.filter { _, from, event in
                    guard from == pod, case .membership(.reborn) = event else { return false }
                    return true
                }
                #expect(rebirths.count <= 1, "seed \(seed): pod \(pod)")
            }
            #expect(world.violations.isEmpty)
        }
    }
}
