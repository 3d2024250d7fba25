import PicoModel
@testable import PicoSim
import Testing

/// Random fault schedules over the simulated world: crashes, restarts, graceful shutdowns,
/// partitions and loss for a while, then everything heals and the cluster must agree again.
/// The world checks every node's invariants after every step.
@Suite("Random faults")
struct RandomFaultTests {
    @Test(arguments: 1...40)
    func test_randomFaults_thenHeal_convergesWithoutViolations(seed: Int) {
        var rng = SplitMix64(seed: UInt64(seed) &* 0x9E37)
        let size = 3 + rng.index(below: 5)
        var world = ClusterWorld.joined(pods: size, seed: UInt64(seed))
        for pod in 0..<size { world.deliver(.tunnelOpened(TunnelID(UInt64(1_000 + pod)), endpoint: "svc-\(pod % 3)"), to: pod) }
        for _ in 0..<(4 + rng.index(below: 8)) {
            let pod = rng.index(below: size)
            switch rng.index(below: 6) {
            case 0: world.stopByTimeline(pod, graceful: false)
            case 1:
                // A new process in the pod (new UID and IP), whatever the old one was doing.
                world.crash(pod)
                world.start(pod)
            case 2:
                let cut = 1 + rng.index(below: size - 1)
                ClusterWorld.partition(&world, [Array(0..<cut), Array(cut..<size)])
            case 3: world.network.healAll()
            case 4: world.network.defaultProfile.loss = [0, 0.05, 0.2][rng.index(below: 3)]
            default: world.stopByTimeline(pod, graceful: true)
            }
            world.run(until: world.now + .milliseconds(Int64(500 + rng.index(below: 15_000))))
        }
        // Liveness phase: heal the network and restart every stopped pod (those still draining
        // once they have exited).
        world.network.defaultProfile.loss = 0
        _ = world.recover()
        for pod in 0..<size where !world.pods[pod].hasProcess { world.start(pod) }
        let healedAt = world.now
        func settled() -> Bool {
            world.restartWhenExited.isEmpty && world.pods.allSatisfy { $0.state == .running } && WorldTests.converged(world)
        }
        while !settled(), world.now - healedAt < .seconds(120) { world.run(until: world.now + .milliseconds(250)) }
        #expect(settled(), "no common view \(world.now - healedAt) after healing")
        // Endpoint tables agree with the tunnels that exist, everywhere.
        world.run(until: world.now + .seconds(5))
        let nodes = world.pods.compactMap { $0.state == .running ? $0.node : nil }
        var expected: [String: [NodeUID: UInt32]] = [:]
        for node in nodes {
            for tunnel in node.tunnelView { expected[tunnel.endpoint, default: [:]][node.me.uid, default: 0] += 1 }
        }
        for node in nodes {
            var seen: [String: [NodeUID: UInt32]] = [:]
            for row in node.endpointView {
                for owner in row.owners { seen[row.endpoint, default: [:]][owner.owner] = owner.count }
            }
            #expect(seen == expected, "\(node.me.name)'s endpoint table differs from the tunnels that exist")
        }
        #expect(world.violations.isEmpty, "\(world.violations.prefix(3))")
    }
}
