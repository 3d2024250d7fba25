import Foundation
import PicoModel
import PicoSim

/// Prints a report the way a person reads it: the timeline, figures, verdicts, seed, trace hash.
func printReport(_ report: ScenarioReport, scenario: Scenario, quiet: Bool) {
    print("== \(scenario.name) (\(scenario.file)): \(scenario.pods) pods, \(ReportTime.text(scenario.duration)) simulated, seed \(report.seed)")
    if !quiet {
        print("-- timeline")
        for (time, text) in report.timeline {
            let at = ReportTime.text(time)
            print("  \(String(repeating: " ", count: max(0, 10 - at.count)))\(at)  \(text)")
        }
    }
    print("-- figures")
    for (name, value) in report.figures { print("  \(name): \(value)") }
    print("-- checks")
    for result in report.results {
        if result.passed {
            print("  PASS \(result.name)\(result.note.map { " (\($0))" } ?? "")")
        } else {
            let time = result.violationTime.map(ReportTime.text) ?? "?"
            print("  FAIL \(result.name): at \(time), \(result.subject ?? "?"): \(result.message ?? "")")
        }
    }
    print("-- verdict: \(report.passed ? "PASS" : "FAIL")   seed \(report.seed)   trace \(report.traceHash)")
    switch report.expect {
    case .pass: break
    case .fail(let check, let bug):
        print("-- expected: \(check) fails (known open bug: \(bug)): \(report.asExpected ? "as expected" : "NOT AS EXPECTED: the bug may be fixed; flip this file to expect: pass")")
    case .limitation(let check, let why):
        print("-- expected: \(check) fails (known limitation: \(why)): \(report.asExpected ? "as expected" : "NOT AS EXPECTED: the scenario no longer shows the limitation")")
    }
}

/// The report as one JSON document (keys sorted).
func jsonReport(_ report: ScenarioReport, scenario: Scenario, wall: Double) -> String {
    func seconds(_ instant: Instant?) -> Any { instant.map { Double($0.nanoseconds) / 1e9 } ?? NSNull() }
    let document: [String: Any] = [
        "scenario": scenario.name, "file": scenario.file, "seed": String(report.seed), "traceHash": report.traceHash,
        "passed": report.passed, "asExpected": report.asExpected, "wallSeconds": wall, "simulatedSeconds": scenario.duration.secondsDouble,
        "timeline": report.timeline.map { ["at": seconds($0.0), "event": $0.1] },
        "figures": Dictionary(report.figures, uniquingKeysWith: { first, _ in first }),
        "membership": report.membership.map(membershipJSON) ?? NSNull(),
        "checks": report.results.map { result -> [String: Any] in
            ["name": result.name, "passed": result.passed, "at": seconds(result.violationTime),
             "subject": result.subject ?? NSNull(), "message": result.message ?? NSNull(), "note": result.note ?? NSNull()]
        },
    ]
    let data = (try? JSONSerialization.data(withJSONObject: document, options: [.sortedKeys])) ?? Data("{}".utf8)
    return String(decoding: data, as: UTF8.self)
}

/// The membership figures as a JSON object (seconds as numbers; `bench/membership` reads it).
func membershipJSON(_ figures: MembershipFigures) -> [String: Any] {
    func seconds(_ instant: Instant) -> Double { Double(instant.nanoseconds) / 1e9 }
    return [
        "crashes": figures.crashes.map { crash -> [String: Any] in
            ["pod": crash.pod, "at": seconds(crash.at), "firstSuspicion": crash.firstSuspicion ?? NSNull(), "known": crash.known, "unaware": crash.unaware]
        },
        "joins": figures.joins, "joinsUnseen": figures.joinsUnseen,
        "falseDeathDeclarations": figures.falseDeathDeclarations, "falselyDeclaredUIDs": figures.falselyDeclaredUIDs,
        "falseSuspicions": figures.falseSuspicions, "refutations": figures.refutations, "rebirths": figures.rebirths,
        "localPauses": figures.localPauses,
        "byteSamples": zip(figures.byteSamples, figures.runningSamples).map { [seconds($0.0.0), $0.0.1, $0.1.1] as [Any] },
    ]
}

