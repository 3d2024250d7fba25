// The HTTP/1.1 request and response decoders and the chunked/length/close-delimited body decoder,
// fed in pieces of fuzzer-chosen sizes.
import PicoModel

/// Default limits, or (when the control byte's high bit is set) small ones, so that every limit
/// is reachable with short inputs.
func httpLimits(_ control: UInt8) -> HTTPDecoderLimits {
    var limits = HTTPDecoderLimits()
    if control & 0x80 != 0 {
        limits.maxStartLineBytes = 64
        limits.maxHeadBytes = 256
        limits.maxHeaderCount = 4
        limits.maxChunkLineBytes = 16
        limits.maxLeadingEmptyLines = 1
    }
    return limits
}

/// Follows one message's body: the bytes must match its framing.
struct BodyTracker {
    var framing: HTTPBodyFraming = .none
    var received: UInt64 = 0

    mutating func start(_ framing: HTTPBodyFraming) {
        self.framing = framing
        self.received = 0
    }

    mutating func body(_ bytes: ArraySlice<UInt8>) {
        require(!bytes.isEmpty, "an empty body piece")
        self.received += UInt64(bytes.count)
        if case .length(let length) = self.framing { require(self.received <= length, "\(self.received) body bytes for Content-Length \(length)") }
        if case .none = self.framing { require(false, "body bytes for a message without a body") }
    }

    func end() {
        if case .length(let length) = self.framing { require(self.received == length, "ended after \(self.received) of \(length) body bytes") }
    }
}

/// Input: a control byte (piece sizes; bit 2: accept an upgrade; bit 7: small limits), then the
/// bytes a client sends on one connection. Each decoded head must survive re-encoding.
enum HTTPRequestHarness {
    static func run(_ bytes: FuzzBytes) {
        var input = bytes
        let control = input.byte()
        let data = input.rest()
        let limits = httpLimits(control)
        var decoder = HTTP1RequestDecoder(limits: limits)
        var tracker = BodyTracker()
        var fed = 0
        for piece in pieces(of: data, seed: control) {
            decoder.feed(piece)
            fed += piece.count
            guard self.drain(&decoder, &tracker, control: control) else { return }
            require(decoder.bufferedByteCount <= fed, "buffered \(decoder.bufferedByteCount) of \(fed) bytes")
        }
        decoder.feedEOF()
        _ = self.drain(&decoder, &tracker, control: control)
    }

    /// Takes every part available; false once the decoder failed (it must stay failed).
    static func drain(_ decoder: inout HTTP1RequestDecoder, _ tracker: inout BodyTracker, control: UInt8) -> Bool {
        var parts = 0
        while true {
            parts += 1
            require(parts < 1_000_000, "next() does not stop")
            let part: HTTP1RequestDecoder.Part?
            do {
                part = try decoder.next()
            } catch {
                require((try? decoder.next()) == nil, "a failed decoder produced a part")
                if case .failed = decoder.state {} else { require(false, "not failed after an error") }
                return false
            }
            guard let part else {
                if decoder.state == .upgradePending {
                    if control & 4 != 0 {
                        _ = decoder.takeUpgradedBytes()
                        return false
                    }
                    decoder.refuseUpgrade()
                    continue
                }
                return true
            }
            switch part {
            case .head(let head):
                tracker.start(decoder.headFraming)
                var again = HTTP1RequestDecoder(limits: HTTPDecoderLimits())
                again.feed(HTTP1Encoder.encode(head))
                let reparsed = try? again.next()
                require(reparsed == .head(head), "request head does not survive re-encoding: \(head)")
            case .body(let bytes):
                tracker.body(bytes)
            case .end:
                tracker.end()
            }
        }
    }

    static func seeds() -> [(name: String, bytes: [UInt8])] {
        func text(_ string: String) -> [UInt8] { Array(string.utf8) }
        var upload: [UInt8] = HTTP1Encoder.encode(HTTPRequestHead(
            method: "POST", target: "/upload", version: .http1_1, headers: ["Host": "svc", "Transfer-Encoding": "chunked", "X-Pico-Endpoint": "svc"]))
        HTTP1Encoder.writeChunk(Array("hello".utf8), into: &upload)
        HTTP1Encoder.writeChunk(Array(repeating: 0x41, count: 40), into: &upload)
        HTTP1Encoder.writeLastChunk(trailers: ["Checksum": "abc"], into: &upload)
        let get = HTTP1Encoder.encode(HTTPRequestHead(method: "GET", target: "/a?b=c", version: .http1_1, headers: ["Host": "example.com", "Accept": "*/*"]))
        let post = HTTP1Encoder.encode(HTTPRequestHead(method: "POST", target: "/p", version: .http1_1, headers: ["Host": "h", "Content-Length": "5"])) + text("12345")
        let upgrade = HTTP1Encoder.encode(WebSocketHandshake.request(target: "/pico/v1/upstream/svc", host: "node", key: "dGhlIHNhbXBsZSBub25jZQ=="))
            + [0x82, 0x80, 1, 2, 3, 4]
        var seeds: [(name: String, bytes: [UInt8])] = []
        seeds += withCuttings("get", get)
        seeds += withCuttings("pipelined", get + post + get)
        seeds += withCuttings("chunked", upload)
        seeds.append(("upgrade-accepted", [4] + upgrade))
        seeds.append(("upgrade-refused", [0] + upgrade + get))
        seeds.append(("connect", [0] + text("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")))
        seeds.append(("http10", [0] + text("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET / HTTP/1.0\r\n\r\n")))
        seeds.append(("close", [0] + text("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nGET / HTTP/1.1\r\n")))
        seeds.append(("leading-empty-lines", [0] + text("\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n")))
        seeds.append(("content-length-list", [0] + text("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\nabc")))
        seeds.append(("content-length-differ", [0] + text("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabc")))
        seeds.append(("te-and-cl", [0] + text("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n")))
        seeds.append(("bare-lf", [0] + text("GET / HTTP/1.1\nHost: a\n\n")))
        seeds.append(("obs-fold", [0] + text("GET / HTTP/1.1\r\nHost: a\r\nX: b\r\n c\r\n\r\n")))
        seeds.append(("small-limits", [0x80] + text("GET /" + String(repeating: "a", count: 80) + " HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n")))
        seeds.append(("absolute-form", [0] + text("GET http://example.com/x HTTP/1.1\r\nHost: example.com\r\n\r\n")))
        seeds.append(("huge-chunk", [0] + text("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFF\r\nab")))
        return seeds
    }
}

