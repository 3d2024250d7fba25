import PicoModel
@testable import PicoSim
import Testing

/// Graceful shutdown of a pod that holds a tunnel, with real agents and clients in the simulated
/// world: make-before-break hand-over fails no request.
@Suite("Graceful hand-over in the simulated world")
struct DrainHandoverTests {
    /// A slow agent (its replacement opens 8 s after the GoAway, beyond the 5 s minimum drain)
    /// shows that the old tunnel is kept until its replacement is routable.
    @Test(arguments: [false, true])
    func test_drainingNode_handsOverItsTunnel_withoutFailingARequest(slowAgent: Bool) throws {
        var world = ClusterWorld.joined(pods: 3, seed: 1)
        world.addAgent(AgentSpec(name: "agent", endpoint: "svc"))
        world.run(until: world.now + .seconds(3))
        let old = try #require(world.traffic.tunnels(of: 0).first)
        // Sparse enough (the old harness's one request per node every 100 ms) that the old tunnel
        // is often idle: only the hand-over rule keeps it open.
        world.addClient(ClientSpec(name: "load", endpoints: ["svc"], rate: 30))
        world.run(until: world.now + .seconds(1))
        if slowAgent { world.delayNextDial(ofAgent: 0, by: .seconds(8)) }
        let terminatedAt = world.now
        world.terminate(old.pod)
        #expect(world.traffic.agents[0].machine.tunnels.first { $0.id == old.id }?.moving == true, "the agent was told to move")
        world.run(until: world.now + .seconds(30))

        let tally = world.traffic.tally
        #expect(tally.failed == 0 && tally.unknown == 0, "\(world.traffic.history.filter { $0.outcome != .ok }.prefix(3))")
        #expect(tally.ok > 500)
        #expect(world.pods[old.pod].state == .exited(.left))
        // The old tunnel was released by its node before it exited, after the replacement had
        // been registered on another pod (make-before-break).
        let removedAt = try #require(world.events.first { _, pod, event in pod == old.pod && event == .tunnelRemoved(old.id, endpoint: "svc") }?.0)
        let exitedAt = try #require(world.stops.last { $0.pod == old.pod }?.time)
        let replacedAt = try #require(world.events.first { time, pod, event in
            guard time > terminatedAt, pod != old.pod, case .tunnelRegistered(_, "svc") = event else { return false }
            return true
        }?.0)
        #expect(replacedAt < removedAt && removedAt < exitedAt)
        if slowAgent {
            #expect(replacedAt - terminatedAt >= .seconds(8))
            #expect(removedAt - terminatedAt > .seconds(8), "kept beyond the minimum drain until the replacement came")
        }
        let uid = try #require(world.stops.last { $0.pod == old.pod }?.uid)
        let observer = (0..<3).first { $0 != old.pod }!
        #expect(ClusterWorld.status(of: uid, seenBy: observer, in: world) == .left)
        #expect(world.violations.isEmpty)
    }

    @Test func test_drainingNode_withNoOtherNode_releasesTunnelsAndExits() throws {
        var world = WorldTests.world(pods: 1)
        world.start(0)
        world.addAgent(AgentSpec(name: "agent", endpoint: "svc"))
        world.run(until: .seconds(5))
        let tunnel = try #require(world.traffic.tunnels(of: 0).first)
        world.terminate(0)
        world.run(until: world.now + .seconds(10))
        #expect(world.pods[0].state == .exited(.left))
        #expect(world.events.contains { _, _, event in event == .tunnelRemoved(tunnel.id, endpoint: "svc") }, "the node released the tunnel itself")
        #expect(world.violations.isEmpty)
    }
}
