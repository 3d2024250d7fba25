import Foundation
import PicoModel
@testable import PicoSim
import Testing

@Suite("Fuzzing: generator, writer, shrinker")
struct FuzzTests {
    @Test func test_generator_isDeterministic_valid_andCoversEveryEventKind() throws {
        #expect(ScenarioWriter.write(ScenarioGenerator.generate(seed: 7)) == ScenarioWriter.write(ScenarioGenerator.generate(seed: 7)))
        #expect(ScenarioWriter.write(ScenarioGenerator.generate(seed: 7)) != ScenarioWriter.write(ScenarioGenerator.generate(seed: 8)))
        var kinds: Set<String> = []
        var losses: Set<Double> = []
        var rebalancingRuns = 0
        var pikoRuns = 0
        for seed in UInt64(1)...300 {
            let (scenario, _) = try Fuzzer.scenario(seed: seed, nodes: 3...9)
            #expect((3...9).contains(scenario.pods))
            losses.insert(scenario.network.loss)
            if scenario.network.loss <= 0.1, !scenario.timeline.contains(where: { if case .netem = $0.action { true } else { false } })
                && !scenario.timeline.contains(where: { if case .pause = $0.action { true } else if case .partition = $0.action { true } else if case .hold = $0.action { true } else { false } }) {
                #expect(scenario.checks.contains { $0.name == "no-false-deaths" }, "up to 10 % loss kills nobody: seed \(seed)")
            }
            let rebalancing = scenario.checks.contains { $0.name == "tunnels-balanced" }
            #expect(scenario.duration == (rebalancing ? ScenarioGenerator.rebalancingDuration : ScenarioGenerator.duration))
            #expect(!rebalancing || scenario.agents.count >= scenario.pods * 12, "a rebalancing run has enough agents for rebalancing to act")
            if rebalancing { rebalancingRuns += 1 }
            let piko = scenario.agents.filter { $0.kind == .piko }
            if !piko.isEmpty {
                pikoRuns += 1
                #expect(rebalancing, "Piko's agents only in rebalancing runs: seed \(seed)")
                #expect(piko.count < scenario.agents.count && piko.allSatisfy { $0.name.hasPrefix("piko-") })
            }
            #expect(scenario.checks.contains { $0.name == "no-oscillation" })
            guard let last = scenario.timeline.last else { Issue.record("seed \(seed) has no timeline"); continue }
            #expect(last.action == .recover, "the liveness phase starts after every fault")
            for event in scenario.timeline {
                let key = ScenarioWriter.action(event.action).prefix { $0 != ":" }
                kinds.insert(key == "partition" ? ScenarioWriter.action(event.action) : String(key))
            }
        }
        #expect(losses == [0, 0.01, 0.02, 0.05, 0.1], "lossy networks are drawn (generator version 2)")
        #expect((70...130).contains(rebalancingRuns), "one run in three rebalances (generator version 4): \(rebalancingRuns)")
        #expect(pikoRuns * 3 >= rebalancingRuns && pikoRuns * 3 <= rebalancingRuns * 2, "half the rebalancing runs have Piko's agents (version 5): \(pikoRuns) of \(rebalancingRuns)")
        for kind in ["crash", "restart", "terminate", "pause", "hold", "netem", "rollout", "scale", "recover"] {
            #expect(kinds.contains(kind), "no generated \(kind)")
        }
        for shape in ["halves", "random-halves", "isolate", "bridge", "majorities-ring", "one-way"] {
            #expect(kinds.contains { $0.contains("shape: \(shape)") }, "no generated \(shape) partition")
        }
    }

    @Test(arguments: ScenarioTests.shipped)
    func test_writer_roundTripsEveryShippedScenario(name: String) throws {
        let path = ScenarioTests.root.appendingPathComponent("scenarios").appendingPathComponent(name).path
        let original = try ScenarioDecoder.decode(try String(contentsOfFile: path, encoding: .utf8), file: name)
        let text = ScenarioWriter.write(original)
        let again = try ScenarioDecoder.decode(text, file: name)
        #expect(ScenarioWriter.write(again) == text)
        #expect(again.timeline.map(\.action) == original.timeline.map(\.action))
        #expect(again.checks == original.checks && again.expect == original.expect && again.agents == original.agents)
    }