/// Input: a control byte (piece sizes; bits 4-5: the request method; bit 7: small limits), then
/// the bytes a server answers with. Responses follow one another (keep-alive) until the
/// connection closes or is upgraded.
enum HTTPResponseHarness {
    static let methods = ["GET", "HEAD", "CONNECT", "POST"]

    static func run(_ bytes: FuzzBytes) {
        var input = bytes
        let control = input.byte()
        let method = self.methods[Int(control >> 4) & 3]
        var decoder = HTTP1ResponseDecoder(limits: httpLimits(control))
        decoder.expectResponse(to: method)
        var tracker = BodyTracker()
        var fed = 0
        for piece in pieces(of: input.rest(), seed: control) {
            decoder.feed(piece)
            fed += piece.count
            guard self.drain(&decoder, &tracker, method: method) else { return }
            require(decoder.bufferedByteCount <= fed, "buffered \(decoder.bufferedByteCount) of \(fed) bytes")
        }
        decoder.feedEOF()
        _ = self.drain(&decoder, &tracker, method: method)
    }

    static func drain(_ decoder: inout HTTP1ResponseDecoder, _ tracker: inout BodyTracker, method: String) -> Bool {
        var parts = 0
        while true {
            parts += 1
            require(parts < 1_000_000, "next() does not stop")
            let part: HTTP1ResponseDecoder.Part?
            do {
                part = try decoder.next()
            } catch {
                require((try? decoder.next()) == nil, "a failed decoder produced a part")
                return false
            }
            guard let part else {
                if decoder.state == .upgraded {
                    _ = decoder.takeUpgradedBytes()
                    return false
                }
                if decoder.state == .idle { decoder.expectResponse(to: method) }
                return true
            }
            switch part {
            case .head(let head):
                tracker.start(decoder.headFraming)
                var again = HTTP1ResponseDecoder(limits: HTTPDecoderLimits())
                again.expectResponse(to: method)
                again.feed(HTTP1Encoder.encode(head))
                let reparsed = try? again.next()
                require(reparsed == .head(head), "response head does not survive re-encoding: \(head)")
            case .body(let bytes):
                tracker.body(bytes)
            case .end:
                tracker.end()
                if decoder.state == .idle { decoder.expectResponse(to: method) }
            }
        }
    }

    static func seeds() -> [(name: String, bytes: [UInt8])] {
        func text(_ string: String) -> [UInt8] { Array(string.utf8) }
        let ok = HTTP1Encoder.encode(HTTPResponseHead(version: .http1_1, status: 200, reason: "OK", headers: ["Content-Length": "2", "Content-Type": "text/plain"])) + text("hi")
        var chunked = HTTP1Encoder.encode(HTTPResponseHead(version: .http1_1, status: 200, reason: "OK", headers: ["Transfer-Encoding": "chunked"]))
        HTTP1Encoder.writeChunk(Array("part one".utf8), into: &chunked)
        HTTP1Encoder.writeLastChunk(trailers: ["Server-Timing": "x"], into: &chunked)
        let switching = HTTP1Encoder.encode(WebSocketHandshake.switchingProtocols(key: "dGhlIHNhbXBsZSBub25jZQ==")) + [0x82, 0x01, 0x41]
        var seeds: [(name: String, bytes: [UInt8])] = []
        seeds += withCuttings("ok", ok)
        seeds += withCuttings("chunked", chunked + ok)
        seeds.append(("head-method", [0x10] + text("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n")))
        seeds.append(("switching", [0] + switching))
        seeds.append(("connect-ok", [0x20] + text("HTTP/1.1 200 Connection established\r\n\r\nraw bytes")))
        seeds.append(("continue", [0x30] + text("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")))
        seeds.append(("until-close", [0] + text("HTTP/1.1 200 OK\r\n\r\nbody until the end")))
        seeds.append(("http10", [0] + text("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx")))
        seeds.append(("not-modified", [0] + text("HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n")))
        seeds.append(("bad-status", [0] + text("HTTP/1.1 99 Odd\r\n\r\n")))
        seeds.append(("small-limits", [0x80] + text("HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\n\r\n")))
        return seeds
    }
}

