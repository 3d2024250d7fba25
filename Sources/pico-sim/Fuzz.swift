import Foundation
import PicoModel
import PicoSim
import Synchronization

/// The state the fuzz workers share: the next seed to take, the tallies, the output lines.
final class FuzzShared: Sendable {
    struct State {
        var next: UInt64
        var done = 0
        var failures: [(seed: UInt64, line: String)] = []
        var hashes: [(seed: UInt64, line: String)] = []
        var lastProgress = Date()
    }

    let state: Mutex<State>
    let started = Date()

    init(from: UInt64) {
        self.state = Mutex(State(next: from))
    }
}

/// Runs `pico-sim fuzz`: seeds in `jobs` threads, each seed one single-threaded run.
func runFuzz(_ command: FuzzCommand) -> Int32 {
    let shared = FuzzShared(from: command.from)
    let last: UInt64? = command.seeds.map { command.from + UInt64($0) }
    let deadline = command.time.map { Date().addingTimeInterval($0.secondsDouble) }
    let group = DispatchGroup()
    for _ in 0..<command.jobs {
        group.enter()
        Thread.detachNewThread {
            defer { group.leave() }
            while true {
                if let deadline, Date() >= deadline { return }
                let seed: UInt64? = shared.state.withLock { state in
                    if let last, state.next >= last { return nil }
                    defer { state.next += 1 }
                    return state.next
                }
                guard let seed else { return }
                let (failure, hash) = fuzzOne(seed: seed, command: command)
                shared.state.withLock { state in
                    state.done += 1
                    if let failure { state.failures.append((seed, failure)) }
                    if let hash { state.hashes.append((seed, hash)) }
                    if Date().timeIntervalSince(state.lastProgress) >= 1 {
                        state.lastProgress = Date()
                        let rate = Double(state.done) / max(Date().timeIntervalSince(shared.started), 1e-6)
                        FileHandle.standardError.write(Data(String(format: "fuzz: %d seeds, %d failures, %.1f seeds/s\n", state.done, state.failures.count, rate).utf8))
                    }
                }
            }
        }
    }
    group.wait()
    let wall = Date().timeIntervalSince(shared.started)
    let final = shared.state.withLock { $0 }
    for (_, line) in final.hashes.sorted(by: { $0.seed < $1.seed }) { print(line) }
    for (_, line) in final.failures.sorted(by: { $0.seed < $1.seed }) { print(line) }
    let seeds = final.failures.map(\.seed).sorted().map(String.init).joined(separator: ", ")
    print(String(
        format: "fuzz: %d seeds (from %llu, nodes %d-%d) in %.1fs wall, %.1f seeds/s; %d failed%@",
        final.done, command.from, command.nodes.lowerBound, command.nodes.upperBound, wall, Double(final.done) / max(wall, 1e-6),
        final.failures.count, final.failures.isEmpty ? "" : ": seeds \(seeds)"))
    return final.failures.isEmpty ? 0 : 1
}

/// Runs one seed; returns a failure line (after shrinking and writing the regression file) and,
/// when asked, a hash line.
func fuzzOne(seed: UInt64, command: FuzzCommand) -> (failure: String?, hash: String?) {
    let fuzzCase: FuzzCase
    do {
        fuzzCase = try Fuzzer.run(seed: seed, nodes: command.nodes, nemesis: command.nemesis)
    } catch {
        return ("seed \(seed): FAIL generator produced an invalid scenario: \(error)", nil)
    }
    let hashLine: String? = command.printHashes ? "seed \(seed) trace \(fuzzCase.report.traceHash) \(fuzzCase.report.passed ? "pass" : "fail")" : nil
    if command.checkDeterminism, let divergence = compareWithChildProcess(fuzzCase.scenario, command: command) {
        return ("seed \(seed): FAIL determinism: \(divergence)", hashLine)
    }
    guard let failure = fuzzCase.failure else { return (nil, hashLine) }
    var line = "seed \(seed): FAIL \(failure.name) at \(failure.violationTime.map { DurationText.format($0 - .zero) } ?? "?") on \(failure.subject ?? "?"): \(failure.message ?? "")"
    if command.shrink {
        let start = Date()
        let budget = command.shrinkTime.secondsDouble
        var shrinker = Shrinker(check: failure.name, message: failure.message, maxRuns: command.shrinkRuns, isOutOfTime: { Date().timeIntervalSince(start) > budget })
        let result = shrinker.shrink(fuzzCase.scenario, text: fuzzCase.text, report: fuzzCase.report)
        do {
            let path = try writeRegression(result, seed: seed, failure: failure, command: command)
            line += "\n  shrunk from \(result.originalSize) to \(result.shrunkSize) in \(result.runs) runs; written to \(path)"
        } catch {
            line += "\n  could not write the regression file: \(error.localizedDescription)"
        }
    }
    return (line, hashLine)
}

