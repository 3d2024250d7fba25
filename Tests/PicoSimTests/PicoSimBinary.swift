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
    /// status (standard error goes through a file, so neither pipe can fill up and stall the child).
    static func outcome(_ arguments: [String], deterministicHashing: Bool? = nil) throws -> Outcome {
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
        let errorFile = FileManager.default.temporaryDirectory.appendingPathComponent("pico-sim-stderr-\(UInt64.random(in: 0...UInt64.max))")
        try Data().write(to: errorFile)
        defer { try? FileManager.default.removeItem(at: errorFile) }
        let errorHandle = try FileHandle(forWritingTo: errorFile)
        let output = Pipe()
        process.standardOutput = output
        process.standardError = errorHandle
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        try errorHandle.close()
        let errors = String(decoding: try Data(contentsOf: errorFile), as: UTF8.self)
        return Outcome(output: data, errors: errors, status: process.terminationStatus)
    }

    /// The opposite of this process's `SWIFT_DETERMINISTIC_HASHING`, for cross-process checks.
    static var flippedHashing: Bool { ProcessInfo.processInfo.environment["SWIFT_DETERMINISTIC_HASHING"] == nil }
}
