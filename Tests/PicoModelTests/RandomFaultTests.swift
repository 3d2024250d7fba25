@testable import PicoModel
import Testing

/// Random fault schedules over the harness: crashes, restarts, graceful shutdowns, partitions and
/// loss for a while, then everything heals and the cluster must agree again. Invariants are
/// checked after every step by the harness.
@Suite("Random faults")
struct RandomFaultTests {
    @Test(arguments: 1...40)
    func test_randomFaults_thenHeal_convergesWithoutViolations(seed: Int) {
        var rng = SplitMix64(seed: UInt64(seed) &* 0x9E37)
        var cluster = TestCluster()
        cluster.networkRNG = rng.split()
        let size = 3 + rng.index(below: 5)
        cluster.addNodes(size, seed: UInt64(seed))
        cluster.run(for: .seconds(2))
        for node in 0..<size { cluster.openTunnel(endpoint: "svc-\(node % 3)", on: node) }
        var restartSeed: UInt64 = 1_000
        for _ in 0..<(4 + rng.index(below: 8)) {
            let node = rng.index(below: size)
            switch rng.index(below: 6) {
            case 0: cluster.crash(node)
            case 1:
                restartSeed += 1
                cluster.restart(node, seed: restartSeed)
            case 2:
                let cut = 1 + rng.index(below: size - 1)
                cluster.partition(Array(0..<cut), Array(cut..<size))
            case 3: cluster.heal()
            case 4: cluster.lossRate = [0, 0.05, 0.2][rng.index(below: 3)]
            default: cluster.deliver(.shutdownRequested, to: node)
            }
            cluster.run(for: .milliseconds(Int64(500 + rng.index(below: 15_000))))
        }
        // Liveness phase: heal the network, restart every crashed or exited node.
        cluster.heal()
        cluster.lossRate = 0
        for node in 0..<size where !cluster.slots[node].isRunning || cluster.slots[node].exited != nil {
            restartSeed += 1
            cluster.restart(node, seed: restartSeed)
        }
        let healedAt = cluster.now
        while !cluster.hasConverged(), cluster.now - healedAt < .seconds(120) { cluster.run(for: .milliseconds(250)) }
        #expect(cluster.hasConverged() == true, "no common view \(cluster.now - healedAt) after healing")
        // Endpoint tables agree with the tunnels that exist, everywhere.
        cluster.run(for: .seconds(5))
        var expected: [String: [NodeUID: UInt32]] = [:]
        for node in cluster.runningIndexes {
            for tunnel in cluster.slots[node].node.tunnelView {
                expected[tunnel.endpoint, default: [:]][cluster.slots[node].node.me.uid, default: 0] += 1
            }
        }
        for node in cluster.runningIndexes {
            var seen: [String: [NodeUID: UInt32]] = [:]
            for row in cluster.slots[node].node.endpointView {
                for owner in row.owners { seen[row.endpoint, default: [:]][owner.owner] = owner.count }
            }
            #expect(seen == expected, "node \(node)'s endpoint table differs from the tunnels that exist")
        }
        #expect(cluster.violations == [])
    }
}
