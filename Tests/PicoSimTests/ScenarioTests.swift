import Foundation
import PicoModel
@testable import PicoSim
import Testing

@Suite("Scenario files")
struct ScenarioTests {
    static var root: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    /// Every file under `scenarios/` and `scenarios/regressions/`, relative to `scenarios/`.
    static var shipped: [String] {
        var names: [String] = []
        for folder in ["", "regressions/"] {
            let directory = Self.root.appendingPathComponent("scenarios/" + folder)
            let files = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
            names += files.filter { $0.hasSuffix(".yaml") }.map { folder + $0 }
        }
        return names.sorted()
    }

    @Test(arguments: ScenarioTests.shipped)
    func test_shippedScenario_showsWhatItExpects(name: String) throws {
        let path = Self.root.appendingPathComponent("scenarios").appendingPathComponent(name).path
        let scenario = try ScenarioDecoder.decode(try String(contentsOfFile: path, encoding: .utf8), file: name)
        // The same file in another process, with hashed collections seeded the other way, runs
        // beside this one (the two take as long: a large scenario's test takes half the time).
        let other = try PicoSimBinary.start([path, "--json"], deterministicHashing: PicoSimBinary.flippedHashing)
        let report = ScenarioRunner.run(scenario)
        if let (check, reason, _) = scenario.expect.expectedFailure {
            #expect(name.hasPrefix("regressions/"), "only regression files may expect a failure")
            #expect(report.asExpected, "\(name): \(check) no longer fails; if '\(reason)' is fixed, set expect: pass")
        } else {
            for result in report.results { #expect(result.passed, "\(name): \(result)") }
        }
        #expect(!report.results.isEmpty, "a shipped scenario checks something")
        let document = try JSONSerialization.jsonObject(with: try other.finish().output) as? [String: Any]
        #expect(document?["traceHash"] as? String == report.traceHash, "\(name): trace hash differs in a separate process")
    }

    /// Runs `pico-sim --json` on `path` in a child process, with `SWIFT_DETERMINISTIC_HASHING` set
    /// or unset, and returns its trace hash.
    static func traceHashInChildProcess(_ path: String, deterministicHashing: Bool) throws -> String? {
        let data = try PicoSimBinary.run([path, "--json"], deterministicHashing: deterministicHashing).output
        let document = try JSONSerialization.jsonObject(with: data) as? [String: Any]
        return document?["traceHash"] as? String
    }

    @Test func test_sameSeed_sameTraceHash() throws {
        let path = Self.root.appendingPathComponent("scenarios/rolling-restart.yaml").path
        let text = try String(contentsOfFile: path, encoding: .utf8)
        var scenario = try ScenarioDecoder.decode(text, file: "rolling-restart.yaml")
        scenario.duration = .seconds(40)
        scenario.timeline = []
        let first = ScenarioRunner.run(scenario).traceHash
        #expect(first == ScenarioRunner.run(scenario).traceHash)
        scenario.seed += 1
        #expect(first != ScenarioRunner.run(scenario).traceHash)
    }

    static let minimal = """
        apiVersion: pico-sim.dev/v1alpha1
        kind: Scenario
        metadata: {name: t}
        spec:
          duration: 1m
          topology: {pods: 3}

        """

    static func error(_ text: String) -> String {
        do {
            _ = try ScenarioDecoder.decode(text, file: "bad.yaml")
            return "no error"
        } catch {
            return error.description
        }
    }

    @Test func test_badFiles_nameTheKeyAndLine() {
        #expect(Self.error(Self.minimal) == "no error")
        #expect(Self.error(Self.minimal.replacingOccurrences(of: "pods: 3", with: "pods: 3, podz: 1")) == "bad.yaml:6:23: unknown key 'spec.topology.podz'")
        #expect(Self.error(Self.minimal + "  timeline:\n    - at: 10s\n      crash: {pod: 7}\n") == "bad.yaml:9:20: spec.timeline[0].crash.pod: must be in 0...2, got 7")
        #expect(Self.error(Self.minimal + "  timeline:\n    - at: 2m\n      heal: {}\n").contains("is after the end of the run"))
        #expect(Self.error(Self.minimal + "  timeline:\n    - at: 1s\n      crash: {pod: 1}\n      for: 5s\n").contains("only partition, pause, hold, netem and nemesis"))
        #expect(Self.error(Self.minimal + "  timeline:\n    - at: 1s\n      crash: {pod: 1}\n      heal: {}\n").contains("needs exactly one of"))
        #expect(Self.error(Self.minimal + "  checks: [no-such-check]\n").contains("unknown check 'no-such-check'"))
        #expect(Self.error(Self.minimal + "  checks: [{name: membership-converged, within: 10s}, {name: agents-rehomed, within: 1m}]\n") == "no error")
        #expect(Self.error(Self.minimal + "  checks: [{name: no-failed-requests, within: 10s}]\n").contains("unknown key 'spec.checks[0].within'"))
        #expect(Self.error(Self.minimal.replacingOccurrences(of: "v1alpha1", with: "v2")).contains("apiVersion: must be"))
        let checked = Self.minimal + "  checks: [invariants-hold]\n"
        #expect(Self.error(checked + "  expect: {fail: invariants-hold, limitation: crashes lose requests}\n") == "no error")
        #expect(Self.error(checked + "  expect: {fail: invariants-hold, bug: x, limitation: y}\n").contains("needs exactly one of bug (an open bug) or limitation"))
        #expect(Self.error(checked + "  expect: {fail: invariants-hold}\n").contains("needs exactly one of bug"))
        #expect(Self.error(Self.minimal + "  timeline:\n    - at: 1s\n      partition: {shape: square}\n").contains("spec.timeline[0].partition.shape: must be halves"))
        // Pods are checked against the replicas when the action happens, not where it is listed
        // (a fuzzed file listed a scale before a pause that happens earlier; written back in time
        // order, it no longer decoded).
        let scaledLater = Self.minimal + "  timeline:\n    - {at: 8s, scale: {replicas: 4}}\n    - {at: 7s, pause: {pods: [3]}, for: 1s}\n"
        #expect(Self.error(scaledLater) == "bad.yaml:9:31: spec.timeline[1].pause.pods[0]: must be a pod ordinal from 0 to 2")
        let scaledFirst = Self.minimal + "  timeline:\n    - {at: 8s, pause: {pods: [3]}, for: 1s}\n    - {at: 7s, scale: {replicas: 4}}\n"
        #expect(Self.error(scaledFirst) == "no error")
        if let scenario = try? ScenarioDecoder.decode(scaledFirst, file: "ok.yaml") {
            #expect((try? ScenarioDecoder.decode(ScenarioWriter.write(scenario), file: "written.yaml")) != nil, "written back, it decodes")
        }
    }

    @Test func test_crashOfAPodARolloutIsReplacing_isNotRestartedByRecover() throws {
        // seed 11883: `recover` restarted the crashed old pod beside its replacement.
        let text = Self.minimal + """
              timeline:
                - {at: 10s, rollout: {maxUnavailable: 1, maxSurge: 1}}
                - {at: 10.55s, crash: {pods: [2]}}
                - {at: 10.56s, recover: {}}

            """
        let scenario = try ScenarioDecoder.decode(text, file: "t.yaml")
        let (world, _) = ScenarioRunner.runWorld(scenario)
        #expect(world.surgeRollout?.isComplete == true)
        #expect(world.pods.filter(\.hasProcess).count == 3, "three replicas, no extra process on the crashed ordinal")
        #expect(world.stops.filter(\.crashed).count == 1, "the timeline's crash only: nothing SIGKILLed")
    }

    @Test func test_commandLine_exitCodes() throws {
        func run(_ arguments: [String]) throws -> Int32 { try PicoSimBinary.run(arguments).status }
        let bad = FileManager.default.temporaryDirectory.appendingPathComponent("pico-bad-\(UInt64.random(in: 0...UInt64.max)).yaml")
        try Data("apiVersion: nope\n".utf8).write(to: bad)
        defer { try? FileManager.default.removeItem(at: bad) }
        #expect(try run([bad.path]) == 2)
        #expect(try run(["run"]) == 2)
        #expect(try run(["--frobnicate", "x.yaml"]) == 2)
        #expect(try run(["/nonexistent.yaml"]) == 2)
    }

    @Test func test_traceHash_isTheSameInSeparateProcesses_withAndWithoutDeterministicHashing() throws {
        let path = Self.root.appendingPathComponent("scenarios/rolling-restart.yaml").path
        let here = ScenarioRunner.run(try ScenarioDecoder.decode(try String(contentsOfFile: path, encoding: .utf8), file: path)).traceHash
        #expect(try Self.traceHashInChildProcess(path, deterministicHashing: false) == here)
        #expect(try Self.traceHashInChildProcess(path, deterministicHashing: true) == here)
    }

    @Test func test_jsonOutput_andTraceFile() throws {
        let trace = FileManager.default.temporaryDirectory.appendingPathComponent("pico-trace-\(UInt64.random(in: 0...UInt64.max)).jsonl")
        defer { try? FileManager.default.removeItem(at: trace) }
        let (data, status) = try PicoSimBinary.run([Self.root.appendingPathComponent("scenarios/cold-start.yaml").path, "--json", "--trace", trace.path])
        #expect(status == 0)
        let document = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(document["passed"] as? Bool == true)
        #expect((document["checks"] as? [[String: Any]])?.count == 5)
        #expect((document["traceHash"] as? String)?.count == 16)
        let lines = try String(contentsOf: trace, encoding: .utf8).split(separator: "\n")
        #expect(lines.count > 10)
        for line in lines.prefix(5) {
            let event = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            #expect(event?["pod"] is String && event?["event"] is String && event?["fields"] is [String: String])
        }
    }
}
