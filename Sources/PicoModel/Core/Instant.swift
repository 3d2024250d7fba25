/// A point in time, in integer nanoseconds from an origin chosen by whoever drives the model.
///
/// PicoModel never reads a clock: every event carries `now: Instant`. The runtime passes a
/// monotonic clock reading, the simulator its virtual time. Callers may rely on `Instant` being
/// totally ordered and on `instant + duration - duration == instant` (saturating at the bounds).
public struct Instant: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// Nanoseconds since the driver's origin.
    public var nanoseconds: Int64

    /// Creates an instant `nanoseconds` after the origin.
    public init(nanoseconds: Int64) {
        self.nanoseconds = nanoseconds
    }

    /// The origin itself.
    public static let zero = Instant(nanoseconds: 0)

    /// Creates an instant a whole number of seconds after the origin (convenient in tests).
    public static func seconds(_ seconds: Int64) -> Instant {
        Instant(nanoseconds: seconds.multipliedReportingOverflow(by: 1_000_000_000).partialValue)
    }

    /// Creates an instant a whole number of milliseconds after the origin.
    public static func milliseconds(_ milliseconds: Int64) -> Instant {
        Instant(nanoseconds: milliseconds.multipliedReportingOverflow(by: 1_000_000).partialValue)
    }

    public static func < (lhs: Instant, rhs: Instant) -> Bool {
        lhs.nanoseconds < rhs.nanoseconds
    }

    /// The instant `duration` later; saturates instead of overflowing.
    public static func + (lhs: Instant, rhs: Duration) -> Instant {
        let (sum, overflow) = lhs.nanoseconds.addingReportingOverflow(rhs.nanosecondsClamped)
        if overflow { return Instant(nanoseconds: rhs < .zero ? Int64.min : Int64.max) }
        return Instant(nanoseconds: sum)
    }

    /// The instant `duration` earlier; saturates instead of overflowing.
    public static func - (lhs: Instant, rhs: Duration) -> Instant {
        let (difference, overflow) = lhs.nanoseconds.subtractingReportingOverflow(rhs.nanosecondsClamped)
        if overflow { return Instant(nanoseconds: rhs < .zero ? Int64.max : Int64.min) }
        return Instant(nanoseconds: difference)
    }

    /// The time from `rhs` to `lhs` (negative when `lhs` is earlier).
    public static func - (lhs: Instant, rhs: Instant) -> Duration {
        let (difference, overflow) = lhs.nanoseconds.subtractingReportingOverflow(rhs.nanoseconds)
        if overflow { return lhs < rhs ? .nanoseconds(Int64.min) : .nanoseconds(Int64.max) }
        return .nanoseconds(difference)
    }

    public var description: String {
        let millis = Double(nanoseconds) / 1_000_000
        return "t+\(millis)ms"
    }
}

extension Duration {
    /// The duration in whole nanoseconds (rounded toward zero), clamped to the `Int64` range.
    /// Every `Instant + Duration` comes through here: a duration within ±9.2 s (nearly all of
    /// them) takes one 64-bit division, not `components`' 128-bit arithmetic.
    public var nanosecondsClamped: Int64 {
        let attoseconds = self.attoseconds
        if let small = Int64(exactly: attoseconds) { return small / 1_000_000_000 }
        let nanoseconds = attoseconds / 1_000_000_000
        return Int64(exactly: nanoseconds) ?? (nanoseconds < 0 ? Int64.min : Int64.max)
    }

    /// This duration multiplied by a non-negative factor, rounded down to whole nanoseconds.
    public func scaled(by factor: Double) -> Duration {
        let value = Double(self.nanosecondsClamped) * factor
        if value >= Double(Int64.max) { return .nanoseconds(Int64.max) }
        if value <= Double(Int64.min) { return .nanoseconds(Int64.min) }
        return .nanoseconds(Int64(value))
    }

    /// The duration in seconds as a `Double` (for reports and ratios, never for ordering).
    public var secondsDouble: Double {
        Double(self.nanosecondsClamped) / 1_000_000_000
    }
}