/// Input: a control byte (piece sizes; bits 4-5: chunked, a length, until close or none; bit 7:
/// small limits), a length (8 bytes) for length framing, then the body bytes. What a chunked body
/// decodes to must decode to the same body and trailers once re-encoded.
enum ChunkedBodyHarness {
    static func run(_ bytes: FuzzBytes) {
        var input = bytes
        let control = input.byte()
        let length = (0..<8).reduce(UInt64(0)) { value, _ in value << 8 | UInt64(input.byte()) }
        let framing: HTTPBodyFraming = switch (control >> 4) & 3 {
        case 0: .chunked
        case 1: .length(length)
        case 2: .untilClose
        default: .none
        }
        let limits = httpLimits(control)
        guard let (body, trailers) = self.decode(Array(input.rest()), framing: framing, limits: limits, cut: control) else { return }
        if case .length(let length) = framing { require(UInt64(body.count) == length, "\(body.count) bytes for length \(length)") }
        guard framing == .chunked else { return }
        var encoded: [UInt8] = []
        if !body.isEmpty { HTTP1Encoder.writeChunk(body, into: &encoded) }
        HTTP1Encoder.writeLastChunk(trailers: trailers, into: &encoded)
        let again = self.decode(encoded, framing: .chunked, limits: HTTPDecoderLimits(), cut: 0)
        require(again?.body == body && again?.trailers == trailers, "chunked body does not survive re-encoding")
    }

    /// The body and trailers, or nil when the decoder refused the bytes or wants more.
    static func decode(_ bytes: [UInt8], framing: HTTPBodyFraming, limits: HTTPDecoderLimits, cut: UInt8) -> (body: [UInt8], trailers: HTTPHeaders)? {
        var decoder = HTTP1BodyDecoder(framing, errorStatus: 400)
        var buffer = StreamBuffer()
        var body: [UInt8] = []
        let all = bytes[...]
        var chunks = pieces(of: all, seed: cut)
        chunks.append([])
        for (index, piece) in chunks.enumerated() {
            buffer.append(piece)
            let eof = index == chunks.count - 1
            while true {
                let output: HTTP1BodyDecoder.Output?
                do {
                    output = try decoder.next(&buffer, limits: limits, eof: eof)
                } catch {
                    // A request body's errors hint 400, or 431 for trailers past the head limit.
                    require(error.statusHint == 400 || error.statusHint == 431, "body error hints \(error.statusHint)")
                    return nil
                }
                guard let output else { break }
                switch output {
                case .body(let bytes):
                    require(!bytes.isEmpty, "an empty body piece")
                    body += bytes
                case .end(let trailers):
                    require(decoder.state == .done, "ended in \(decoder.state)")
                    return (body, trailers)
                }
            }
            require(buffer.count <= bytes.count, "buffer holds more than was fed")
        }
        return nil
    }

    static func seeds() -> [(name: String, bytes: [UInt8])] {
        let noLength = [UInt8](repeating: 0, count: 8)
        var chunked: [UInt8] = []
        HTTP1Encoder.writeChunk(Array("Wikipedia".utf8), into: &chunked)
        HTTP1Encoder.writeChunk(Array(repeating: 0x2E, count: 300), into: &chunked)
        HTTP1Encoder.writeLastChunk(trailers: ["Expires": "never", "X-Sum": "1"], into: &chunked)
        var seeds: [(name: String, bytes: [UInt8])] = []
        for (label, cut) in [("whole", UInt8(0)), ("bytewise", 1), ("runs", 2)] {
            seeds.append(("chunked-\(label)", [cut] + noLength + chunked))
        }
        seeds.append(("chunk-extension", [0] + noLength + Array("5;name=value\r\nhello\r\n0\r\n\r\n".utf8)))
        seeds.append(("chunk-max", [0] + noLength + Array("FFFFFFFFFFFFFFFF\r\nab\r\n".utf8)))
        seeds.append(("chunk-bare-lf", [0] + noLength + Array("5\nhello\n0\n\n".utf8)))
        seeds.append(("trailer-content-length", [0] + noLength + Array("0\r\nContent-Length: 5\r\n\r\n".utf8)))
        seeds.append(("small-limits", [0x80] + noLength + Array("00000000000000000001\r\na\r\n0\r\n\r\n".utf8)))
        seeds.append(("length", [0x10, 0, 0, 0, 0, 0, 0, 0, 5] + Array("hello".utf8)))
        seeds.append(("length-max", [0x11, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF] + Array("hello".utf8)))
        seeds.append(("until-close", [0x22] + noLength + Array("all of it".utf8)))
        seeds.append(("none", [0x30] + noLength + Array("x".utf8)))
        return seeds
    }
}
