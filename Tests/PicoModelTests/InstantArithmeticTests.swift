@testable import PicoModel
import Testing

/// `Duration.nanosecondsClamped` reads the attoseconds directly (one 64-bit division for short
/// durations); it must give what the seconds-and-attoseconds form gave for every duration.
@Suite("Instant arithmetic")
struct InstantArithmeticTests {
    /// The earlier form, through `components`.
    static func reference(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        let (fromSeconds, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return seconds < 0 ? Int64.min : Int64.max }
        let (total, overflow2) = fromSeconds.addingReportingOverflow(attoseconds / 1_000_000_000)
        if overflow2 { return seconds < 0 ? Int64.min : Int64.max }
        return total
    }

    @Test func test_nanosecondsClamped_equalsTheComponentsForm_acrossTheRange() {
        var durations: [Duration] = [
            .zero, .nanoseconds(1), .nanoseconds(-1), .nanoseconds(999_999_999), .milliseconds(1), .microseconds(200),
            .seconds(9), .seconds(-9), .seconds(10), .seconds(-10), .seconds(Int64.max), .seconds(Int64.min),
            .nanoseconds(Int64.max), .nanoseconds(Int64.min), .seconds(9_223_372_036), .seconds(9_223_372_037),
            .seconds(-9_223_372_036), .seconds(-9_223_372_037), .seconds(1) / 3, .seconds(-1) / 3,
            Duration(secondsComponent: 0, attosecondsComponent: 1), Duration(secondsComponent: 0, attosecondsComponent: -1),
            Duration(secondsComponent: 9, attosecondsComponent: 223_372_036_854_775_807),
            Duration(secondsComponent: 9, attosecondsComponent: 223_372_036_854_775_808),
            Duration(secondsComponent: -9, attosecondsComponent: -223_372_036_854_775_808),
            Duration(secondsComponent: -9, attosecondsComponent: -223_372_036_854_775_809),
            Duration(secondsComponent: 9_223_372_036, attosecondsComponent: 854_775_807_999_999_999),
            Duration(secondsComponent: 9_223_372_036, attosecondsComponent: 854_775_808_000_000_000),
            Duration(secondsComponent: -9_223_372_036, attosecondsComponent: -854_775_808_999_999_999),
            Duration(secondsComponent: -9_223_372_036, attosecondsComponent: -854_775_809_000_000_000),
        ]
        var rng = SplitMix64(seed: 21)
        for _ in 0..<20_000 {
            let seconds = Int64(bitPattern: rng.next()) >> Int64(rng.index(below: 64))
            let attoseconds = Int64(rng.index(below: 1_000_000_000)) * 1_000_000_000 + Int64(rng.index(below: 1_000_000_000))
            durations.append(Duration(secondsComponent: seconds, attosecondsComponent: seconds < 0 ? -attoseconds : attoseconds))
        }
        for duration in durations {
            #expect(duration.nanosecondsClamped == Self.reference(duration), "\(duration)")
        }
    }
}