/// Writes the shrunk scenario under `command.out`, commented with where it came from.
func writeRegression(_ result: Shrinker.Result, seed: UInt64, failure: CheckResult, command: FuzzCommand) throws -> String {
    var scenario = result.scenario
    let name = "fuzz-\(seed)-\(failure.name)"
    scenario.name = name
    scenario.expect = .fail(check: failure.name, bug: "open: found by pico-sim fuzz seed \(seed), not yet fixed")
    let shrunkFailure = result.report.results.first { $0.name == failure.name } ?? failure
    let comments = [
        "Found by `pico-sim fuzz`: seed \(seed), generator version \(ScenarioGenerator.version), nodes \(command.nodes.lowerBound)-\(command.nodes.upperBound)\(command.nemesis ? ", --nemesis" : "").",
        "Fails check '\(failure.name)' at \(shrunkFailure.violationTime.map { DurationText.format($0 - .zero) } ?? "?") on \(shrunkFailure.subject ?? "?"):",
        "  \(shrunkFailure.message ?? "")",
        "Shrunk from \(result.originalSize) to \(result.shrunkSize) in \(result.runs) runs.",
        "Trace hash \(result.report.traceHash) (`pico-sim run` on this file replays the run exactly).",
        "While the bug is open this file expects the failure; once fixed, set `expect: pass` and keep it.",
    ]
    try FileManager.default.createDirectory(atPath: command.out, withIntermediateDirectories: true)
    let path = (command.out as NSString).appendingPathComponent("\(name).yaml")
    try ScenarioWriter.write(scenario, comments: comments).write(toFile: path, atomically: true, encoding: .utf8)
    return path
}

/// Runs `scenario`'s seed again in a child process (`pico-sim checkpoints`) and compares rolling
/// hashes every 1 000 events; on a mismatch, asks the child for the events of the first differing
/// stretch and names the first event that differs. Nil when the runs agree.
func compareWithChildProcess(_ scenario: Scenario, command: FuzzCommand) -> String? {
    let every = 1_000
    let local = Fuzzer.checkpoints(scenario, every: every)
    let nodes = "\(command.nodes.lowerBound)-\(command.nodes.upperBound)"
    let nemesis = command.nemesis ? ["--nemesis"] : []
    guard let hashes = runChild(["checkpoints", String(scenario.seed), "--nodes", nodes, "--every", String(every)] + nemesis) else {
        return "could not run the child process"
    }
    return Fuzzer.firstDivergence(local: local, otherHashes: hashes, every: every) {
        runChild(["checkpoints", String(scenario.seed), "--nodes", nodes, "--events"] + nemesis)
    }
}

/// Runs this executable with `arguments` (with `SWIFT_DETERMINISTIC_HASHING` flipped) and
/// returns its output lines.
func runChild(_ arguments: [String]) -> [String]? {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
    process.arguments = arguments
    var environment = ProcessInfo.processInfo.environment
    environment["SWIFT_DETERMINISTIC_HASHING"] = environment["SWIFT_DETERMINISTIC_HASHING"] == nil ? "1" : nil
    process.environment = environment
    let output = Pipe()
    process.standardOutput = output
    do {
        try process.run()
    } catch {
        return nil
    }
    let data = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else { return nil }
    return String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init)
}

/// `pico-sim checkpoints SEED [--nodes a-b] [--every N] [--events] [--nemesis]`: the rolling hashes (or every
/// event) of one fuzz seed's run, for `--check-determinism`'s child process.
func runCheckpoints(_ arguments: [String]) -> Int32 {
    var rest = arguments[...]
    guard let seedText = rest.popFirst(), let seed = UInt64(seedText) else {
        FileHandle.standardError.write(Data("pico-sim checkpoints: name a seed\n".utf8))
        return 2
    }
    var nodes = 3...9
    var every = 1_000
    var events = false
    var nemesis = false
    while let argument = rest.popFirst() {
        switch argument {
        case "--nodes":
            guard let range = FuzzCommand.nodeRange(rest.popFirst() ?? "") else { return 2 }
            nodes = range
        case "--every":
            guard let value = rest.popFirst().flatMap({ Int($0) }), value > 0 else { return 2 }
            every = value
        case "--events":
            events = true
        case "--nemesis":
            nemesis = true
        default:
            FileHandle.standardError.write(Data("pico-sim checkpoints: unknown option \(argument)\n".utf8))
            return 2
        }
    }
    guard let (scenario, _) = try? Fuzzer.scenario(seed: seed, nodes: nodes, nemesis: nemesis) else { return 2 }
    let result = Fuzzer.checkpoints(scenario, every: every)
    for line in events ? result.events : result.hashes { print(line) }
    return 0
}

/// `pico-sim generate SEED [--nodes a-b]`: prints the scenario file `fuzz` runs for that seed.
func runGenerate(_ arguments: [String]) -> Int32 {
    guard let seed = arguments.first.flatMap({ UInt64($0) }) else {
        FileHandle.standardError.write(Data("usage: pico-sim generate SEED [--nodes 3-9]\n".utf8))
        return 2
    }
    var nodes = 3...9
    if arguments.count == 3, arguments[1] == "--nodes" {
        guard let range = FuzzCommand.nodeRange(arguments[2]) else { return 2 }
        nodes = range
    } else if arguments.count != 1 {
        FileHandle.standardError.write(Data("usage: pico-sim generate SEED [--nodes 3-9]\n".utf8))
        return 2
    }
    print(ScenarioWriter.write(ScenarioGenerator.generate(seed: seed, nodes: nodes)), terminator: "")
    return 0
}
