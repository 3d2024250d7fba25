@testable import PicoModel
import Testing

@Suite("HTTP/1.1 response decoder and encoder")
struct HTTP1ResponseDecoderTests {
    @Test(arguments: [0, 1, 5])
    func test_lengthChunkedAndCloseDelimitedBodies(step: Int) {
        let length = HTTPTest.responseParts("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", step: step)
        #expect(length.error == nil && length.parts.count == 3 && length.parts[1] == .body(HTTPTest.body("hello")))
        let chunked = HTTPTest.responseParts("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhe\r\n3\r\nllo\r\n0\r\n\r\n", step: step)
        #expect(chunked.error == nil && chunked.parts[1] == .body(HTTPTest.body("hello")) && chunked.parts.count == 3)
        let untilClose = HTTPTest.responseParts("HTTP/1.0 200 OK\r\n\r\nhello", step: step, eof: true)
        #expect(untilClose.error == nil && untilClose.parts[1] == .body(HTTPTest.body("hello")) && untilClose.parts.last == .end(trailers: [:]))
    }

    @Test func test_noBody_afterHEAD_204_304() {
        for (text, method) in [("HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n", "HEAD"), ("HTTP/1.1 204 No Content\r\n\r\n", "GET"), ("HTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\n\r\n", "GET")] {
            let (parts, error) = HTTPTest.responseParts(text, to: method)
            #expect(error == nil && parts.count == 2 && parts.last == .end(trailers: [:]), "\(text.debugDescription)")
        }
    }

    @Test func test_headFraming_isTheLastHeadsFraming_asTheProxyRulesReadIt() throws {
        let cases: [(String, String, HTTPBodyFraming)] = [
            ("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", "GET", .length(5)),
            ("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", "HEAD", .none),
            ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "GET", .chunked),
            ("HTTP/1.0 200 OK\r\n\r\n", "GET", .untilClose),
            ("HTTP/1.1 100 Continue\r\n\r\n", "GET", .none),
        ]
        for (text, method, framing) in cases {
            var decoder = HTTP1ResponseDecoder()
            decoder.expectResponse(to: method)
            decoder.feed(Array(text.utf8))
            guard case .head(let head) = try decoder.next() else { Issue.record("no head for \(text.debugDescription)"); continue }
            #expect(decoder.headFraming == framing, "\(text.debugDescription)")
            if !head.isInterim { #expect(HTTPProxyRules.framing(ofResponse: head, requestMethod: method) == framing) }
        }
        var requests = HTTP1RequestDecoder()
        requests.feed(Array("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabcPOST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n".utf8))
        var framings: [HTTPBodyFraming] = []
        while let part = try requests.next() {
            if case .head(let head) = part {
                framings.append(requests.headFraming)
                #expect(HTTPProxyRules.framing(ofRequest: head) == requests.headFraming)
            }
        }
        #expect(framings == [.length(3), .chunked])
    }

    @Test func test_interimHeads_comeBeforeTheFinalOne() {
        let (parts, error) = HTTPTest.responseParts("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")
        let statuses = parts.compactMap { if case .head(let head) = $0 { head.status } else { nil } }
        #expect(error == nil && statuses == [100, 201] && parts.last == .end(trailers: [:]))
    }

    @Test func test_switchingProtocols_handsOverTheRest() throws {
        var decoder = HTTP1ResponseDecoder()
        decoder.expectResponse(to: "GET")
        decoder.feed(Array("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nframe".utf8))
        guard case .head(let head)? = try decoder.next() else { Issue.record("no head"); return }
        #expect(head.status == 101 && decoder.state == .upgraded)
        #expect(try decoder.next() == nil)
        #expect(Array(decoder.takeUpgradedBytes()) == Array("frame".utf8))
    }

    @Test func test_keepAlive_returnsToIdle_closeDoesNot() throws {
        var decoder = HTTP1ResponseDecoder()
        decoder.expectResponse(to: "GET")
        decoder.feed(Array("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".utf8))
        while try decoder.next() != nil {}
        #expect(decoder.state == .idle)
        decoder.expectResponse(to: "GET")
        decoder.feed(Array("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".utf8))
        while try decoder.next() != nil {}
        #expect(decoder.state == .closed)
    }

    @Test func test_malformedResponses_hint502() {
        for text in [
            "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            "HTTP/1.1 2x0 OK\r\n\r\n",
            "HTTP/1.1 099 Low\r\n\r\n",
            "HTTP/3.0 200 OK\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            "SSH-2.0-OpenSSH\r\n\r\n",
        ] {
            #expect(HTTPTest.responseParts(text).error?.statusHint == 502, "\(text.debugDescription)")
        }
        #expect(HTTPTest.responseParts("", eof: true).error?.message == "connection closed before the response")
        #expect(HTTPTest.responseParts("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc", eof: true).error?.message == "connection closed inside the body")
    }

    @Test func test_encodedHeads_decodeToThemselves() throws {
        let request = HTTPRequestHead(method: "POST", target: "/x?y=1", headers: ["Host": "h", "Transfer-Encoding": "chunked", "X-Empty": ""])
        var bytes = HTTP1Encoder.encode(request)
        HTTP1Encoder.writeChunk(Array("hello".utf8), into: &bytes)
        HTTP1Encoder.writeChunk([UInt8](), into: &bytes)
        HTTP1Encoder.writeChunk(Array(repeating: 0x61, count: 300), into: &bytes)
        HTTP1Encoder.writeLastChunk(trailers: ["X-T": "v"], into: &bytes)
        var decoder = HTTP1RequestDecoder()
        decoder.feed(bytes)
        var parts: [HTTP1RequestDecoder.Part] = []
        while let part = try decoder.next() { HTTPTest.merge(&parts, part) }
        #expect(parts == [.head(request), .body(ArraySlice(Array("hello".utf8) + Array(repeating: 0x61, count: 300))), .end(trailers: ["X-T": "v"])])

        let response = HTTPResponseHead(status: 502, headers: ["Content-Type": "application/json", "Content-Length": "0"])
        let decoded = HTTPTest.responseParts(String(decoding: HTTP1Encoder.encode(response), as: UTF8.self))
        #expect(decoded.parts.first == .head(response) && response.reason == "Bad Gateway")
    }

    @Test func test_headers_lookupIgnoresCase_andKeepsOrder() {
        var headers: HTTPHeaders = ["Connection": "keep-alive, Upgrade", "X-A": "1", "x-a": "2"]
        #expect(headers["X-A"] == ["1", "2"] && headers.first("CONNECTION") == "keep-alive, Upgrade")
        #expect(headers.tokens("connection") == ["keep-alive", "upgrade"])
        headers.replaceOrAdd(name: "X-A", value: "3")
        #expect(headers.fields.map(\.value) == ["keep-alive, Upgrade", "3"])
        headers.remove("connection")
        #expect(headers.count == 1)
        var single: HTTPHeaders = ["Host": "h", "X-Forwarded-For": "1.1.1.1", "Accept": "*/*"]
        single.replaceOrAdd(name: "x-forwarded-for", value: "1.1.1.1, 2.2.2.2")
        #expect(single.fields == [.init(name: "Host", value: "h"), .init(name: "X-Forwarded-For", value: "1.1.1.1, 2.2.2.2"), .init(name: "Accept", value: "*/*")])
        single.replaceOrAdd(name: "x-pico-forward", value: "true")
        #expect(single.fields.last == .init(name: "x-pico-forward", value: "true") && single.count == 4)
    }
}
