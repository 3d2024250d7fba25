@testable import PicoModel
import Testing

/// Cluster behaviour against the anchors' figures (membership-anchors.md §7), in virtual time.
@Suite("Cluster figures")
struct ClusterFigureTests {
    /// T9: no false DEAD declaration in an hour of 10 % uniform datagram loss (N = 5).
    @Test func test_tenPercentLoss_forAnHour_declaresNobodyDead() {
        var falseDeaths: [String] = []
        for seed in 1...6 {
            var cluster = TestCluster()
            cluster.lossRate = 0.10
            cluster.networkRNG = SplitMix64(seed: UInt64(seed))
            cluster.addNodes(5, seed: UInt64(seed))
            cluster.run(for: .seconds(600))
            for (index, slot) in cluster.slots.enumerated() {
                for event in slot.events {
                    if case .membership(.memberStatusChanged(_, let name, _, let to)) = event, to.status == .dead {
                        falseDeaths.append("seed \(seed): node \(index) declared \(name) dead")
                    }
                }
            }
            #expect(cluster.violations == [])
            #expect(cluster.hasConverged() == true)
        }
        #expect(falseDeaths == [])
    }

    /// T6: a crash is DEAD at every node within about 6 s (N = 3) to 9.5 s (N = 10, p99).
    @Test(arguments: [3, 10])
    func test_crash_isDeadEverywhere_withinTheAnchorBound(size: Int) {
        var worst: Duration = .zero
        for seed in 1...8 {
            var cluster = TestCluster()
            cluster.addNodes(size, seed: UInt64(seed))
            cluster.run(for: .seconds(5))
            cluster.crash(size - 1)
            let crashedAt = cluster.now
            while !(0..<(size - 1)).allSatisfy({ cluster.status(of: size - 1, seenBy: $0) == .dead }), cluster.now - crashedAt < .seconds(30) {
                cluster.run(for: .milliseconds(50))
            }
            worst = max(worst, cluster.now - crashedAt)
            #expect(cluster.violations == [])
        }
        #expect(worst <= .milliseconds(9_500), "worst crash-to-dead-everywhere was \(worst)")
    }

    /// T11: steady-state gossip traffic stays far below 0.5 KB per node per second.
    @Test func test_steadyState_bytesPerNodePerSecond() {
        var cluster = TestCluster()
        cluster.addNodes(5)
        cluster.run(for: .seconds(40))
        let before = cluster.bytesSent
        cluster.run(for: .seconds(60))
        let perNodePerSecond = Double(cluster.bytesSent - before) / 5 / 60
        #expect(perNodePerSecond < 200, "\(perNodePerSecond) bytes/node/s of datagram payload")
    }

    /// T13: after a partition long enough for each side to declare the other dead, the healed
    /// cluster has one view within a reconnect period (30 s bound; measured about 7 s), each node
    /// taking a new UID at most once.
    @Test func test_healedPartition_convergesWithinThirtySeconds() {
        for seed in 1...4 {
            var cluster = TestCluster()
            cluster.addNodes(6, seed: UInt64(seed))
            cluster.run(for: .seconds(3))
            cluster.partition([0, 1, 2], [3, 4, 5])
            cluster.run(for: .seconds(40))
            cluster.heal()
            let healedAt = cluster.now
            while !cluster.hasConverged(), cluster.now - healedAt < .seconds(60) { cluster.run(for: .milliseconds(100)) }
            #expect(cluster.now - healedAt <= .seconds(30))
            for slot in cluster.slots {
                let rebirths = slot.events.filter { if case .membership(.reborn) = $0 { return true } else { return false } }.count
                #expect(rebirths <= 1)
            }
            #expect(cluster.violations == [])
        }
    }
}
