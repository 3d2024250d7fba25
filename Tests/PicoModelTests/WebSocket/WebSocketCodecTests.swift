@testable import PicoModel
import Testing

@Suite("WebSocket codec and handshake")
struct WebSocketCodecTests {
    static func hex(_ bytes: [UInt8]) -> String { bytes.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined() }

    @Test func test_bytesAfterThePeersClose_areDropped_soTheBufferStaysBounded() throws {
        // Found by the fuzz smoke (WebSocketStreamBridge held 88 bytes after a piece of 35): a
        // peer that keeps sending after its close frame grew the decoder's buffer for ever.
        var decoder = WebSocketFrameDecoder(role: .client)
        var bytes: [UInt8] = []
        WebSocketFrameEncoder.writeClose(code: 1000, reason: "bye", into: &bytes)
        bytes.withUnsafeBytes { decoder.feed($0) }
        #expect(try decoder.next() == .close(code: 1000, reason: "bye"))
        for _ in 0..<100 { [UInt8](repeating: 0x30, count: 35).withUnsafeBytes { decoder.feed($0) } }
        #expect(decoder.bufferedByteCount == 0)
        #expect(try decoder.next() == nil)
    }

    @Test func test_sha1_knownVectors() {
        #expect(Self.hex(SHA1.digest(Array("abc".utf8))) == "a9993e364706816aba3e25717850c26c9cd0d89d")
        #expect(Self.hex(SHA1.digest([UInt8]())) == "da39a3ee5e6b4b0d3255bfef95601890afd80709")
        let long = Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)
        #expect(Self.hex(SHA1.digest(long)) == "84983e441c3bd26ebaae4aa1f95129e5e54670f1")
        #expect(Self.hex(SHA1.digest(Array(repeating: 0x61, count: 1_000_000))) == "34aa973cd4c4daa4f61eeb2bdbad27316534016f")
    }

    @Test func test_base64_roundTrips_andRejectsGarbage() {
        #expect(Base64.encode(Array("f".utf8)) == "Zg==" && Base64.encode(Array("fo".utf8)) == "Zm8=" && Base64.encode(Array("foobar".utf8)) == "Zm9vYmFy")
        for length in 0..<40 {
            let bytes = (0..<length).map { UInt8(truncatingIfNeeded: $0 * 37 + 11) }
            #expect(Base64.decode(Base64.encode(bytes)) == bytes)
        }
        #expect(Base64.decode("Zg=") == nil && Base64.decode("Z===") == nil && Base64.decode("Zg==Zg==") == nil && Base64.decode("Zm9*") == nil)
    }

    @Test func test_handshake_rfc6455Example_andRefusals() throws {
        #expect(WebSocketHandshake.acceptValue(forKey: "dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        let request = WebSocketHandshake.request(target: "/pico/v1/upstream/my-endpoint", host: "pico:8001", key: "dGhlIHNhbXBsZSBub25jZQ==")
        #expect(try WebSocketHandshake.key(of: request).get() == "dGhlIHNhbXBsZSBub25jZQ==")
        let response = WebSocketHandshake.switchingProtocols(key: "dGhlIHNhbXBsZSBub25jZQ==")
        #expect(WebSocketHandshake.accepts(response, key: "dGhlIHNhbXBsZSBub25jZQ=="))
        #expect(!WebSocketHandshake.accepts(response, key: "AAAAAAAAAAAAAAAAAAAAAA=="))
        var noKey = request
        noKey.headers.remove("sec-websocket-key")
        #expect(WebSocketHandshake.key(of: noKey) == .failure(.init(status: 400, message: "missing or malformed Sec-WebSocket-Key")))
        var plain = request
        plain.headers.remove("upgrade")
        if case .failure(let refusal) = WebSocketHandshake.key(of: plain) { #expect(refusal.status == 426) } else { Issue.record("accepted a plain GET") }
        var post = request
        post.method = "POST"
        if case .failure(let refusal) = WebSocketHandshake.key(of: post) { #expect(refusal.status == 405) } else { Issue.record("accepted a POST") }
    }

    static func decodeAll(_ bytes: [UInt8], role: WebSocketFrameDecoder.Role, step: Int) -> (data: [UInt8], events: [WebSocketFrameDecoder.Event], error: WebSocketProtocolError?) {
        var decoder = WebSocketFrameDecoder(role: role)
        var data: [UInt8] = []
        var events: [WebSocketFrameDecoder.Event] = []
        var start = 0
        repeat {
            let end = min(bytes.count, start + max(1, step == 0 ? bytes.count : step))
            decoder.feed(bytes[start..<end])
            start = end
            do {
                while let event = try decoder.next() {
                    if case .data(let piece) = event { data += piece } else { events.append(event) }
                }
            } catch {
                return (data, events, error)
            }
        } while start < bytes.count
        return (data, events, nil)
    }

    @Test(arguments: [0, 1, 3, 1_000])
    func test_maskedFragmentedMessages_withControlFramesBetween_decodeToTheStream(step: Int) {
        let key: [UInt8] = [0x37, 0xFA, 0x21, 0x3D]
        let big = (0..<70_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        var bytes: [UInt8] = []
        WebSocketFrameEncoder.write(.binary, payload: Array("Hel".utf8), fin: false, maskingKey: key, into: &bytes)
        WebSocketFrameEncoder.write(.ping, payload: Array("hi".utf8), maskingKey: key, into: &bytes)
        WebSocketFrameEncoder.write(.continuation, payload: Array("lo".utf8), fin: true, maskingKey: key, into: &bytes)
        WebSocketFrameEncoder.write(.binary, payload: [UInt8](), maskingKey: key, into: &bytes)
        WebSocketFrameEncoder.write(.binary, payload: Array(repeating: 0x41, count: 300), maskingKey: key, into: &bytes)
        WebSocketFrameEncoder.write(.binary, payload: big, maskingKey: key, into: &bytes)
        WebSocketFrameEncoder.writeClose(code: 1000, reason: "bye", maskingKey: key, into: &bytes)
        let (data, events, error) = Self.decodeAll(bytes, role: .server, step: step)
        #expect(error == nil)
        #expect(data == Array("Hello".utf8) + Array(repeating: 0x41, count: 300) + big)
        // The empty message in between is an event of its own (the TCP route's end of direction).
        #expect(events == [.ping(Array("hi".utf8)), .emptyMessage, .close(code: 1000, reason: "bye")])
        // The RFC 6455 §5.7 example: a masked "Hello" from a client.
        let example: [UInt8] = [0x81, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58]
        var encoded: [UInt8] = []
        WebSocketFrameEncoder.write(.text, payload: Array("Hello".utf8), maskingKey: key, into: &encoded)
        #expect(encoded == example)
    }

    @Test func test_protocolViolations_areRefused_withTheirCloseCodes() {
        let key: [UInt8] = [1, 2, 3, 4]
        func frame(_ build: (inout [UInt8]) -> Void) -> [UInt8] {
            var bytes: [UInt8] = []
            build(&bytes)
            return bytes
        }
        let cases: [([UInt8], WebSocketFrameDecoder.Role, UInt16, String)] = [
            (frame { WebSocketFrameEncoder.write(.binary, payload: [1], into: &$0) }, .server, 1002, "unmasked frame from a client"),
            (frame { WebSocketFrameEncoder.write(.binary, payload: [1], maskingKey: key, into: &$0) }, .client, 1002, "masked frame from a server"),
            (frame { WebSocketFrameEncoder.write(.text, payload: [0x41], maskingKey: key, into: &$0) }, .server, 1003, "text message"),
            ([0xC2, 0x80] + key, .server, 1002, "reserved bits"),
            ([0x83, 0x80] + key, .server, 1002, "unknown opcode 3"),
            ([0x09, 0x80] + key, .server, 1002, "control frame fragmented"),
            ([0x89, 0xFE, 0x00, 0x7E] + key, .server, 1002, "longer than 125 bytes"),
            ([0x82, 0xFE, 0x00, 0x10] + key, .server, 1002, "payload length not in its shortest form"),
            ([0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0] + key, .server, 1002, "payload length not in its shortest form"),
            ([0x80, 0x80] + key, .server, 1002, "continuation frame without a message"),
            ([0x02, 0x80] + key + [0x82, 0x80] + key, .server, 1002, "new message before the previous one ended"),
            ([0x88, 0x81] + key + [0x01], .server, 1002, "one-byte body"),
        ] + [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, UInt16.max].map { (code: UInt16) in
            (frame { WebSocketFrameEncoder.write(.close, payload: [UInt8(code >> 8), UInt8(code & 0xFF)], maskingKey: key, into: &$0) },
             .server, 1002, "close code \(code) is not allowed on the wire")
        }
        for (bytes, role, code, message) in cases {
            let error = Self.decodeAll(bytes, role: role, step: 0).error
            #expect(error?.closeCode == code && error?.message.contains(message) == true, "\(bytes): \(String(describing: error))")
        }
    }

    @Test func test_hostileBytes_neverTrap() {
        var rng = SplitMix64(seed: 6455)
        for _ in 0..<3_000 {
            let bytes = (0..<rng.index(below: 64)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            for role in [WebSocketFrameDecoder.Role.server, .client] {
                var decoder = WebSocketFrameDecoder(role: role)
                decoder.feed(bytes)
                while let event = try? decoder.next() { _ = event }
                #expect(decoder.bufferedByteCount <= bytes.count)
            }
        }
    }
}
