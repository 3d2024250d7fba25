import PicoModel

/// `pico-sim`'s arguments, parsed purely from an array.
struct SimCommand: Equatable {
    var files: [String] = []
    var seed: UInt64?
    var quiet = false
    var json = false
    var tracePath: String?
    var htmlPath: String?

    static let usage = """
        usage: pico-sim run FILE... [--seed N] [--quiet] [--json] [--trace FILE] [--html FILE]
               pico-sim FILE...            (same as run)
               pico-sim fuzz ...           (random scenarios: pico-sim help fuzz)
               pico-sim generate SEED      (print the scenario fuzz runs for SEED)
               pico-sim help [run|fuzz]    (this text, or fuzz's)

        Replays each scenario file in simulated time, prints what happened, the figures and every
        check's verdict. Every file is read and checked before any runs. --json prints one JSON
        document per scenario instead; --trace FILE writes every node event as JSON lines; --html
        FILE writes a self-contained page with a lane per pod, the faults, requests per second and
        the verdicts. Exit status: 0 when each run showed what its file expects (by default: every
        check passed), 1 when one did not, 2 for a bad file or bad usage.
        """

    /// Parses `arguments` (without the program name).
    static func parse(_ arguments: [String]) throws(UsageError) -> SimCommand {
        var command = SimCommand()
        var rest = arguments[...]
        if rest.first == "run" { rest = rest.dropFirst() }
        while let argument = rest.popFirst() {
            switch argument {
            case "--seed":
                guard let value = rest.popFirst(), let seed = UInt64(value) else { throw UsageError("--seed needs a non-negative integer") }
                command.seed = seed
            case "--quiet", "-q":
                command.quiet = true
            case "--json":
                command.json = true
            case "--trace":
                guard let path = rest.popFirst() else { throw UsageError("--trace needs a file name") }
                command.tracePath = path
            case "--html":
                guard let path = rest.popFirst() else { throw UsageError("--html needs a file name") }
                command.htmlPath = path
            case "--help", "-h":
                throw UsageError("")
            default:
                guard !argument.hasPrefix("-") else { throw UsageError("unknown option \(argument)") }
                command.files.append(argument)
            }
        }
        guard !command.files.isEmpty else { throw UsageError("name at least one scenario file") }
        return command
    }
}

/// A usage problem; the message is printed before the usage text.
struct UsageError: Error {
    var message: String
    init(_ message: String) { self.message = message }
}
