/// Strict parsing of HTTP/1.1 start lines and field lines (RFC 9112 §3, §4, §5). Pure functions
/// over the bytes of one head; the decoders find the head's end and call these. Anything a
/// lenient parser might read two ways (bare CR or LF, whitespace before a colon, obs-fold,
/// control bytes, a non-token name) is refused: a proxy that reads a message differently from the
/// server behind it is how requests are smuggled.
enum HTTP1HeadParser {
    /// Splits `head` (the bytes before the empty line) into lines at CRLF. A CR or LF anywhere else
    /// is an error. Returns each line with its connection offset.
    static func lines(_ head: ArraySlice<UInt8>, offset: Int) throws(HTTPProtocolError) -> [(bytes: ArraySlice<UInt8>, offset: Int)] {
        var lines: [(ArraySlice<UInt8>, Int)] = []
        var start = head.startIndex
        var index = head.startIndex
        while index < head.endIndex {
            let byte = head[index]
            if byte == 0x0D, index + 1 < head.endIndex, head[index + 1] == 0x0A {
                lines.append((head[start..<index], offset + (start - head.startIndex)))
                index += 2
                start = index
                continue
            }
            if byte == 0x0D || byte == 0x0A {
                throw HTTPProtocolError(statusHint: 400, "bare \(byte == 0x0D ? "CR" : "LF") in the message head", offset: offset + (index - head.startIndex))
            }
            index += 1
        }
        lines.append((head[start..<head.endIndex], offset + (start - head.startIndex)))
        return lines
    }

    /// Parses `method SP request-target SP HTTP-version`.
    static func requestLine(_ line: ArraySlice<UInt8>, offset: Int) throws(HTTPProtocolError) -> (method: String, target: String, version: HTTPVersion) {
        let parts = line.split(separator: 0x20, omittingEmptySubsequences: false)
        guard parts.count == 3 else {
            throw HTTPProtocolError(statusHint: 400, "malformed request line (want METHOD SP TARGET SP VERSION)", offset: offset)
        }
        let (method, target, version) = (parts[0], parts[1], parts[2])
        guard !method.isEmpty, method.allSatisfy(Self.isTokenByte) else {
            throw HTTPProtocolError(statusHint: 400, "malformed method", offset: offset)
        }
        guard !target.isEmpty, target.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            throw HTTPProtocolError(statusHint: 400, "malformed request target", offset: offset + method.count + 1)
        }
        let versionOffset = offset + method.count + target.count + 2
        return (Self.ascii(method), Self.ascii(target), try Self.version(version, offset: versionOffset, unsupportedStatus: 505))
    }

    /// Parses `HTTP-version SP status-code SP [reason-phrase]`.
    static func statusLine(_ line: ArraySlice<UInt8>, offset: Int) throws(HTTPProtocolError) -> (version: HTTPVersion, status: Int, reason: String) {
        guard let firstSpace = line.firstIndex(of: 0x20) else {
            throw HTTPProtocolError(statusHint: 502, "malformed status line", offset: offset)
        }
        let version = try Self.version(line[line.startIndex..<firstSpace], offset: offset, unsupportedStatus: 502)
        let rest = line[(firstSpace + 1)...]
        let code = rest.prefix(3)
        guard code.count == 3, code.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), rest.count == 3 || rest[rest.startIndex + 3] == 0x20 else {
            throw HTTPProtocolError(statusHint: 502, "malformed status code", offset: offset + (firstSpace - line.startIndex) + 1)
        }
        let status = code.reduce(0) { $0 * 10 + Int($1 - 0x30) }
        guard status >= 100 else { throw HTTPProtocolError(statusHint: 502, "status code below 100", offset: offset) }
        let reason = rest.count > 4 ? rest[(rest.startIndex + 4)...] : []
        guard reason.allSatisfy({ $0 == 0x09 || $0 >= 0x20 && $0 != 0x7F }) else {
            throw HTTPProtocolError(statusHint: 502, "control byte in the reason phrase", offset: offset)
        }
        return (version, status, String(decoding: reason, as: UTF8.self))
    }

    /// Parses field lines into headers, at most `maxCount` of them.
    static func fields(_ lines: ArraySlice<(bytes: ArraySlice<UInt8>, offset: Int)>, maxCount: Int, status: Int) throws(HTTPProtocolError) -> HTTPHeaders {
        guard lines.count <= maxCount else {
            throw HTTPProtocolError(statusHint: 431, "more than \(maxCount) header fields", offset: lines.first?.offset ?? 0)
        }
        var fields: [HTTPHeaders.Field] = []
        fields.reserveCapacity(lines.count)
        for (line, offset) in lines {
            fields.append(try Self.field(line, offset: offset, status: status))
        }
        return HTTPHeaders(fields)
    }

    /// Parses `field-name ":" OWS field-value OWS`.
    static func field(_ line: ArraySlice<UInt8>, offset: Int, status: Int) throws(HTTPProtocolError) -> HTTPHeaders.Field {
        if let first = line.first, first == 0x20 || first == 0x09 {
            throw HTTPProtocolError(statusHint: status, "obsolete line folding in a header field", offset: offset)
        }
        guard let colon = line.firstIndex(of: 0x3A) else {
            throw HTTPProtocolError(statusHint: status, "header line without a colon", offset: offset)
        }
        let name = line[line.startIndex..<colon]
        guard !name.isEmpty, name.allSatisfy(Self.isTokenByte) else {
            throw HTTPProtocolError(statusHint: status, "malformed header name (whitespace or a non-token byte)", offset: offset)
        }
        var value = line[(colon + 1)...]
        while let first = value.first, first == 0x20 || first == 0x09 { value.removeFirst() }
        while let last = value.last, last == 0x20 || last == 0x09 { value.removeLast() }
        if let bad = value.firstIndex(where: { ($0 < 0x20 && $0 != 0x09) || $0 == 0x7F }) {
            throw HTTPProtocolError(statusHint: status, "control byte in the value of header '\(Self.ascii(name))'", offset: offset + (bad - line.startIndex))
        }
        guard let text = String(validating: value, as: UTF8.self) else {
            throw HTTPProtocolError(statusHint: status, "value of header '\(Self.ascii(name))' is not UTF-8", offset: offset + (colon - line.startIndex))
        }
        return HTTPHeaders.Field(name: Self.ascii(name), value: text)
    }

    static func version(_ bytes: ArraySlice<UInt8>, offset: Int, unsupportedStatus: Int) throws(HTTPProtocolError) -> HTTPVersion {
        let prefix: [UInt8] = Array("HTTP/".utf8)
        guard bytes.count == 8, bytes.starts(with: prefix) else {
            throw HTTPProtocolError(statusHint: unsupportedStatus == 505 ? 400 : 502, "malformed HTTP version", offset: offset)
        }
        let major = bytes[bytes.startIndex + 5]
        let dot = bytes[bytes.startIndex + 6]
        let minor = bytes[bytes.startIndex + 7]
        guard dot == 0x2E, (0x30...0x39).contains(major), (0x30...0x39).contains(minor) else {
            throw HTTPProtocolError(statusHint: unsupportedStatus == 505 ? 400 : 502, "malformed HTTP version", offset: offset)
        }
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

    static func ascii(_ bytes: ArraySlice<UInt8>) -> String {
        String(decoding: bytes, as: UTF8.self)
    }
}
