@testable import PicoModel
import Testing

@Suite("Length-prefixed frames")
struct LengthPrefixedFramesTests {
    @Test func test_messagesArriveWhole_fromBytesFedOneAtATime() throws {
        var frames = LengthPrefixedFrames()
        let stream = LengthPrefixedFrames.frame([1, 2, 3]) + LengthPrefixedFrames.frame([]) + LengthPrefixedFrames.frame(Array(repeating: 9, count: 300))
        var messages: [[UInt8]] = []
        for byte in stream {
            frames.feed([byte])
            while let message = try frames.next() { messages.append(message) }
        }
        #expect(messages == [[1, 2, 3], [], Array(repeating: 9, count: 300)])
        #expect(frames.bufferedCount == 0)
    }

    @Test func test_aLengthAboveTheLimit_isRefusedBeforeItsBytesArrive() throws {
        var frames = LengthPrefixedFrames(maxLength: 1_024)
        frames.feed([0, 0, 4, 1])
        #expect(throws: WireDecodeError(.tooLarge(limit: 1_024), field: "frame.length", offset: 0)) { try frames.next() }
        var truncated = LengthPrefixedFrames()
        truncated.feed([0, 0, 0, 5, 1, 2])
        #expect(try truncated.next() == nil, "a partial message waits for the rest")
    }
}
