import PicoModel
@testable import PicoSim
import Testing

@Suite("Simulated network")
struct NetworkTests {
    @Test func test_send_appliesLatencyJitterLossAndDuplication() {
        var network = SimNetwork(profile: .lan, rng: SplitMix64(seed: 1))
        for _ in 0..<100 {
            guard case .delivered(let times) = network.send(from: 0, to: 1, now: .seconds(1)) else {
                Issue.record("a clean LAN link delivers")
                return
            }
            #expect(times.count == 1)
            #expect(times[0] >= .seconds(1) + .milliseconds(1) && times[0] <= .seconds(1) + .microseconds(1_200))
        }
        network.defaultProfile.loss = 0.1
        var lost = 0
        for _ in 0..<20_000 { if case .dropped("loss") = network.send(from: 0, to: 1, now: .zero) { lost += 1 } }
        #expect(lost > 1_800 && lost < 2_200, "about 10 % lost, got \(lost)")
        network.defaultProfile = .lan
        network.defaultProfile.duplicate = 1
        if case .delivered(let times) = network.send(from: 0, to: 1, now: .zero) { #expect(times.count == 2) }
    }

    @Test func test_partitionsHoldsAndImpairments() {
        var network = SimNetwork(profile: .lan, rng: SplitMix64(seed: 2))
        network.block([SimNetwork.Link(from: 0, to: 1)])
        #expect(network.send(from: 0, to: 1, now: .zero) == .dropped(reason: "partition"))
        #expect(network.send(from: 1, to: 0, now: .zero) != .dropped(reason: "partition"), "one-way")
        #expect(network.streamDelay(from: 0, to: 1) == nil)
        network.healAll()
        network.hold([SimNetwork.Link(from: 2, to: 3)])
        #expect(network.send(from: 2, to: 3, now: .zero) == .held)
        network.release([SimNetwork.Link(from: 2, to: 3)])
        #expect(network.send(from: 2, to: 3, now: .zero) != .held)
        network.impair(4, with: LinkProfile(latency: .milliseconds(50), jitter: .zero, loss: 0, duplicate: 0, reorder: 0))
        #expect(network.profile(from: 4, to: 0).latency == .milliseconds(51))
        #expect(network.profile(from: 0, to: 1).latency == .milliseconds(1))
    }

    @Test func test_partitionShapes() {
        var rng = SplitMix64(seed: 3)
        let pods = Array(0..<5)
        let halves = PartitionShape.halves.links(among: pods, rng: &rng)
        #expect(halves.count == 12)
        #expect(halves.contains(SimNetwork.Link(from: 2, to: 3)) && !halves.contains(SimNetwork.Link(from: 0, to: 2)))
        #expect(PartitionShape.isolate(4).links(among: pods, rng: &rng).count == 8)
        let bridge = PartitionShape.bridge.links(among: pods, rng: &rng)
        #expect(bridge.count == 8)
        #expect(!bridge.contains { $0.from == 2 || $0.to == 2 }, "the bridge talks to both sides")
        let ring = PartitionShape.majoritiesRing.links(among: pods, rng: &rng)
        var views: Set<Set<Int>> = []
        for pod in pods {
            let visible = Set(pods.filter { other in other == pod || !ring.contains(SimNetwork.Link(from: pod, to: other)) })
            #expect(visible.count == 3, "each pod sees a majority")
            views.insert(visible)
        }
        #expect(views.count == 5, "and no two see the same majority")
        let oneWay = PartitionShape.oneWay(sources: [0], targets: [1, 2]).links(among: pods, rng: &rng)
        #expect(oneWay == [SimNetwork.Link(from: 0, to: 1), SimNetwork.Link(from: 0, to: 2)])
        #expect(PartitionShape.sides([[0], [1], [2, 3]]).links(among: pods, rng: &rng).count == 10)
    }
}
