@testable import PicoModel
import Testing

/// Drives `WebSocketStreamBridge` directly: bytes both ways, half-close, close handshakes, and
/// hostile frames.
@Suite("WebSocket stream bridge")
struct WebSocketStreamBridgeTests {
    static let mask: [UInt8] = [1, 2, 3, 4]

    /// A client's (masked) frame.
    static func frame(_ opcode: WebSocketOpcode, _ payload: [UInt8] = [], fin: Bool = true) -> [UInt8] {
        var bytes: [UInt8] = []
        WebSocketFrameEncoder.write(opcode, payload: payload, fin: fin, maskingKey: Self.mask, into: &bytes)
        return bytes
    }

    static func close(_ code: UInt16) -> [UInt8] {
        var bytes: [UInt8] = []
        WebSocketFrameEncoder.writeClose(code: code, maskingKey: Self.mask, into: &bytes)
        return bytes
    }

    static func feed(_ bridge: inout WebSocketStreamBridge, _ bytes: [UInt8]) -> [WebSocketStreamBridge.Output] {
        bytes.withUnsafeBytes { bridge.received($0) }
    }

    /// Delivered bytes, joined.
    static func delivered(_ outputs: [WebSocketStreamBridge.Output]) -> [UInt8] {
        outputs.flatMap { output -> [UInt8] in
            if case .deliver(let bytes) = output { return Array(bytes) }
            return []
        }
    }

    @Test func test_bytesFlowBothWays_acrossFragmentsAndSplitReads_andPingsAreAnswered() {
        var bridge = WebSocketStreamBridge(role: .server, halfClose: false)
        let stream = Self.frame(.binary, Array("hel".utf8), fin: false) + Self.frame(.ping, [9]) + Self.frame(.continuation, Array("lo".utf8))
        var outputs: [WebSocketStreamBridge.Output] = []
        // One byte per read: the decoder holds at most a partial frame head.
        for byte in stream { outputs += Self.feed(&bridge, [byte]) }
        #expect(Self.delivered(outputs) == Array("hello".utf8))
        #expect(outputs.contains(.write(.pong([9]))))
        #expect(bridge.bufferedByteCount == 0)
        #expect(bridge.streamReceived(ArraySlice("back".utf8)) == .data(ArraySlice("back".utf8)))
        #expect(bridge.streamReceived([]) == nil, "no empty message: it would read as the end")
    }

    @Test func test_onlyAMessageWithNoPayloadAtAll_isAnEnd() {
        var bridge = WebSocketStreamBridge(role: .server, halfClose: true)
        // A message whose last fragment is empty carries bytes: it is no end.
        #expect(Self.feed(&bridge, Self.frame(.binary, [1], fin: false) + Self.frame(.continuation)) == [.deliver([1])])
        #expect(Self.feed(&bridge, Self.frame(.binary, fin: false) + Self.frame(.continuation)) == [.finishStream])
    }

    @Test func test_halfClose_eachDirectionEndsOnItsOwn_thenTheCloseHandshakeEndsIt() {
        var bridge = WebSocketStreamBridge(role: .server, halfClose: true)
        #expect(Self.feed(&bridge, Self.frame(.binary, [1]) + Self.frame(.binary)) == [.deliver([1]), .finishStream])
        #expect(bridge.state == .open(fromPeer: .ended, fromStream: .open))
        #expect(bridge.streamReceived([7]) == .data([7]), "the other direction goes on")
        #expect(bridge.streamEnded() == [.write(.close(code: 1000, reason: ""))])
        #expect(bridge.state == .closeSent)
        #expect(Self.feed(&bridge, Self.close(1000)) == [.close])
        #expect(bridge.state == .closed)

        var other = WebSocketStreamBridge(role: .server, halfClose: true)
        #expect(other.streamEnded() == [.write(.end)])
        #expect(Self.delivered(Self.feed(&other, Self.frame(.binary, [5]))) == [5], "the peer's direction goes on")
        #expect(Self.feed(&other, Self.frame(.binary)) == [.finishStream, .write(.close(code: 1000, reason: ""))])
    }

    @Test func test_withoutHalfClose_theStreamsEndClosesTheWebSocket_asPikoDoes() {
        var bridge = WebSocketStreamBridge(role: .server, halfClose: false)
        #expect(bridge.streamEnded() == [.finishStream, .write(.close(code: 1000, reason: ""))])
        #expect(bridge.streamReceived([1]) == nil)
        #expect(Self.feed(&bridge, Self.frame(.binary, [1, 2])) == [], "data after our close frame is dropped")
        #expect(Self.feed(&bridge, Self.close(1000)) == [.close])
        // An empty message from a client that did not negotiate half-close still ends its direction.
        var piko = WebSocketStreamBridge(role: .server, halfClose: false)
        #expect(Self.feed(&piko, Self.frame(.binary)) == [.finishStream])
    }

