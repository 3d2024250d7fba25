@testable import PicoModel
import Testing

@Suite("The feed contract")
struct ByteStreamDecoderTests {
    private static let stream = LengthPrefixedFrames.frame([1, 2, 3]) + LengthPrefixedFrames.frame(Array(repeating: 7, count: 200))

    private static func messages(_ feed: (inout LengthPrefixedFrames, [UInt8]) -> Void) throws -> [[UInt8]] {
        var frames = LengthPrefixedFrames()
        var messages: [[UInt8]] = []
        // Three uneven pieces: a prefix split across calls, then the rest.
        for piece in [Array(Self.stream[0..<2]), Array(Self.stream[2..<9]), Array(Self.stream[9...])] {
            feed(&frames, piece)
            while let message = try frames.next() { messages.append(message) }
        }
        return messages
    }

    @Test func test_everyFormOfFeed_decodesTheSameMessages() throws {
        let expected: [[UInt8]] = [[1, 2, 3], Array(repeating: 7, count: 200)]
        #expect(try Self.messages { frames, piece in piece.withUnsafeBytes { frames.feed($0) } } == expected)
        #expect(try Self.messages { frames, piece in frames.feed(piece) } == expected)
        #expect(try Self.messages { frames, piece in frames.feed(([0] + piece)[1...]) } == expected)
        #expect(try Self.messages { frames, piece in frames.feed(piece.lazy.map { $0 }) } == expected, "a sequence without contiguous storage")
        #expect(try Self.messages { frames, piece in frames.feed(ContiguousArray(piece)) } == expected)
    }

    @Test func test_theCallersBuffer_mayBeReusedOnceFeedReturns() throws {
        var frames = LengthPrefixedFrames()
        var buffer = LengthPrefixedFrames.frame([4, 5, 6])
        buffer.withUnsafeBytes { frames.feed($0) }
        for index in buffer.indices { buffer[index] = 0xFF }
        #expect(try frames.next() == [4, 5, 6])
    }
}
