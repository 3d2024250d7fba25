@testable import PicoModel
import Testing

@Suite("Yamux frame codec")
struct YamuxFrameTests {
    @Test func test_header_layout_matchesTheSpec() {
        var bytes: [UInt8] = []
        YamuxHeader(.windowUpdate, flags: [.syn, .fin], streamID: 0x0102_0304, length: 0x0A0B_0C0D).write(into: &bytes)
        #expect(bytes == [0, 1, 0, 5, 1, 2, 3, 4, 0x0A, 0x0B, 0x0C, 0x0D])
    }

    @Test(arguments: [0, 1, 5, 13])
    func test_framesAndPayloads_decodeWhateverTheReadSizes(step: Int) throws {
        var bytes: [UInt8] = []
        YamuxHeader(.data, flags: .syn, streamID: 2, length: 5).write(into: &bytes)
        bytes += Array("hello".utf8)
        YamuxHeader(.ping, flags: .syn, streamID: 0, length: 77).write(into: &bytes)
        YamuxHeader(.data, flags: .fin, streamID: 2, length: 0).write(into: &bytes)
        YamuxHeader(.goAway, streamID: 0, length: YamuxHeader.GoAwayCode.normal.rawValue).write(into: &bytes)
        var decoder = YamuxFrameDecoder()
        var headers: [YamuxHeader] = []
        var data: [UInt8] = []
        var start = 0
        repeat {
            let end = step == 0 ? bytes.count : min(bytes.count, start + step)
            decoder.feed(bytes[start..<end])
            start = end
            while let event = try decoder.next() {
                switch event {
                case .header(let header): headers.append(header)
                case .data(let stream, let piece):
                    #expect(stream == 2)
                    data += piece
                }
            }
        } while start < bytes.count
        #expect(headers.map(\.type) == [.data, .ping, .data, .goAway])
        #expect(headers[1].length == 77 && headers[2].flags == .fin)
        #expect(data == Array("hello".utf8))
    }

    @Test func test_malformedHeaders_areProtocolErrors_andFinal() {
        let cases: [([UInt8], String)] = [
            ([1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0], "unsupported yamux version 1"),
            ([0, 9, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0], "unknown yamux frame type 9"),
            ([0, 0, 0, 0x10, 0, 0, 0, 1, 0, 0, 0, 0], "unknown yamux flags 16"),
            ([0, 2, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0], "ping frame on stream 1"),
            ([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], "data frame on stream 0"),
            ([0, 0, 0, 0, 0, 0, 0, 1, 0, 4, 0, 1], "exceeds the 262144-byte limit"),
        ]
        for (bytes, message) in cases {
            var decoder = YamuxFrameDecoder()
            decoder.feed(bytes)
            #expect(throws: YamuxProtocolError.self) { _ = try decoder.next() }
            do {
                _ = try decoder.next()
                Issue.record("not final")
            } catch {
                #expect(error.message.contains(message), "\(error)")
            }
        }
    }
}
