import PicoModel
@testable import PicoSim
import Testing

/// Issue 21 item 5: right after an agent connects to one pod, requests reaching the other pods
/// wait (`proxy.upstream_wait`) for gossip to bring the new holder, instead of getting 502.
@Suite("Requests just after an agent connects")
struct AgentArrivalTests {
    /// Five pods, clients already sending for an endpoint nobody serves yet; then its agent
    /// connects. Every request issued from that moment on is served (with the 1 s holder wait),
    /// and without the wait the pods that had not heard yet answer some of them 502.
    @Test(arguments: [true, false])
    func test_requestsSentJustAfterAnAgentConnects_areServed(waiting: Bool) {
        var settings = ClusterWorld.settings()
        if !waiting { settings.exchange.holderWait = .zero }
        var world = ClusterWorld.joined(pods: 5, seed: 7, settings: settings)
        world.addClient(ClientSpec(name: "load", endpoints: ["late"], rate: 400))
        world.run(until: world.now + .seconds(2))
        let connectedAt = world.now
        #expect(world.traffic.history.contains { $0.outcome == .failed("502 no available upstreams") }, "nobody served it before")
        world.addAgent(AgentSpec(name: "agent", endpoint: "late"))
        world.run(until: world.now + .seconds(5))

        let after = world.traffic.history.filter { $0.issuedAt >= connectedAt && $0.outcome != nil }
        let failed = after.filter { $0.outcome != .ok }
        let forwarded = after.filter { $0.outcome == .ok && $0.hops == 1 }
        #expect(after.count > 1_500)
        #expect(forwarded.count > 1_000, "most entries are pods without the tunnel")
        if waiting {
            #expect(failed.isEmpty, "\(failed.prefix(3))")
        } else {
            #expect(!failed.isEmpty && failed.allSatisfy { $0.outcome == .failed("502 no available upstreams") },
                    "without the wait, pods that had not heard yet answer 502: \(failed.prefix(3))")
        }
        #expect(world.violations.isEmpty)
    }
}
