import PicoModel

/// Simulated times and spans as a report prints them, all in one format: seconds with three
/// decimals (`3.300s`, `0.512s`), whether a moment of the run or how long something took.
public enum ReportTime {
    /// A moment of the run, in seconds from its start.
    public static func text(_ instant: Instant) -> String {
        self.text(nanoseconds: instant.nanoseconds)
    }

    /// A span of simulated time.
    public static func text(_ duration: Duration) -> String {
        self.text(nanoseconds: duration.nanosecondsClamped)
    }

    /// A span in seconds (a mean of spans); "?" when it is not a finite number.
    public static func text(seconds: Double) -> String {
        let nanoseconds = seconds * 1e9
        guard nanoseconds.isFinite, abs(nanoseconds) < 9e18 else { return "?" }
        return self.text(nanoseconds: Int64(nanoseconds.rounded()))
    }

    /// `nanoseconds` rounded to the millisecond, as `S.mmms`; exact integer arithmetic.
    static func text(nanoseconds: Int64) -> String {
        let magnitude = nanoseconds.magnitude
        let milliseconds = magnitude / 1_000_000 + (magnitude % 1_000_000 >= 500_000 ? 1 : 0)
        let fraction = String(milliseconds % 1_000)
        let sign = nanoseconds < 0 && milliseconds > 0 ? "-" : ""
        return "\(sign)\(milliseconds / 1_000).\(String(repeating: "0", count: 3 - fraction.count))\(fraction)s"
    }
}