    @Test func test_anIdleTimeout_beginsTheCloseHandshakeWith4000_onceOnly() {
        var bridge = WebSocketStreamBridge(role: .server, halfClose: true)
        #expect(bridge.idleTimedOut() == [.write(.close(code: 4000, reason: "idle timeout"))])
        #expect(bridge.idleTimedOut() == [] && bridge.streamEnded() == [])
        #expect(Self.feed(&bridge, Self.close(4000)) == [.close])
        var client = WebSocketStreamBridge(role: .client, halfClose: true)
        var wire: [UInt8] = []
        WebSocketStreamBridge.encode(.close(code: 4000, reason: "idle timeout"), maskingKey: nil, into: &wire)
        _ = wire.withUnsafeBytes { client.received($0) }
        #expect(client.peerCloseReason == "close code 4000: idle timeout")
    }

    @Test func test_thePeersCloseFrame_endsItsDirection_isAnswered_andEndsTheBridge() {
        var bridge = WebSocketStreamBridge(role: .server, halfClose: true)
        #expect(Self.feed(&bridge, Self.close(1001)) == [.finishStream, .write(.close(code: 1001, reason: "")), .close])
        #expect(bridge.streamEnded() == [] && bridge.peerConnectionEnded() == [])
        var gone = WebSocketStreamBridge(role: .server, halfClose: true)
        #expect(gone.peerConnectionEnded() == [.finishStream, .close])
    }

    @Test func test_aFailedStream_isReportedWith1011_andTheClientKeepsTheReason() {
        var bridge = WebSocketStreamBridge(role: .server, halfClose: true)
        let outputs = bridge.streamFailed(reason: "upstream reset the connection")
        #expect(outputs == [.write(.close(code: 1011, reason: "upstream reset the connection"))])
        #expect(Self.feed(&bridge, Self.close(1000)) == [.close])
        #expect(bridge.peerCloseReason == nil, "a normal closure is no failure")
        var wire: [UInt8] = []
        if case .write(let frame) = outputs.first { WebSocketStreamBridge.encode(frame, maskingKey: nil, into: &wire) }
        var client = WebSocketStreamBridge(role: .client, halfClose: true)
        #expect(wire.withUnsafeBytes { client.received($0) } == [.finishStream, .write(.close(code: 1000, reason: "")), .close])
        #expect(client.peerCloseReason == "close code 1011: upstream reset the connection")
    }

    @Test func test_hostileFrames_closeWithTheirStatus_andDeliverNothingAfter() {
        let cases: [([UInt8], UInt16)] = [
            (Self.frame(.text, Array("hi".utf8)), 1003),
            ([0x82, 0x01, 0x41], 1002),  // unmasked client frame
            (Self.frame(.continuation, [1]), 1002),
            ([0xC2, 0x80] + Self.mask, 1002),  // a reserved bit
            (Self.frame(.binary) + Self.frame(.binary, [1]), 1002),  // data after the peer's end
        ]
        for (bytes, code) in cases {
            var bridge = WebSocketStreamBridge(role: .server, halfClose: true)
            let outputs = Self.feed(&bridge, bytes + Self.frame(.binary, [42]))
            #expect(outputs.last == .close)
            #expect(outputs.contains { if case .write(.close(code, _)) = $0 { true } else { false } }, "expected close code \(code) for \(bytes)")
            #expect(!Self.delivered(outputs).contains(42))
            #expect(bridge.state == .closed)
            #expect(Self.feed(&bridge, Self.frame(.binary, [1])) == [])
        }
        // A frame that claims 2^62 bytes costs nothing until they arrive, and delivers what came.
        var huge = WebSocketStreamBridge(role: .server, halfClose: false)
        let head: [UInt8] = [0x82, 0xFF, 0x40, 0, 0, 0, 0, 0, 0, 0] + Self.mask
        #expect(Self.feed(&huge, head) == [])
        #expect(Self.delivered(Self.feed(&huge, [0x01 ^ 1, 0x02 ^ 2])) == [0x01, 0x02])
        #expect(huge.bufferedByteCount == 0)
    }

    @Test func test_aHeaderWrittenApart_isTheFramesOwn_atEveryLengthForm() {
        for length in [0, 1, 125, 126, 65_535, 65_536, 200_000] {
            let payload = [UInt8](repeating: 9, count: length)
            var whole: [UInt8] = []
            WebSocketFrameEncoder.write(.binary, payload: payload, into: &whole)
            var apart: [UInt8] = []
            WebSocketFrameEncoder.writeUnmaskedHeader(.binary, length: length, into: &apart)
            #expect(apart + payload == whole, "\(length) bytes")
        }
    }

    @Test func test_theClientRole_masksWhatItWrites_andReadsTheServersUnmaskedFrames() {
        var client = WebSocketStreamBridge(role: .client, halfClose: true)
        var server = WebSocketStreamBridge(role: .server, halfClose: true)
        var wire: [UInt8] = []
        WebSocketStreamBridge.encode(.data([1, 2, 3]), maskingKey: [9, 9, 9, 9], into: &wire)
        WebSocketStreamBridge.encode(.end, maskingKey: [7, 7, 7, 7], into: &wire)
        #expect(Self.feed(&server, wire) == [.deliver([1, 2, 3]), .finishStream])
        var back: [UInt8] = []
        WebSocketStreamBridge.encode(.data([4]), maskingKey: nil, into: &back)
        WebSocketStreamBridge.encode(.end, maskingKey: nil, into: &back)
        #expect(Self.feed(&client, back) == [.deliver([4]), .finishStream])
    }
}