/// Every node event as one JSON object per line.
func writeTrace(_ report: ScenarioReport, to path: String) throws {
    var lines = ""
    for (time, pod, record) in report.trace {
        let fields = Dictionary(record.fields.map { ($0.name, $0.value) }, uniquingKeysWith: { first, _ in first })
        let object: [String: Any] = ["at": Double(time.nanoseconds) / 1e9, "pod": pod, "event": record.kind, "fields": fields]
        let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        lines += String(decoding: data, as: UTF8.self) + "\n"
    }
    try lines.write(toFile: path, atomically: true, encoding: .utf8)
}

/// Writes `text` and a newline to standard error.
func printError(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}

/// `pico-sim help [TOPIC]`: the usage of `run` (the default) or `fuzz`, on standard output.
func runHelp(_ arguments: [String]) -> Int32 {
    switch arguments.first {
    case nil, "run": print(SimCommand.usage)
    case "fuzz": print(FuzzCommand.usage)
    default:
        printError("pico-sim help: no help on '\(arguments[0])' (topics: run, fuzz)")
        return 2
    }
    return 0
}

func main() -> Int32 {
    let arguments = Array(CommandLine.arguments.dropFirst())
    if arguments.first == "help" { return runHelp(Array(arguments.dropFirst())) }
    if arguments.first == "fuzz" {
        do {
            return runFuzz(try FuzzCommand.parse(Array(arguments.dropFirst())))
        } catch {
            // --help is an answer, on standard output; a usage error goes to standard error.
            guard !error.message.isEmpty else { return runHelp(["fuzz"]) }
            printError("pico-sim fuzz: \(error.message)\n\n\(FuzzCommand.usage)")
            return 2
        }
    }
    if arguments.first == "checkpoints" { return runCheckpoints(Array(arguments.dropFirst())) }
    if arguments.first == "generate" { return runGenerate(Array(arguments.dropFirst())) }
    let command: SimCommand
    do {
        command = try SimCommand.parse(arguments)
    } catch {
        guard !error.message.isEmpty else { return runHelp([]) }
        printError("pico-sim: \(error.message)\n\n\(SimCommand.usage)")
        return 2
    }
    // Every file is read and checked before any runs: a typo in the last file is found at once.
    let scenarios: [Scenario]
    switch ScenarioFiles.load(command.files, seed: command.seed) {
    case .success(let loaded): scenarios = loaded
    case .failure(let problems):
        for message in problems.messages { printError("pico-sim: \(message)") }
        if command.files.count > 1 { printError("pico-sim: no scenario ran: every file is checked before any runs, and the file(s) above have problems") }
        return 2
    }
    var status: Int32 = 0
    for scenario in scenarios {
        let started = Date()
        let (report, world) = ScenarioRunner.runWithWorld(scenario, keepTrace: command.tracePath != nil)
        let wall = Date().timeIntervalSince(started)
        if command.json {
            print(jsonReport(report, scenario: scenario, wall: wall))
        } else {
            printReport(report, scenario: scenario, quiet: command.quiet)
            print(String(format: "   (%.2fs wall, %.0f simulated seconds per wall second)", wall, scenario.duration.secondsDouble / max(wall, 1e-6)))
        }
        if let path = command.tracePath {
            do {
                try writeTrace(report, to: scenarios.count > 1 ? "\(path).\(scenario.name)" : path)
            } catch {
                printError("pico-sim: cannot write the trace to \(path): \(error.localizedDescription)")
                return 2
            }
        }
        if let path = command.htmlPath {
            do {
                let target = scenarios.count > 1 ? "\(path).\(scenario.name).html" : path
                try HTMLReport.render(scenario, world: world, report: report).write(toFile: target, atomically: true, encoding: .utf8)
            } catch {
                printError("pico-sim: cannot write the page to \(path): \(error.localizedDescription)")
                return 2
            }
        }
        if !report.asExpected { status = 1 }
    }
    return status
}

exit(main())
