import PicoModel

/// The unbroken stretches during which a request's entry pod could reach a holder of its
/// endpoint, by the network's real state: the checker's measure of whether the cluster could
/// have served a request that failed (`excuse: no-reachable-holder`).
public struct ReachabilityStretch: Hashable, Sendable {
    /// Since when a holder has been reachable without a break (nil: not now).
    public private(set) var since: Instant?
    /// The longest stretch that ended so far.
    public private(set) var longestEnded: Duration = .zero

    /// Starts the record at `now`, with a holder reachable or not.
    public init(reachable: Bool, now: Instant) {
        self.since = reachable ? now : nil
    }

    /// Whether a holder is reachable at `now` (called whenever it may have changed).
    public mutating func note(reachable: Bool, now: Instant) {
        if reachable {
            if self.since == nil { self.since = now }
        } else if let since = self.since {
            self.longestEnded = max(self.longestEnded, now - since)
            self.since = nil
        }
    }

    /// The longest unbroken stretch up to `now` (the current one included).
    public func longest(at now: Instant) -> Duration {
        guard let since = self.since else { return self.longestEnded }
        return max(self.longestEnded, now - since)
    }
}
