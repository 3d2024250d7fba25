import Glibc
import PicoModel

/// The runtime's clock: `CLOCK_MONOTONIC`, as the model's `Instant` (nanoseconds since boot).
public enum MonotonicClock {
    /// The current reading.
    public static func now() -> Instant {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return Instant(nanoseconds: Int64(spec.tv_sec) * 1_000_000_000 + Int64(spec.tv_nsec))
    }

    /// Wall-clock milliseconds since the Unix epoch (for log timestamps, the node epoch and token
    /// times only).
    public static func wallMilliseconds() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Int64(spec.tv_sec) * 1_000 + Int64(spec.tv_nsec) / 1_000_000
    }
}
