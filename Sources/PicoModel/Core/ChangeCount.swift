/// Counts writes to the state a machine's `checkInvariants` reads, so a caller that found that
/// state consistent can skip reading it again until it is written (see
/// `ClusterNode.checkInvariants(cleanAt:)`).
///
/// A machine bumps it from the `didSet` of every stored property its check reads, so no write can
/// slip past it (a `didSet` that does not read `oldValue` keeps in-place mutation). It is not part
/// of a machine's value: any two counts are equal and hash alike, so a machine's synthesized
/// `Hashable` still compares only its state.
public struct ChangeCount: Hashable, Sendable {
    /// Writes so far (wraps around; only equality of two readings of one machine means anything).
    public private(set) var value: UInt64 = 0

    /// A count of zero.
    public init() {}

    /// Records one write.
    public mutating func bump() {
        self.value &+= 1
    }

    /// Always true: the count is bookkeeping, not state.
    public static func == (lhs: ChangeCount, rhs: ChangeCount) -> Bool { true }

    /// Adds nothing: the count is bookkeeping, not state.
    public func hash(into hasher: inout Hasher) {}
}