    @Test func test_writer_quotesWhatYAMLWouldMisread() throws {
        for text in ["plain", "true", "null", "12", "-x", "a b", "quote\"d", "back\\slash", "new\nline", ""] {
            let node = try YAMLReader.parse("key: \(ScenarioWriter.quote(text))\n", file: "q.yaml")
            #expect(node["key"]?.scalarText == text, "\(text)")
        }
    }

    @Test func test_shrinker_keepsOnlyWhatTheFailureNeeds() throws {
        // A crash makes "converged within 3s" fail (detection takes about 5 s); the netem, pause and
        // hold around it are noise.
        let text = """
            apiVersion: pico-sim.dev/v1alpha1
            kind: Scenario
            metadata: {name: noisy}
            spec:
              seed: 5
              duration: 30s
              topology:
                pods: 4
                startup: parallel
                agents: [{endpoint: e0}]
                clients: [{rate: 5, endpoints: [e0]}]
              timeline:
                - {at: 5s, netem: {pods: [1], latency: 20ms, loss: 0.05}, for: 4s}
                - {at: 6s, pause: {pod: 2}, for: 500ms}
                - {at: 9s, hold: {from: [0], to: [1]}, for: 1s}
                - {at: 12s, crash: {pod: 3}}
              checks: [{name: membership-converged, within: 2s}]

            """
        let scenario = try ScenarioDecoder.decode(text, file: "noisy.yaml")
        let report = ScenarioRunner.run(scenario)
        let failure = try #require(report.firstFailure)
        #expect(failure.name == "membership-converged")
        var shrinker = Shrinker(check: failure.name, message: failure.message, maxRuns: 150)
        let result = shrinker.shrink(scenario, text: text, report: report)
        #expect(result.shrunkSize.isSmaller(than: result.originalSize))
        #expect(result.scenario.timeline.count == 1 && result.scenario.timeline.first?.action.isCrash == true, "\(result.text)")
        #expect(result.scenario.duration < scenario.duration, "the run is shortened")
        #expect(result.runs <= 150)
        let replay = ScenarioRunner.run(try ScenarioDecoder.decode(result.text, file: "shrunk.yaml"))
        #expect(replay.traceHash == result.report.traceHash, "the written file replays the shrunk run exactly")
        #expect(replay.results.contains { $0.name == "membership-converged" && !$0.passed })
    }

    @Test func test_fuzzSeeds_haveTheSameTraceHashesInSeparateProcesses() throws {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("pico-fuzz-\(UInt64.random(in: 0...UInt64.max))")
        defer { try? FileManager.default.removeItem(at: out) }
        func hashes(flip: Bool) throws -> (lines: [String], status: Int32) {
            let arguments = ["fuzz", "--seeds", "4", "--from", "5000", "--hashes", "--no-shrink", "--check-determinism", "--out", out.path]
            let (data, status) = try PicoSimBinary.run(arguments, deterministicHashing: flip ? PicoSimBinary.flippedHashing : nil)
            return (String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init), status)
        }
        let first = try hashes(flip: false)
        let second = try hashes(flip: true)
        let hashLines = first.lines.filter { $0.hasPrefix("seed ") && $0.contains(" trace ") }
        #expect(hashLines.count == 4)
        #expect(hashLines == second.lines.filter { $0.hasPrefix("seed ") && $0.contains(" trace ") })
        #expect(!first.lines.contains { $0.contains("FAIL determinism") }, "\(first.lines)")
        #expect(first.status == 0 || first.status == 1)
    }

    @Test func test_checkpoints_areStable_andCoverEveryEvent() throws {
        let (scenario, _) = try Fuzzer.scenario(seed: 11, nodes: 3...4)
        let first = Fuzzer.checkpoints(scenario, every: 100)
        #expect(first.hashes == Fuzzer.checkpoints(scenario, every: 100).hashes)
        #expect(first.hashes.count == first.events.count / 100 + 1)
        #expect(first.hashes.last == Fuzzer.checkpoints(scenario, every: 7).hashes.last)
    }

    @Test func test_determinismCheck_namesTheFirstDivergingEvent() throws {
        let (scenario, _) = try Fuzzer.scenario(seed: 11, nodes: 3...4)
        let local = Fuzzer.checkpoints(scenario, every: 10)
        #expect(local.events.count > 40)
        #expect(Fuzzer.firstDivergence(local: local, otherHashes: local.hashes, every: 10) { Issue.record("events fetched for equal runs"); return nil } == nil)
        // Another process that differs from event 25 on: checkpoints 0 and 1 agree, 2 differs.
        var events = local.events
        events[25] = "0 pico-0 something else"
        var hashes = local.hashes
        for index in 2..<hashes.count { hashes[index] = "different-\(index)" }
        let report = Fuzzer.firstDivergence(local: local, otherHashes: hashes, every: 10) { events }
        #expect(report == "runs diverge at event 25: this process '\(local.events[25])', other '0 pico-0 something else'")
        // A run that stops early diverges where its events end.
        let short = Array(local.events.prefix(12))
        let ended = Fuzzer.firstDivergence(local: local, otherHashes: [local.hashes[0], "x"], every: 10) { short }
        #expect(ended == "runs diverge at event 12: this process '\(local.events[12])', other '(no event)'")
        // A genuinely different run (another seed): the named event really differs.
        var other = scenario
        other.seed += 1
        let theirs = Fuzzer.checkpoints(other, every: 10)
        let real = try #require(Fuzzer.firstDivergence(local: local, otherHashes: theirs.hashes, every: 10) { theirs.events })
        let index = try #require(Int(real.split(separator: " ")[4].dropLast()))
        #expect(local.events[..<index] == theirs.events[..<index])
        #expect(local.events[index] != theirs.events[index])
        #expect(Fuzzer.firstDivergence(local: local, otherHashes: ["?"], every: 10) { nil } == "hashes differ from checkpoint 0")
    }
}

