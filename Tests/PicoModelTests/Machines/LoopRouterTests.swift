@testable import PicoModel
import Testing

@Suite("LoopRouter")
struct LoopRouterTests {
    static let remote = RemoteUpstream(uid: Fixture.info(2).uid, name: "pico-2", proxyAddress: Address(host: "10.0.0.2", port: 8000), count: 1, draining: false)

    @Test func test_prefersTunnelsOnItsOwnLoop_roundRobin_thenOtherLoops() {
        var router = LoopRouter(loop: 0, seed: 1)
        router.apply(.tunnelAdded(TunnelID(1), endpoint: "svc", loop: 0, draining: false))
        router.apply(.tunnelAdded(TunnelID(2), endpoint: "svc", loop: 1, draining: false))
        router.apply(.tunnelAdded(TunnelID(3), endpoint: "svc", loop: 0, draining: false))
        let picks = (0..<4).map { _ in router.decide(endpoint: "svc", forwarded: false) }
        #expect(picks == [.local(TunnelID(1)), .local(TunnelID(3)), .local(TunnelID(1)), .local(TunnelID(3))])
        router.apply(.tunnelRemoved(TunnelID(1)))
        router.apply(.tunnelRemoved(TunnelID(3)))
        #expect(router.decide(endpoint: "svc", forwarded: false) == .local(TunnelID(2)))
        #expect(router.loop(of: TunnelID(2)) == 1)
        #expect(router.loop(of: TunnelID(1)) == nil)
        #expect(router.tunnelCount == 1)
    }

    @Test func test_keepsTheRoutersOrder_acrossDrainingAndRemoteHolders() {
        var router = LoopRouter(loop: 1, seed: 1)
        router.apply(.tunnelAdded(TunnelID(1), endpoint: "svc", loop: 1, draining: false))
        router.apply(.tunnelAdded(TunnelID(2), endpoint: "svc", loop: 0, draining: false))
        router.apply(.tunnelDraining(TunnelID(1)))
        #expect(router.decide(endpoint: "svc", forwarded: false) == .local(TunnelID(2)), "a live tunnel elsewhere beats a draining one here")
        router.apply(.tunnelDraining(TunnelID(2)))
        router.apply(.remoteHolders(endpoint: "svc", [Self.remote]))
        #expect(router.decide(endpoint: "svc", forwarded: false) == .forward(uid: Self.remote.uid, name: "pico-2", proxyAddress: Self.remote.proxyAddress))
        #expect(router.decide(endpoint: "svc", forwarded: true) == .local(TunnelID(1)), "a forwarded request is never forwarded again; draining here first")
        router.apply(.remoteHolders(endpoint: "svc", []))
        #expect(router.decide(endpoint: "svc", forwarded: false) == .local(TunnelID(1)))
        #expect(router.decide(endpoint: "other", forwarded: false) == .reject(.noAvailableUpstreams))
        #expect(router.decide(endpoint: nil, forwarded: false) == .reject(.missingEndpoint))
    }

    @Test func test_avoidsNodesWhoseForwardFailed_thenFallsBackToDrainingTunnelsHere() {
        let other = RemoteUpstream(uid: Fixture.info(3).uid, name: "pico-3", proxyAddress: Address(host: "10.0.0.3", port: 8000), count: 1, draining: false)
        var router = LoopRouter(loop: 0, seed: 7)
        router.apply(.remoteHolders(endpoint: "svc", [Self.remote, other]))
        for _ in 0..<20 {
            #expect(router.decide(endpoint: "svc", forwarded: false, avoiding: [Self.remote.uid]) == .forward(uid: other.uid, name: "pico-3", proxyAddress: other.proxyAddress))
        }
        #expect(router.decide(endpoint: "svc", forwarded: false, avoiding: [Self.remote.uid, other.uid]) == .reject(.noAvailableUpstreams))
        router.apply(.tunnelAdded(TunnelID(1), endpoint: "svc", loop: 0, draining: true))
        #expect(router.decide(endpoint: "svc", forwarded: false, avoiding: [Self.remote.uid, other.uid]) == .local(TunnelID(1)))
        let picks = Set((0..<40).map { _ in router.decide(endpoint: "svc", forwarded: false) })
        #expect(picks.count == 2, "without avoidance both holders are chosen")
    }

    @Test func test_aLoopsRoute_countsInFlight_soTheDrainWaitsForIt() {
        func drained(routedByLoop: Bool) -> Bool {
            var node = ClusterNodeTests.node()
            _ = node.handle(.tunnelOpened(TunnelID(1), endpoint: "svc"), now: .zero)
            _ = node.handle(.shutdownRequested, now: .seconds(1))
            if routedByLoop { _ = node.handle(.routedByLoop(.local(TunnelID(1))), now: .seconds(2)) }
            return node.handle(.timerFired(.drainHoldEnded), now: .seconds(6)).contains(.closeTunnel(TunnelID(1)))
        }
        #expect(drained(routedByLoop: false), "an idle tunnel is released when the hold ends")
        #expect(!drained(routedByLoop: true), "a tunnel with a request a loop routed to it stays")
        var node = ClusterNodeTests.node()
        _ = node.handle(.tunnelOpened(TunnelID(1), endpoint: "svc"), now: .zero)
        _ = node.handle(.shutdownRequested, now: .seconds(1))
        _ = node.handle(.routedByLoop(.local(TunnelID(1))), now: .seconds(2))
        _ = node.handle(.timerFired(.drainHoldEnded), now: .seconds(6))
        #expect(node.handle(.streamFinished(TunnelID(1)), now: .seconds(7)).contains(.closeTunnel(TunnelID(1))))
    }

    @Test func test_countsTimesAMemberWasReachedAgain_andForgetsDeadOnes() {
        var router = LoopRouter(loop: 0, seed: 1)
        let uid = Fixture.info(2).uid
        #expect(router.timesReachedAgain(uid) == 0)
        router.apply(.unreachable(uid, true))
        #expect(router.timesReachedAgain(uid) == 0, "evidence against it is not news of it")
        router.apply(.unreachable(uid, false))
        router.apply(.answeredDirectly(uid))
        #expect(router.timesReachedAgain(uid) == 2)
        router.apply(.heartbeats(uid, false))
        #expect(router.timesReachedAgain(uid) == 0, "no longer a live member")
    }
}
