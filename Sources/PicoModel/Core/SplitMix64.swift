/// A small, fast, seeded pseudo-random generator (Steele, Lea and Flood's SplitMix64).
///
/// Every machine in PicoModel that needs randomness stores one of these, seeded by its driver, so
/// the same seed gives the same behaviour in any process. Callers may rely on the sequence for a
/// given seed never changing between releases of the same wire version: traces and regression
/// files depend on it.
public struct SplitMix64: RandomNumberGenerator, Hashable, Sendable {
    /// The generator's whole state.
    public private(set) var state: UInt64

    /// Creates a generator whose sequence is fully determined by `seed`.
    public init(seed: UInt64) {
        self.state = seed
    }

    /// The next 64 random bits.
    public mutating func next() -> UInt64 {
        self.state &+= 0x9E37_79B9_7F4A_7C15
        var z = self.state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A new, independent generator drawn from this one (for giving a sub-machine its own stream).
    public mutating func split() -> SplitMix64 {
        SplitMix64(seed: self.next())
    }

    /// A uniformly distributed index in `0..<upperBound`; `upperBound` must be positive.
    public mutating func index(below upperBound: Int) -> Int {
        precondition(upperBound > 0, "index(below:) needs a positive bound, got \(upperBound)")
        return Int(self.bounded(UInt64(upperBound)))
    }

    /// A uniformly distributed value in `0..<bound` (Lemire's nearly divisionless method, written
    /// out here so the sequence does not depend on the standard library's choice of algorithm);
    /// `bound` must be positive.
    public mutating func bounded(_ bound: UInt64) -> UInt64 {
        precondition(bound > 0, "bounded(_:) needs a positive bound")
        var product = self.next().multipliedFullWidth(by: bound)
        if product.low < bound {
            let threshold = (0 &- bound) % bound
            while product.low < threshold {
                product = self.next().multipliedFullWidth(by: bound)
            }
        }
        return product.high
    }

    /// A uniformly distributed value in `0.0..<1.0`.
    public mutating func unitInterval() -> Double {
        Double(self.next() >> 11) * 0x1.0p-53
    }

    /// Shuffles `array` in place (Fisher–Yates), drawing only from this generator.
    public mutating func shuffle<T>(_ array: inout [T]) {
        guard array.count > 1 else { return }
        var index = array.count - 1
        while index > 0 {
            let other = self.index(below: index + 1)
            if other != index { array.swapAt(index, other) }
            index -= 1
        }
    }

    /// Up to `count` distinct elements of `array`, in random order.
    public mutating func sample<T>(_ array: [T], count: Int) -> [T] {
        guard count > 0, !array.isEmpty else { return [] }
        var pool = array
        let wanted = min(count, pool.count)
        for position in 0..<wanted {
            let other = position + self.index(below: pool.count - position)
            if other != position { pool.swapAt(position, other) }
        }
        return Array(pool.prefix(wanted))
    }
}
