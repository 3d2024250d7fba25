// Shared helpers of the harnesses: reading structure out of the fuzzer's bytes, and assertions
// that crash (so libFuzzer records the input) with a message naming what broke.
import PicoModel

/// The fuzzer's input, read front to back; reads past the end yield zeros and empty slices.
struct FuzzBytes {
    let bytes: [UInt8]
    private(set) var index = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var isEmpty: Bool { self.index >= self.bytes.count }
    var remaining: Int { self.bytes.count - self.index }

    mutating func byte() -> UInt8 {
        guard self.index < self.bytes.count else { return 0 }
        defer { self.index += 1 }
        return self.bytes[self.index]
    }

    mutating func uint16() -> Int { Int(self.byte()) << 8 | Int(self.byte()) }

    mutating func take(_ count: Int) -> ArraySlice<UInt8> {
        let end = min(self.bytes.count, self.index + max(0, count))
        defer { self.index = end }
        return self.bytes[self.index..<end]
    }

    /// A length-prefixed piece: two bytes of length, then that many bytes (or what is left).
    mutating func piece() -> [UInt8] { Array(self.take(self.uint16())) }

    mutating func rest() -> ArraySlice<UInt8> { self.take(self.remaining) }
}

/// Crashes with `message` unless `condition` holds: the fuzzer saves the input as a crash.
@inline(__always)
func require(_ condition: Bool, _ message: @autoclosure () -> String) {
    if !condition { fatalError("invariant broken: \(message())") }
}

/// Cuts `bytes` into pieces whose sizes come from `seed` (1 byte at a time, small runs, or all at
/// once), as a socket may deliver them: decoders must give the same answers however bytes arrive.
func pieces(of bytes: ArraySlice<UInt8>, seed: UInt8) -> [ArraySlice<UInt8>] {
    var rng = SplitMix64(seed: UInt64(seed))
    var result: [ArraySlice<UInt8>] = []
    var start = bytes.startIndex
    while start < bytes.endIndex {
        let size: Int
        switch seed & 3 {
        case 0: size = bytes.count
        case 1: size = 1
        case 2: size = 1 + rng.index(below: 16)
        default: size = 1 + rng.index(below: 512)
        }
        let end = min(bytes.endIndex, start + size)
        result.append(bytes[start..<end])
        start = end
    }
    return result
}

/// Seeds with a piece-size byte in front, one per way of cutting.
func withCuttings(_ name: String, _ body: [UInt8]) -> [(name: String, bytes: [UInt8])] {
    [(name + "-whole", [0] + body), (name + "-bytewise", [1] + body), (name + "-runs", [2] + body)]
}
