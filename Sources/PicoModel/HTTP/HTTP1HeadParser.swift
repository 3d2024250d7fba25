/// Strict parsing of HTTP/1.1 start lines and field lines (RFC 9112 §3, §4, §5). Pure functions
/// over the bytes of one head; the decoders find the head's end and call these. Anything a
/// lenient parser might read two ways (bare CR or LF, whitespace before a colon, obs-fold,
/// control bytes, a non-token name) is refused: a proxy that reads a message differently from the
/// server behind it is how requests are smuggled.
///
/// The parser works on the head's bytes in place (one pass to check the line breaks, one to read
/// the lines) and makes a `String` only for each method, target, reason, name and value it
/// returns: no per-line arrays or slices, since every proxied request parses two heads.
enum HTTP1HeadParser {
    /// A head split into its start line and its field lines: byte ranges into the head.
    struct Lines {
        /// The start line (the whole head when it has no field lines).
        var start: Range<Int>
        /// Where the first field line begins (`nil` when there is none).
        var fieldsFrom: Int?
    }

    /// Checks that CR and LF appear only as CRLF pairs, and finds the start line. `offset` is
    /// the head's connection offset (for errors).
    static func lines(_ head: UnsafeBufferPointer<UInt8>, offset: Int) throws(HTTPProtocolError) -> Lines {
        var index = 0
        var firstBreak: Int?
        while index < head.count {
            let byte = head[index]
            if byte == 0x0D || byte == 0x0A {
                guard byte == 0x0D, index + 1 < head.count, head[index + 1] == 0x0A else {
                    throw HTTPProtocolError(statusHint: 400, "bare \(byte == 0x0D ? "CR" : "LF") in the message head", offset: offset + index)
                }
                if firstBreak == nil { firstBreak = index }
                index += 2
                continue
            }
            index += 1
        }
        guard let firstBreak else { return Lines(start: 0..<head.count, fieldsFrom: nil) }
        return Lines(start: 0..<firstBreak, fieldsFrom: firstBreak + 2)
    }

    /// Parses `method SP request-target SP HTTP-version` in `line` (of a head at `offset`).
    static func requestLine(_ head: UnsafeBufferPointer<UInt8>, _ line: Range<Int>, offset: Int) throws(HTTPProtocolError) -> (method: String, target: String, version: HTTPVersion) {
        let lineOffset = offset + line.lowerBound
        guard let firstSpace = Self.index(of: 0x20, in: head, line),
              let secondSpace = Self.index(of: 0x20, in: head, (firstSpace + 1)..<line.upperBound),
              Self.index(of: 0x20, in: head, (secondSpace + 1)..<line.upperBound) == nil else {
            throw HTTPProtocolError(statusHint: 400, "malformed request line (want METHOD SP TARGET SP VERSION)", offset: lineOffset)
        }
        let method = line.lowerBound..<firstSpace
        let target = (firstSpace + 1)..<secondSpace
        guard !method.isEmpty, method.allSatisfy({ Self.isTokenByte(head[$0]) }) else {
            throw HTTPProtocolError(statusHint: 400, "malformed method", offset: lineOffset)
        }
        guard !target.isEmpty, target.allSatisfy({ head[$0] > 0x20 && head[$0] < 0x7F }) else {
            throw HTTPProtocolError(statusHint: 400, "malformed request target", offset: lineOffset + method.count + 1)
        }
        let versionOffset = lineOffset + method.count + target.count + 2
        let version = try Self.version(head, (secondSpace + 1)..<line.upperBound, offset: versionOffset, unsupportedStatus: 505)
        return (Self.ascii(head, method), Self.ascii(head, target), version)
    }

    /// Parses `HTTP-version SP status-code SP [reason-phrase]` in `line` (of a head at `offset`).
    static func statusLine(_ head: UnsafeBufferPointer<UInt8>, _ line: Range<Int>, offset: Int) throws(HTTPProtocolError) -> (version: HTTPVersion, status: Int, reason: String) {
        let lineOffset = offset + line.lowerBound
        guard let firstSpace = Self.index(of: 0x20, in: head, line) else {
            throw HTTPProtocolError(statusHint: 502, "malformed status line", offset: lineOffset)
        }
        let version = try Self.version(head, line.lowerBound..<firstSpace, offset: lineOffset, unsupportedStatus: 502)
        let rest = (firstSpace + 1)..<line.upperBound
        let codeEnd = min(rest.lowerBound + 3, rest.upperBound)
        guard codeEnd - rest.lowerBound == 3, (rest.lowerBound..<codeEnd).allSatisfy({ head[$0] >= 0x30 && head[$0] <= 0x39 }),
              rest.count == 3 || head[codeEnd] == 0x20 else {
            throw HTTPProtocolError(statusHint: 502, "malformed status code", offset: lineOffset + (firstSpace - line.lowerBound) + 1)
        }
        let status = (rest.lowerBound..<codeEnd).reduce(0) { $0 * 10 + Int(head[$1] - 0x30) }
        guard status >= 100 else { throw HTTPProtocolError(statusHint: 502, "status code below 100", offset: lineOffset) }
        let reason = rest.count > 4 ? (rest.lowerBound + 4)..<rest.upperBound : rest.upperBound..<rest.upperBound
        guard reason.allSatisfy({ head[$0] == 0x09 || head[$0] >= 0x20 && head[$0] != 0x7F }) else {
            throw HTTPProtocolError(statusHint: 502, "control byte in the reason phrase", offset: lineOffset)
        }
        return (version, status, String(decoding: UnsafeBufferPointer(rebasing: head[reason]), as: UTF8.self))
    }

