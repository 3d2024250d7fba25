import PicoModel

/// One fuzz case: a generated scenario, the exact file text it was run from, and its report.
public struct FuzzCase: Sendable {
    /// The seed it was generated from.
    public var seed: UInt64
    /// The scenario as decoded from `text` (what actually ran).
    public var scenario: Scenario
    /// The scenario file; `pico-sim run` on it replays this run exactly.
    public var text: String
    /// The run's report.
    public var report: ScenarioReport

    /// The first failed check, if any.
    public var failure: CheckResult? { self.report.firstFailure }
}

/// Generates and runs fuzz cases. Pure: no clock, no threads; callers parallelise across seeds.
public enum Fuzzer {
    /// Generates the scenario of `seed`, writes it as a file and decodes it back, so what runs is
    /// exactly what a file holds. A decoding error is a generator bug, reported as such.
    public static func scenario(seed: UInt64, nodes: ClosedRange<Int>, nemesis: Bool = false) throws(YAMLError) -> (Scenario, String) {
        let generated = ScenarioGenerator.generate(seed: seed, nodes: nodes, nemesis: nemesis)
        let text = ScenarioWriter.write(generated)
        return (try ScenarioDecoder.decode(text, file: generated.file), text)
    }

    /// Runs the case of `seed` (with a nemesis attack in its fault phase when `nemesis`).
    public static func run(seed: UInt64, nodes: ClosedRange<Int>, nemesis: Bool = false) throws(YAMLError) -> FuzzCase {
        let (scenario, text) = try self.scenario(seed: seed, nodes: nodes, nemesis: nemesis)
        return FuzzCase(seed: seed, scenario: scenario, text: text, report: ScenarioRunner.run(scenario))
    }

    /// Rolling trace hashes of a run: the hash after every `every` node events (and one at the
    /// end). Two processes that agree on these agree on the run; the first differing checkpoint
    /// bounds where they diverged.
    public static func checkpoints(_ scenario: Scenario, every: Int) -> (hashes: [String], events: [String]) {
        let (world, _) = ScenarioRunner.runWorld(scenario)
        var hasher = TraceHasher()
        var hashes: [String] = []
        var events: [String] = []
        for (index, (time, pod, event)) in world.events.enumerated() {
            hasher.combine(time, pod: pod, event)
            events.append("\(time.nanoseconds) \(world.pods[pod].name) \(TraceRecord(event).text)")
            if (index + 1) % max(1, every) == 0 { hashes.append(hasher.hex) }
        }
        hashes.append(hasher.hex)
        return (hashes, events)
    }

    /// Compares this run's checkpoints with another process's: nil when every rolling hash agrees;
    /// otherwise finds the first differing checkpoint, fetches the other run's events (only then,
    /// they are large) and names the first event that differs within that stretch.
    public static func firstDivergence(
        local: (hashes: [String], events: [String]),
        otherHashes: [String],
        every: Int,
        otherEvents: () -> [String]?
    ) -> String? {
        guard otherHashes != local.hashes else { return nil }
        let common = min(otherHashes.count, local.hashes.count)
        let stretch = (0..<common).first { otherHashes[$0] != local.hashes[$0] } ?? common
        guard let events = otherEvents() else { return "hashes differ from checkpoint \(stretch)" }
        let first = stretch * max(1, every)
        let index = (first..<max(events.count, local.events.count, first)).first { index in
            index >= events.count || index >= local.events.count || events[index] != local.events[index]
        } ?? first
        let here = index < local.events.count ? local.events[index] : "(no event)"
        let there = index < events.count ? events[index] : "(no event)"
        return "runs diverge at event \(index): this process '\(here)', other '\(there)'"
    }
}
