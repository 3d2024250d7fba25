import Foundation
import Testing

/// `pico-sim` on the command line: bad files and usage answered in plain words, help on
/// standard output, every file checked before any runs.
@Suite("pico-sim command")
struct ScenarioCommandTests {
    /// A fresh temporary directory, removed by `body`'s caller afterwards.
    static func withTemporaryDirectory<T>(_ body: (URL) throws -> T) throws -> T {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("pico-sim-cli-\(UInt64.random(in: 0...UInt64.max))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        return try body(directory)
    }

    @Test func test_fileThatIsNotUTF8_saysSo() throws {
        try Self.withTemporaryDirectory { directory in
            let file = directory.appendingPathComponent("latin1.yaml")
            try Data(Array("apiVersion: pico-sim.dev/v1alpha1\nkind: Scenario\nmetadata: {name: caf".utf8) + [0xE9] + Array("}\n".utf8)).write(to: file)
            let outcome = try PicoSimBinary.outcome([file.path])
            #expect(outcome.status == 2)
            #expect(outcome.errors == "pico-sim: \(file.path):3:21: the file is not UTF-8 text (byte 0xE9 here); save it as UTF-8\n")
        }
    }

    @Test func test_directory_saysItIsADirectory() throws {
        try Self.withTemporaryDirectory { directory in
            let outcome = try PicoSimBinary.outcome([directory.path])
            #expect(outcome.status == 2)
            #expect(outcome.errors == "pico-sim: cannot read \(directory.path): it is a directory; name a scenario file (.yaml) in it\n")
        }
        let missing = try PicoSimBinary.outcome(["/nonexistent/x.yaml"])
        #expect(missing.errors == "pico-sim: cannot read /nonexistent/x.yaml: no such file\n")
    }

    @Test func test_help_goesToStandardOutput_andHelpIsACommand() throws {
        for arguments in [["--help"], ["-h"], ["help"], ["help", "run"], ["run", "--help"]] {
            let outcome = try PicoSimBinary.outcome(arguments)
            #expect(outcome.status == 0, "\(arguments)")
            #expect(outcome.text.hasPrefix("usage: pico-sim run FILE..."), "\(arguments)")
            #expect(outcome.errors.isEmpty, "\(arguments)")
        }
        for arguments in [["fuzz", "--help"], ["help", "fuzz"]] {
            let outcome = try PicoSimBinary.outcome(arguments)
            #expect(outcome.status == 0 && outcome.text.hasPrefix("usage: pico-sim fuzz") && outcome.errors.isEmpty, "\(arguments)")
        }
        let unknown = try PicoSimBinary.outcome(["help", "frobnicate"])
        #expect(unknown.status == 2 && unknown.errors.contains("no help on 'frobnicate' (topics: run, fuzz)"))
        let usage = try PicoSimBinary.outcome(["--frobnicate"])
        #expect(usage.status == 2 && usage.text.isEmpty && usage.errors.hasPrefix("pico-sim: unknown option --frobnicate\n\nusage:"))
    }

    @Test func test_severalFiles_everyFileIsCheckedBeforeAnyRuns() throws {
        try Self.withTemporaryDirectory { directory in
            let good = ScenarioTests.root.appendingPathComponent("scenarios/cold-start.yaml").path
            let first = directory.appendingPathComponent("first.yaml")
            let last = directory.appendingPathComponent("last.yaml")
            try Data(ScenarioInputTests.served.replacingOccurrences(of: "rate: 200", with: "rate: 0").utf8).write(to: first)
            try Data(ScenarioInputTests.served.replacingOccurrences(of: "duration: 1m", with: "duration: 0s").utf8).write(to: last)
            let outcome = try PicoSimBinary.outcome([good, first.path, good, last.path])
            #expect(outcome.status == 2)
            #expect(outcome.text.isEmpty, "no scenario ran, not even the good one before the bad")
            let lines = outcome.errors.split(separator: "\n").map(String.init)
            #expect(lines == [
                "pico-sim: \(first.path):9:22: spec.topology.clients[0].rate: must be from 0.001 to 100000 requests per second, got 0",
                "pico-sim: \(last.path):5:13: spec.duration: must be from 1ns to 24h, got 0s",
                "pico-sim: no scenario ran: every file is checked before any runs, and the file(s) above have problems",
            ])
        }
    }
}
