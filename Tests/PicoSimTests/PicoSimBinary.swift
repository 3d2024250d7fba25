import Foundation
import Testing

/// The debug `pico-sim` binary that `scripts/test` builds, run as a child process.
enum PicoSimBinary {
    /// Runs `pico-sim` with `arguments`; `deterministicHashing` sets (true) or unsets (false)
    /// `SWIFT_DETERMINISTIC_HASHING` in the child, nil leaves our environment alone. Returns its
    /// standard output and exit status; standard error is discarded.
    static func run(_ arguments: [String], deterministicHashing: Bool? = nil) throws -> (output: Data, status: Int32) {
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
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (data, process.terminationStatus)
    }

    /// The opposite of this process's `SWIFT_DETERMINISTIC_HASHING`, for cross-process checks.
    static var flippedHashing: Bool { ProcessInfo.processInfo.environment["SWIFT_DETERMINISTIC_HASHING"] == nil }
}
