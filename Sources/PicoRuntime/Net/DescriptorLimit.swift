import Glibc

/// The process's open-descriptor limit (`RLIMIT_NOFILE`).
public enum DescriptorLimit {
    /// The largest limit asked for when the hard limit is unlimited.
    static let ceiling = 1 << 20

    /// Raises the soft limit to the hard one; returns both soft limits (before and after; equal
    /// when it could not be raised).
    public static func raiseToHard() -> (before: Int, after: Int) {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return (0, 0) }
        let before = Self.clamped(limit.rlim_cur)
        let target = limit.rlim_max == rlim_t.max ? rlim_t(Self.ceiling) : limit.rlim_max
        guard target > limit.rlim_cur else { return (before, before) }
        var raised = limit
        raised.rlim_cur = target
        guard setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 else { return (before, before) }
        return (before, Self.clamped(target))
    }

    /// The current soft limit.
    public static func current() -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return Self.ceiling }
        return Self.clamped(limit.rlim_cur)
    }

    private static func clamped(_ value: rlim_t) -> Int {
        value == rlim_t.max || value > rlim_t(Self.ceiling) ? Self.ceiling : Int(value)
    }
}

/// How many descriptors each port may hold: its configured cap, but never more than the
/// descriptor limit less a reserve for the other ports, tunnels' and forwards' sockets and the
/// process's own (a quarter of the limit, at least 64), so a flood on one port cannot take the
/// descriptors the others need.
public struct DescriptorBudget: Hashable, Sendable {
    /// The soft descriptor limit.
    public var limit: Int
    /// Descriptors no single port may take.
    public var reserve: Int { max(64, self.limit / 4) }

    /// A budget for `limit` descriptors.
    public init(limit: Int) { self.limit = limit }

    /// The cap a port with `configured` cap runs with (at least 1).
    public func cap(_ configured: Int) -> Int {
        max(1, min(configured, self.limit - self.reserve))
    }
}