extension Scenario.Action {
    var isCrash: Bool {
        if case .crash = self { return true }
        return false
    }
}

@Suite("HTML report")
struct HTMLReportTests {
    @Test func test_page_hasALanePerPod_faultBands_requestBars_andVerdicts() throws {
        // A pod cut off from the others: requests for endpoints it cannot reach fail there (bars of
        // both kinds), and the others declare it dead.
        let path = ScenarioTests.root.appendingPathComponent("scenarios/partition-isolated.yaml").path
        let scenario = try ScenarioDecoder.decode(try String(contentsOfFile: path, encoding: .utf8), file: "partition-isolated.yaml")
        let (report, world) = ScenarioRunner.runWithWorld(scenario)
        let page = HTMLReport.render(scenario, world: world, report: report)
        for pod in 0..<scenario.pods { #expect(page.contains(#"class="lane-name" x="4""#) && page.contains(">pico-\(pod)</text>")) }
        #expect(page.contains(#"class="lane ready""#))
        #expect(page.contains(#"<rect class="fault""#), "the partition is a shaded band")
        #expect(page.contains(#"class="req ok""#) && page.contains(#"class="req failed""#))
        #expect(page.contains(#"<circle class="dead""#), "the cut-off side is declared dead in the others' views")
        for result in report.results { #expect(page.contains("<td>\(result.name)</td>")) }
        #expect(!page.contains("<script"), "no scripts")
        #expect(page.hasPrefix("<!DOCTYPE html>"))
        #expect(page.contains(#"<polyline class="tunnels""#), "tunnels per pod over time")
        #expect(page.contains("partition isolate(2): 4 cut: pico-0 ↔ pico-2, pico-1 ↔ pico-2, pico-2 ↔ pico-3, pico-2 ↔ pico-4"), "the timeline names the links a partition cut")
    }

    @Test func test_labels_atNearbyTimes_takeSeparateRows_andNoneRunsPastTheRightEdge() {
        let marks: [(x: Double, text: String)] = [(100, "crash"), (104, "restart"), (108, "partition"), (300, "heal"), (985, "recover")]
        let placed = HTMLReport.place(marks, right: 998)
        #expect(placed.map(\.row) == [0, 1, 2, 0, 0])
        var spans: [(Int, ClosedRange<Double>)] = []
        for (mark, label) in zip(marks, placed) {
            let width = Double(mark.text.count) * HTMLReport.smallCharacter
            let span = label.anchorEnd ? (label.x - width)...label.x : label.x...(label.x + width)
            #expect(span.upperBound <= 998, "\(mark.text) runs past the edge")
            #expect(!spans.contains { $0.0 == label.row && $0.1.overlaps(span) }, "\(mark.text) overlaps a label in its row")
            spans.append((label.row, span))
        }
        #expect(placed[4].anchorEnd && !placed[0].anchorEnd, "the last label ends at its mark")
    }
}
