import PicoModel
import Testing

@Suite("WebSocket masking")
struct WebSocketMaskTests {
    /// The word-at-a-time XOR equals RFC 6455's byte-by-byte definition for every length around
    /// the word size and every key phase.
    @Test func test_wordwiseMask_equalsTheBytewiseDefinition() {
        var random = SplitMix64(seed: 42)
        for length in [0, 1, 3, 7, 8, 9, 15, 16, 17, 63, 64, 65, 1_000] {
            for phase in 0..<4 {
                let key = (0..<4).map { _ in UInt8(truncatingIfNeeded: random.next()) }
                let payload = (0..<length).map { _ in UInt8(truncatingIfNeeded: random.next()) }
                let expected = payload.enumerated().map { $1 ^ key[($0 + phase) & 3] }
                var masked = payload
                masked.withUnsafeMutableBytes { WebSocketMask.apply(key, phase: phase, to: $0) }
                #expect(masked == expected, "length \(length) phase \(phase)")
                masked.withUnsafeMutableBytes { WebSocketMask.apply(key, phase: phase, to: $0) }
                #expect(masked == payload)
            }
        }
    }
}
