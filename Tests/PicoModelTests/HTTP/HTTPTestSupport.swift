@testable import PicoModel

/// Helpers shared by the HTTP codec tests.
enum HTTPTest {
    /// Every part the decoder yields for `text` fed in pieces of `step` bytes (0: all at once),
    /// adjacent body pieces merged; the error, if one was thrown, ends the list.
    static func requestParts(_ text: String, step: Int = 0, eof: Bool = false, limits: HTTPDecoderLimits = HTTPDecoderLimits()) -> (parts: [HTTP1RequestDecoder.Part], error: HTTPProtocolError?) {
        var decoder = HTTP1RequestDecoder(limits: limits)
        return self.drain(Array(text.utf8), step: step, eof: eof, feed: { decoder.feed($0) }, finish: { decoder.feedEOF() }, next: { () throws(HTTPProtocolError) in try decoder.next() }, merge: Self.merge)
    }

    /// The same for a response to `method`.
    static func responseParts(_ text: String, to method: String = "GET", step: Int = 0, eof: Bool = false) -> (parts: [HTTP1ResponseDecoder.Part], error: HTTPProtocolError?) {
        var decoder = HTTP1ResponseDecoder()
        decoder.expectResponse(to: method)
        return self.drain(Array(text.utf8), step: step, eof: eof, feed: { decoder.feed($0) }, finish: { decoder.feedEOF() }, next: { () throws(HTTPProtocolError) in try decoder.next() }, merge: Self.merge)
    }

    static func drain<Part>(
        _ bytes: [UInt8], step: Int, eof: Bool,
        feed: (ArraySlice<UInt8>) -> Void, finish: () -> Void,
        next: () throws(HTTPProtocolError) -> Part?, merge: (inout [Part], Part) -> Void
    ) -> (parts: [Part], error: HTTPProtocolError?) {
        var parts: [Part] = []
        let size = step == 0 ? max(1, bytes.count) : step
        var start = 0
        do {
            repeat {
                let end = min(bytes.count, start + size)
                feed(bytes[start..<end])
                start = end
                if start == bytes.count, eof { finish() }
                while let part = try next() { merge(&parts, part) }
            } while start < bytes.count
        } catch {
            return (parts, error)
        }
        return (parts, nil)
    }

    /// Appends `part`, merging adjacent body pieces.
    static func merge<Head>(_ parts: inout [HTTPMessagePart<Head>], _ part: HTTPMessagePart<Head>) {
        if case .body(let more) = part, case .body(let previous)? = parts.last {
            parts[parts.count - 1] = .body(ArraySlice(Array(previous) + Array(more)))
        } else {
            parts.append(part)
        }
    }

    static func body(_ text: String) -> ArraySlice<UInt8> { ArraySlice(Array(text.utf8)) }
}
