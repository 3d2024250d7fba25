/// Which body framing a head announces (RFC 9112 §6.1–§6.3), refusing every ambiguous
/// combination a smuggling attack relies on.
enum HTTP1Framing {
    /// A request's body framing. `Transfer-Encoding` must be exactly `chunked` (anything else is
    /// 501, as RFC 9112 §6.1 advises), may not come with `Content-Length`, and is refused in
    /// HTTP/1.0; `Content-Length` values must all agree.
    static func request(_ head: HTTPRequestHead, offset: Int) throws(HTTPProtocolError) -> HTTPBodyFraming {
        let hasTransferEncoding = head.headers.contains("transfer-encoding")
        let length = try Self.contentLength(head.headers, status: 400, offset: offset)
        if hasTransferEncoding {
            let codings = head.headers.tokens("transfer-encoding")
            guard head.version >= .http1_1 else {
                throw HTTPProtocolError(statusHint: 400, "Transfer-Encoding in an HTTP/1.0 request", offset: offset)
            }
            guard length == nil else {
                throw HTTPProtocolError(statusHint: 400, "both Content-Length and Transfer-Encoding", offset: offset)
            }
            guard codings == ["chunked"] else {
                throw HTTPProtocolError(statusHint: 501, "unsupported Transfer-Encoding '\(head.headers["transfer-encoding"].joined(separator: ", "))'", offset: offset)
            }
            return .chunked
        }
        return length.map { .length($0) } ?? .none
    }

    /// A response's body framing, given the request's method. No body after HEAD, for 1xx, 204
    /// and 304, and none (the connection becomes a tunnel) for 101 and a 2xx to CONNECT.
    static func response(_ head: HTTPResponseHead, requestMethod: String, offset: Int) throws(HTTPProtocolError) -> HTTPBodyFraming {
        if requestMethod == "HEAD" || (100..<200).contains(head.status) || head.status == 204 || head.status == 304 { return .none }
        if requestMethod == "CONNECT", (200..<300).contains(head.status) { return .none }
        let length = try Self.contentLength(head.headers, status: 502, offset: offset)
        if head.headers.contains("transfer-encoding") {
            guard length == nil else {
                throw HTTPProtocolError(statusHint: 502, "both Content-Length and Transfer-Encoding", offset: offset)
            }
            return head.headers.tokens("transfer-encoding").last == "chunked" && head.version >= .http1_1 ? .chunked : .untilClose
        }
        return length.map { .length($0) } ?? .untilClose
    }

    /// The `Content-Length`, nil when absent. Every value (and every element of a comma list)
    /// must be the same run of digits that fits 63 bits.
    static func contentLength(_ headers: HTTPHeaders, status: Int, offset: Int) throws(HTTPProtocolError) -> UInt64? {
        // Every comma-separated element of every Content-Length field must equal the first
        // (compared as text); the first must be 1 to 18 digits. Read in place: this runs for
        // every proxied request and response.
        var first: String?
        var conflicting = false
        for field in headers.fields where HTTPHeaders.sameName(field.name, "content-length") {
            var value = field.value
            value.withUTF8 { bytes in
                HTTPHeaders.forEachElement(of: bytes) { element in
                    if let first {
                        if !first.utf8.elementsEqual(element) { conflicting = true }
                    } else {
                        first = String(decoding: element, as: UTF8.self)
                    }
                    return true
                }
            }
        }
        guard let first else { return nil }
        guard !conflicting else {
            throw HTTPProtocolError(statusHint: status, "conflicting Content-Length values", offset: offset)
        }
        guard !first.isEmpty, first.utf8.count <= 18, first.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let length = UInt64(first) else {
            throw HTTPProtocolError(statusHint: status, "invalid Content-Length '\(first)'", offset: offset)
        }
        return length
    }
}
