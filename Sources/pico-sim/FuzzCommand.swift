import PicoModel

/// `pico-sim fuzz`'s arguments, parsed purely from an array.
struct FuzzCommand: Equatable {
    var seeds: Int? = nil
    var time: Duration? = nil
    var from: UInt64 = 1
    var nodes: ClosedRange<Int> = 3...9
    var jobs = 1
    var out = "scenarios/regressions"
    var shrink = true
    var shrinkRuns = 300
    var shrinkTime: Duration = .seconds(120)
    var printHashes = false
    var checkDeterminism = false
    var nemesis = false

    static let usage = """
        usage: pico-sim fuzz [--seeds N | --time 60s] [--from SEED] [--nodes 3-9] [--jobs K]
                             [--out scenarios/regressions] [--no-shrink] [--shrink-runs N] [--shrink-time 2m]
                             [--hashes] [--check-determinism] [--nemesis]

        Generates a random scenario per seed (from --from up; 100 seeds unless --seeds or --time),
        runs it and checks every check. A failure is shrunk and written under --out as a scenario
        file that `pico-sim run` replays. --jobs runs seeds in K threads (never inside one run).
        --hashes prints each seed's trace hash; --check-determinism also runs every seed in a child
        process and reports the first event where the two runs diverge. --nemesis adds to each
        scenario's fault phase an attack of forged and garbled gossip from outside the cluster
        (120 s runs, 60 s bound). Progress goes to stderr.
        Exit status: 0 when nothing failed, 1 when a seed failed, 2 for bad usage.
        """

    /// `low-high` with 1 <= low <= high <= 64, else nil.
    static func nodeRange(_ text: String) -> ClosedRange<Int>? {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false).map { Int($0) }
        guard parts.count == 2, let low = parts[0], let high = parts[1], 1 <= low, low <= high, high <= 64 else { return nil }
        return low...high
    }

    static func parse(_ arguments: [String]) throws(UsageError) -> FuzzCommand {
        var command = FuzzCommand()
        var rest = arguments[...]
        func value(_ option: String) throws(UsageError) -> String {
            guard let value = rest.popFirst() else { throw UsageError("\(option) needs a value") }
            return value
        }
        while let argument = rest.popFirst() {
            switch argument {
            case "--seeds":
                guard let count = Int(try value(argument)), count > 0 else { throw UsageError("--seeds needs a positive integer") }
                command.seeds = count
            case "--time":
                guard let time = DurationText.parse(try value(argument)), time > .zero else { throw UsageError("--time needs a positive duration such as 60s") }
                command.time = time
            case "--from":
                guard let seed = UInt64(try value(argument)) else { throw UsageError("--from needs a non-negative integer") }
                command.from = seed
            case "--nodes":
                let text = try value(argument)
                guard let nodes = Self.nodeRange(text) else { throw UsageError("--nodes needs a range such as 3-9 (1 to 64), got '\(text)'") }
                command.nodes = nodes
            case "--jobs":
                guard let jobs = Int(try value(argument)), (1...64).contains(jobs) else { throw UsageError("--jobs needs an integer from 1 to 64") }
                command.jobs = jobs
            case "--out":
                command.out = try value(argument)
            case "--no-shrink":
                command.shrink = false
            case "--shrink-runs":
                guard let runs = Int(try value(argument)), runs >= 0 else { throw UsageError("--shrink-runs needs a non-negative integer") }
                command.shrinkRuns = runs
            case "--shrink-time":
                guard let time = DurationText.parse(try value(argument)), time >= .zero else { throw UsageError("--shrink-time needs a duration such as 2m") }
                command.shrinkTime = time
            case "--hashes":
                command.printHashes = true
            case "--check-determinism":
                command.checkDeterminism = true
            case "--nemesis":
                command.nemesis = true
            case "--help", "-h":
                throw UsageError("")
            default:
                throw UsageError("unknown fuzz option \(argument)")
            }
        }
        if command.seeds != nil, command.time != nil { throw UsageError("give --seeds or --time, not both") }
        if command.seeds == nil, command.time == nil { command.seeds = 100 }
        return command
    }
}
