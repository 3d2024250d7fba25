import PicoModel

extension SimNetwork {
    /// The fate of a datagram from a host outside the cluster (the nemesis) to `pod`: the default
    /// profile plus the pod's impairment, drawn from `rng` (the sender's own stream, so an attack
    /// never shifts the draws between pods). Partitions and held links are between pods, so they
    /// do not apply.
    public func sendFromOutside(to pod: Int, now: Instant, rng: inout SplitMix64) -> Fate {
        var profile = self.defaultProfile
        if let extra = self.impairments[pod] { profile = profile.combined(with: extra) }
        if profile.loss > 0, rng.unitInterval() < profile.loss { return .dropped(reason: "loss") }
        var times = [now + Self.delay(profile, rng: &rng)]
        if profile.duplicate > 0, rng.unitInterval() < profile.duplicate { times.append(now + Self.delay(profile, rng: &rng)) }
        return .delivered(times)
    }

    /// A one-way delay on `profile`: latency, uniform jitter and, when reordered, up to four times
    /// the latency more.
    static func delay(_ profile: LinkProfile, rng: inout SplitMix64) -> Duration {
        var delay = profile.latency
        if profile.jitter > .zero {
            delay += .nanoseconds(Int64(rng.bounded(UInt64(profile.jitter.nanosecondsClamped) + 1)))
        }
        if profile.reorder > 0, rng.unitInterval() < profile.reorder {
            let extra = max(profile.latency, .milliseconds(1)) * 4
            delay += .nanoseconds(Int64(rng.bounded(UInt64(extra.nanosecondsClamped) + 1)))
        }
        return delay
    }
}
