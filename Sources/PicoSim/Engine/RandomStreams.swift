import PicoModel

/// Independent random streams derived from one master seed, one per named subsystem (`network`,
/// `faults`, `workload`, `node/pico-0`, …). A stream's sequence depends only on the master seed and
/// its name, so drawing more or fewer numbers in one subsystem never changes another's.
public struct RandomStreams: Sendable {
    /// The master seed of the run.
    public let master: UInt64

    /// Creates the streams of a run.
    public init(master: UInt64) {
        self.master = master
    }

    /// The stream called `name` (a fresh generator at its start each time it is asked for).
    public func stream(_ name: String) -> SplitMix64 {
        var mixer = SplitMix64(seed: self.master ^ TraceHasher.hash(name))
        return SplitMix64(seed: mixer.next())
    }

    /// A seed for stream `name`, for machines that take a seed rather than a generator.
    public func seed(_ name: String) -> UInt64 {
        var stream = self.stream(name)
        return stream.next()
    }
}
