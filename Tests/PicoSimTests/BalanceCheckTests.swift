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

    @Test func test_tunnelsBalanced_judgesSamplesFromTheBoundOn_overActivePodsOnly() {
        let check = Checker.tunnelsBalanced(within: .seconds(60), ratio: 1.2, moves: nil, floor: 10)
        // At 69 s, before the bound (10 s + 60 s), 200/0/100 is allowed; from 70 s on, it is not.
        #expect(check.check(Self.world(samples: [(69, [200, 0, 100])])).passed)
        let late = check.check(Self.world(samples: [(69, [200, 0, 100]), (70, [130, 80, 90])]))
        #expect(!late.passed)
        #expect(late.violationTime == .seconds(70) && late.subject == "pico-0")
        #expect(late.message?.hasPrefix("holds 130 tunnels, 1.30 × the mean of 100.00 over 3 active pods") == true, "\(late)")
        // A pod not running and ready is not counted: 120 of a mean 110 is fine.
        #expect(check.check(Self.world(samples: [(70, [120, nil, 100])])).passed)
        // Under min_conns the rule moves nothing, and the check asks for nothing more.
        #expect(check.check(Self.world(samples: [(70, [9, 0, 1])])).passed)
    }

    @Test func test_tunnelsBalanced_boundsTheMoves_byTheFewestThatBalance() {
        // At the disturbance 300/0/0: 200 moves balance the pods (mean 100).
        let samples: [(Int64, [Int?])] = [(10, [300, 0, 0]), (80, [100, 100, 100])]
        let moves = (0..<300).map { (Int64(20), 0, $0 % 3) }
        #expect(Checker.tunnelsBalanced(within: .seconds(60), ratio: 1.2, moves: 1.5, floor: 10).check(Self.world(samples: samples, moves: moves)).passed)
        let result = Checker.tunnelsBalanced(within: .seconds(60), ratio: 1.2, moves: 1.5, floor: 10).check(Self.world(samples: samples, moves: moves + [(21, 0, 0)]))
        #expect(result.message == "asked 301 agents to move after the last disturbance, more than 1.50 × the 200 moves that balance the pods")
    }

    @Test func test_noOscillation_failsOnALateMove_andOnAnAgentMovedTwiceWithoutADisturbanceBetween() {
        let check = Checker.noOscillation(within: .seconds(90))
        #expect(check.check(Self.world(samples: [], moves: [(20, 0, 0), (40, 1, 1), (100, 0, 2)])).passed)
        let late = check.check(Self.world(samples: [], moves: [(20, 0, 0), (101, 0, 1)]))
        #expect(late.message == "asked agent-1 to move 1m31s after the last disturbance (bound 1m30s)", "\(late)")
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
