import PicoModel

// ==== ---- Bounded values: every number in a scenario file is hostile ----------------------------------

extension ScenarioDecoder {
    /// The longest duration a scenario file may give anywhere (the run, a timeout, a lag, a
    /// latency): 24 hours, so no sum of them comes near the `Int64` nanoseconds of an `Instant`.
    public static let longestDuration: Duration = .seconds(86_400)

    /// The fewest requests per second a client may send (one every 1000 s); its interval between
    /// requests, 1/rate seconds, must fit in `Int64` nanoseconds.
    public static let lowestRate = 0.001
    /// The most requests per second one client, or all clients together, may send.
    public static let highestRate = 100_000.0
    /// The most agents all `topology.agents` entries may add up to.
    public static let mostAgents = 10_000
}

extension YAMLFields {
    /// A duration within `range` (by default from 0 to `ScenarioDecoder.longestDuration`); out
    /// of range is an error such as `spec.duration: must be from 1ns to 24h, got 0s`.
    mutating func duration(_ key: String, in range: ClosedRange<Duration>) throws(YAMLError) -> Duration? {
        let value = self.node[key]
        guard let duration = try self.duration(key, allowNegative: true) else { return nil }
        guard range.contains(duration) else {
            throw self.error(key, "must be from \(Self.bound(range.lowerBound)) to \(Self.bound(range.upperBound)), got \(value?.scalarText ?? DurationText.format(duration))", at: value)
        }
        return duration
    }

    /// A bound as a person writes it: `24h`, `10s`, `1ns` (not Go's `24h`).
    static func bound(_ duration: Duration) -> String {
        let text = DurationText.format(duration)
        if text.hasSuffix("h0m0s") { return String(text.dropLast(4)) }
        if text.hasSuffix("m0s") { return String(text.dropLast(2)) }
        return text
    }

    /// A number within `range`, described by `unit` in errors (`requests per second`).
    mutating func double(_ key: String, in range: ClosedRange<Double>, unit: String) throws(YAMLError) -> Double? {
        let value = self.node[key]
        guard let number = try self.double(key) else { return nil }
        guard range.contains(number) else {
            throw self.error(key, "must be from \(Self.decimal(range.lowerBound)) to \(Self.decimal(range.upperBound)) \(unit), got \(value?.scalarText ?? "\(number)")", at: value)
        }
        return number
    }

    /// `0.001`, `100000`: a bound as a person writes it (no `100000.0`).
    static func decimal(_ number: Double) -> String {
        number == number.rounded(.towardZero) && abs(number) < 1e15 ? "\(Int64(number))" : "\(number)"
    }
}
