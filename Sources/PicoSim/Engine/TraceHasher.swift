/// FNV-1a (64-bit) over a canonical byte encoding: the trace hash of a run. Never `Hasher`, whose
/// seed changes between processes; the same events give the same hash in any process.
public struct TraceHasher: Hashable, Sendable {
    /// FNV-1a's 64-bit offset basis.
    public static let offsetBasis: UInt64 = 0xCBF2_9CE4_8422_2325
    /// FNV-1a's 64-bit prime.
    public static let prime: UInt64 = 0x0000_0100_0000_01B3

    /// The hash so far.
    public private(set) var value: UInt64 = TraceHasher.offsetBasis

    /// Creates a hasher at the offset basis.
    public init() {}

    /// Mixes in bytes.
    public mutating func combine<Bytes: Sequence>(bytes: Bytes) where Bytes.Element == UInt8 {
        for byte in bytes {
            self.value ^= UInt64(byte)
            self.value = self.value &* Self.prime
        }
    }

    /// Mixes in a string's UTF-8 bytes followed by a 0xFF separator (so "ab"+"c" ≠ "a"+"bc").
    public mutating func combine(_ text: String) {
        self.combine(bytes: text.utf8)
        self.combine(bytes: CollectionOfOne(UInt8(0xFF)))
    }

    /// Mixes in an integer as 8 little-endian bytes.
    public mutating func combine(_ number: UInt64) {
        var remaining = number
        for _ in 0..<8 {
            self.combine(bytes: CollectionOfOne(UInt8(truncatingIfNeeded: remaining)))
            remaining >>= 8
        }
    }

    /// FNV-1a of a string's UTF-8 bytes alone.
    public static func hash(_ text: String) -> UInt64 {
        var hasher = TraceHasher()
        hasher.combine(bytes: text.utf8)
        return hasher.value
    }

    /// Sixteen lowercase hex digits.
    public var hex: String {
        let digits = String(self.value, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }
}
