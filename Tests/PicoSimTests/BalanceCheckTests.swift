import Foundation
import PicoModel
@testable import PicoSim
import Testing

/// `tunnels-balanced` and `no-oscillation`, on synthetic histories and on the shipped scale-out
/// with rebalancing turned off.
@Suite("Balance checks")
struct BalanceCheckTests {
    /// A world whose observations hold `samples` (pods 0–2) and whose last disturbance was at 10 s.
    static func world(samples: [(Int64, [Int?])], moves: [(Int64, Int, Int)] = []) -> SimWorld {
        var world = WorldTests.world(pods: 3)
        for index in 0..<3 { world.addAgent(AgentSpec(name: "agent-\(index)", endpoint: "e")) }
        world.observations.samples = 1
        world.observations.lastDisturbance = .seconds(10)
        world.observations.disturbances = [.seconds(10)]
        world.observations.tunnelSamples = samples.map { TunnelSample(time: .seconds($0.0), perPod: $0.1) }
        world.traffic.rebalanceMoves = moves.map { SimTraffic.RebalanceMove(time: .seconds($0.0), pod: $0.1, agent: $0.2) }
        world.run(until: .seconds(200))
        return world
    }

    @Test func test_tunnelsBalanced_failsOnAnImbalanceLastingLongerThanTheBound_overActivePodsOnly() {
        let check = Checker.tunnelsBalanced(within: .seconds(60), ratio: 1.2, moves: nil, floor: 10)
        // Unbalanced from the disturbance at 10 s until 69 s: within the bound.
        #expect(check.check(Self.world(samples: [(10, [200, 0, 100]), (69, [200, 0, 100]), (70, [100, 100, 100])])).passed)
        let late = check.check(Self.world(samples: [(10, [200, 0, 100]), (69, [200, 0, 100]), (71, [130, 80, 90])]))
        #expect(!late.passed)
        #expect(late.violationTime == .seconds(71) && late.subject == "pico-0")
        #expect(late.message == "holds 130 tunnels, 1.30 × the mean of 100.00 over 3 active pods, and some pod has held more than 1.20 × the mean since 10.000s (bound 1m0s)", "\(late)")
        // A later imbalance is judged from when it began: 60 s of it is allowed, 61 s is not.
        let drift: [(Int64, [Int?])] = [(10, [100, 100, 100]), (80, [130, 80, 90]), (140, [130, 80, 90])]
        #expect(check.check(Self.world(samples: drift)).passed)
        #expect(!check.check(Self.world(samples: drift + [(141, [130, 80, 90])])).passed)
        // A pod not running and ready is not counted: 120 of a mean 110 is fine.
        #expect(check.check(Self.world(samples: [(10, [120, nil, 100]), (100, [120, nil, 100])])).passed)
        // Under min_conns the rule moves nothing, and the check asks for nothing more.
        #expect(check.check(Self.world(samples: [(10, [9, 0, 1]), (100, [9, 0, 1])])).passed)
    }

    @Test func test_tunnelsBalanced_boundsTheMoves_byTheFewestThatBalance() {
        // At the disturbance 300/0/0: 200 moves balance the pods (mean 100).
        let samples: [(Int64, [Int?])] = [(10, [300, 0, 0]), (80, [100, 100, 100])]
        let moves = (0..<300).map { (Int64(20), 0, $0 % 3) }
        #expect(Checker.tunnelsBalanced(within: .seconds(60), ratio: 1.2, moves: 1.5, floor: 10).check(Self.world(samples: samples, moves: moves)).passed)
        let result = Checker.tunnelsBalanced(within: .seconds(60), ratio: 1.2, moves: 1.5, floor: 10).check(Self.world(samples: samples, moves: moves + [(21, 0, 0)]))
        #expect(result.message == "asked 301 agents to move after the last disturbance, more than 1.50 × the 200 moves that balance the pods")
    }

    @Test func test_noOscillation_failsOnAMoveLongAfterTheLastDisturbanceOrImbalance_andOnAnAgentMovedTwice() {
        let check = Checker.noOscillation(within: .seconds(60), ratio: 1.2, floor: 10)
        #expect(check.check(Self.world(samples: [], moves: [(20, 0, 0), (40, 1, 1), (70, 0, 2)])).passed)
        let late = check.check(Self.world(samples: [(12, [150, 100, 50]), (25, [110, 100, 90])], moves: [(20, 0, 0), (73, 0, 1)]))
        #expect(late.message == "asked agent-1 to move 1m3s after the last disturbance and 1m1s after a pod last held more than 1.20 × the mean (bound 1m0s)", "\(late)")
        // Still over the threshold at 30 s: a move 60 s later is part of the same round.
        #expect(check.check(Self.world(samples: [(12, [150, 100, 50]), (30, [130, 100, 70])], moves: [(20, 0, 0), (90, 0, 1)])).passed)
        let twice = check.check(Self.world(samples: [], moves: [(20, 0, 0), (40, 1, 0)]))
        #expect(twice.subject == "pico-1")
        #expect(twice.message == "asked agent-0 to move again: rebalancing already moved it at 20.000s, with no disturbance since", "\(twice)")
    }

    @Test func test_theShippedScaleOut_failsTunnelsBalanced_withRebalancingOff() throws {
        let path = ScenarioTests.root.appendingPathComponent("scenarios/rebalance-scale-out.yaml").path
        var scenario = try ScenarioDecoder.decode(try String(contentsOfFile: path, encoding: .utf8), file: "rebalance-scale-out.yaml")
        scenario.rebalance.threshold = 0
        let report = ScenarioRunner.run(scenario)
        let balanced = report.results.first { $0.name == "tunnels-balanced" }
        #expect(balanced?.passed == false, "the old pods keep twice the mean for ever: \(String(describing: balanced))")
        let others = report.results.filter { $0.name != "tunnels-balanced" }
        #expect(others.allSatisfy { $0.passed }, "\(others)")
    }
}