    /// Parses the field lines from `start` to the end of `head` (whose line breaks `lines`
    /// checked), at most `maxCount` of them.
    static func fields(_ head: UnsafeBufferPointer<UInt8>, from start: Int?, offset: Int, maxCount: Int, status: Int) throws(HTTPProtocolError) -> HTTPHeaders {
        guard let start else { return HTTPHeaders() }
        var count = 1
        for index in start..<head.count where head[index] == 0x0D { count += 1 }
        guard count <= maxCount else {
            throw HTTPProtocolError(statusHint: 431, "more than \(maxCount) header fields", offset: offset + start)
        }
        var fields: [HTTPHeaders.Field] = []
        fields.reserveCapacity(count)
        var lineStart = start
        while true {
            let lineEnd = Self.index(of: 0x0D, in: head, lineStart..<head.count) ?? head.count
            fields.append(try Self.field(head, lineStart..<lineEnd, offset: offset, status: status))
            guard lineEnd < head.count else { break }
            lineStart = lineEnd + 2
        }
        return HTTPHeaders(fields)
    }

    /// A section of field lines only (a trailer section), as `fields`.
    static func fields(_ section: ArraySlice<UInt8>, offset: Int, maxCount: Int, status: Int) throws(HTTPProtocolError) -> HTTPHeaders {
        try section.withUnsafeBufferPointer { (head: UnsafeBufferPointer<UInt8>) throws(HTTPProtocolError) -> HTTPHeaders in
            _ = try Self.lines(head, offset: offset)
            return try Self.fields(head, from: 0, offset: offset, maxCount: maxCount, status: status)
        }
    }

    /// Parses `field-name ":" OWS field-value OWS` in `line` (of a head at `offset`).
    static func field(_ head: UnsafeBufferPointer<UInt8>, _ line: Range<Int>, offset: Int, status: Int) throws(HTTPProtocolError) -> HTTPHeaders.Field {
        let lineOffset = offset + line.lowerBound
        if let first = line.first, head[first] == 0x20 || head[first] == 0x09 {
            throw HTTPProtocolError(statusHint: status, "obsolete line folding in a header field", offset: lineOffset)
        }
        guard let colon = Self.index(of: 0x3A, in: head, line) else {
            throw HTTPProtocolError(statusHint: status, "header line without a colon", offset: lineOffset)
        }
        let name = line.lowerBound..<colon
        guard !name.isEmpty, name.allSatisfy({ Self.isTokenByte(head[$0]) }) else {
            throw HTTPProtocolError(statusHint: status, "malformed header name (whitespace or a non-token byte)", offset: lineOffset)
        }
        var low = colon + 1
        var high = line.upperBound
        while low < high, head[low] == 0x20 || head[low] == 0x09 { low += 1 }
        while high > low, head[high - 1] == 0x20 || head[high - 1] == 0x09 { high -= 1 }
        var ascii = true
        for index in low..<high {
            let byte = head[index]
            if (byte < 0x20 && byte != 0x09) || byte == 0x7F {
                throw HTTPProtocolError(statusHint: status, "control byte in the value of header '\(Self.ascii(head, name))'", offset: offset + index)
            }
            if byte >= 0x80 { ascii = false }
        }
        let valueBytes = UnsafeBufferPointer(rebasing: head[low..<high])
        let value: String
        if ascii {
            value = String(decoding: valueBytes, as: UTF8.self)
        } else {
            guard let text = String(validating: valueBytes, as: UTF8.self) else {
                throw HTTPProtocolError(statusHint: status, "value of header '\(Self.ascii(head, name))' is not UTF-8", offset: offset + colon)
            }
            value = text
        }
        return HTTPHeaders.Field(name: Self.ascii(head, name), value: value)
    }

    static func version(_ head: UnsafeBufferPointer<UInt8>, _ range: Range<Int>, offset: Int, unsupportedStatus: Int) throws(HTTPProtocolError) -> HTTPVersion {
        let malformed = HTTPProtocolError(statusHint: unsupportedStatus == 505 ? 400 : 502, "malformed HTTP version", offset: offset)
        guard range.count == 8 else { throw malformed }
        let base = range.lowerBound
        guard head[base] == 0x48, head[base + 1] == 0x54, head[base + 2] == 0x54, head[base + 3] == 0x50, head[base + 4] == 0x2F else { throw malformed }
        let major = head[base + 5]
        let dot = head[base + 6]
        let minor = head[base + 7]
        guard dot == 0x2E, (0x30...0x39).contains(major), (0x30...0x39).contains(minor) else { throw malformed }
        let version = HTTPVersion(major: Int(major - 0x30), minor: Int(minor - 0x30))
        guard version.major == 1 else {
            throw HTTPProtocolError(statusHint: unsupportedStatus, "unsupported \(version)", offset: offset)
        }
        return version
    }

    /// RFC 9110 §5.6.2 tchar.
    static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case 0x30...0x39, 0x41...0x5A, 0x61...0x7A: true
        case 0x21, 0x23, 0x24, 0x25, 0x26, 0x27, 0x2A, 0x2B, 0x2D, 0x2E, 0x5E, 0x5F, 0x60, 0x7C, 0x7E: true
        default: false
        }
    }

    /// The first `byte` in `range` of `head`.
    static func index(of byte: UInt8, in head: UnsafeBufferPointer<UInt8>, _ range: Range<Int>) -> Int? {
        var index = range.lowerBound
        while index < range.upperBound {
            if head[index] == byte { return index }
            index += 1
        }
        return nil
    }

    static func ascii(_ head: UnsafeBufferPointer<UInt8>, _ range: Range<Int>) -> String {
        String(decoding: UnsafeBufferPointer(rebasing: head[range]), as: UTF8.self)
    }
}
