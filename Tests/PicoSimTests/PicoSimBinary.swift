import Foundation
import Testing

/// The debug `pico-sim` binary that `scripts/test` builds, run as a child process.
enum PicoSimBinary {
    /// What one run printed and how it ended.
    struct Outcome {
        /// Standard output.
        var output: Data
        /// Standard error, as text.
        var errors: String
        /// The exit status.
        var status: Int32
        /// Standard output, as text.
        var text: String { String(decoding: self.output, as: UTF8.self) }
    }

    /// Runs `pico-sim` with `arguments`; `deterministicHashing` sets (true) or unsets (false)
    /// `SWIFT_DETERMINISTIC_HASHING` in the child, nil leaves our environment alone. Returns its
    /// standard output and exit status; standard error is discarded.
    static func run(_ arguments: [String], deterministicHashing: Bool? = nil) throws -> (output: Data, status: Int32) {
        let outcome = try self.outcome(arguments, deterministicHashing: deterministicHashing)
        return (outcome.output, outcome.status)
    }

    /// Runs `pico-sim` with `arguments` and returns standard output, standard error and the exit
    /// status.
    static func outcome(_ arguments: [String], deterministicHashing: Bool? = nil) throws -> Outcome {
        try self.start(arguments, deterministicHashing: deterministicHashing).finish()
    }

    /// A child `pico-sim` still running; its output goes to files, so it never stalls on a full
    /// pipe while the test does other work.
    struct Running {
        let process: Process
        let outputFile: URL
        let errorFile: URL
        let handles: [FileHandle]

        /// Waits for the child and returns what it printed.
        func finish() throws -> Outcome {
            self.process.waitUntilExit()
            for handle in self.handles { try handle.close() }
            defer { for file in [self.outputFile, self.errorFile] { try? FileManager.default.removeItem(at: file) } }
            let output = try Data(contentsOf: self.outputFile)
            let errors = String(decoding: try Data(contentsOf: self.errorFile), as: UTF8.self)
            return Outcome(output: output, errors: errors, status: self.process.terminationStatus)
        }
    }

    /// Starts `pico-sim` with `arguments` (see `run`) and returns at once.
    static func start(_ arguments: [String], deterministicHashing: Bool? = nil) throws -> Running {
        let binary = ScenarioTests.root.appendingPathComponent(".build/debug/pico-sim")
        try #require(FileManager.default.isExecutableFile(atPath: binary.path), "scripts/test builds pico-sim before the tests")
        let process = Process()
        process.executableURL = binary
        process.arguments = arguments
        if let deterministicHashing {
            var environment = ProcessInfo.processInfo.environment
            environment["SWIFT_DETERMINISTIC_HASHING"] = deterministicHashing ? "1" : nil
            process.environment = environment
        }
        let stem = "pico-sim-\(UInt64.random(in: 0...UInt64.max))"
        let outputFile = FileManager.default.temporaryDirectory.appendingPathComponent(stem + "-stdout")
        let errorFile = FileManager.default.temporaryDirectory.appendingPathComponent(stem + "-stderr")
        try Data().write(to: outputFile)
        try Data().write(to: errorFile)
        let outputHandle = try FileHandle(forWritingTo: outputFile)
        let errorHandle = try FileHandle(forWritingTo: errorFile)
        process.standardOutput = outputHandle
        process.standardError = errorHandle
        try process.run()
        return Running(process: process, outputFile: outputFile, errorFile: errorFile, handles: [outputHandle, errorHandle])
    }

    /// The opposite of this process's `SWIFT_DETERMINISTIC_HASHING`, for cross-process checks.
    static var flippedHashing: Bool { ProcessInfo.processInfo.environment["SWIFT_DETERMINISTIC_HASHING"] == nil }
}
