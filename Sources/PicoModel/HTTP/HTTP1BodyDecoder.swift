/// How a message's body is delimited (RFC 9112 §6).
public enum HTTPBodyFraming: Hashable, Sendable {
    /// No body.
    case none
    /// Exactly this many bytes.
    case length(UInt64)
    /// Chunked transfer coding, ended by a zero-size chunk and trailers.
    case chunked
    /// Everything until the connection closes (responses only).
    case untilClose
}

/// One piece of a decoded message: its head, then body pieces, then the end with trailers.
public enum HTTPMessagePart<Head: Hashable & Sendable>: Hashable, Sendable {
    case head(Head)
    case body(ArraySlice<UInt8>)
    case end(trailers: HTTPHeaders)

    /// A body decoder's output as a part.
    init(_ output: HTTP1BodyDecoder.Output) {
        switch output {
        case .body(let bytes): self = .body(bytes)
        case .end(let trailers): self = .end(trailers: trailers)
        }
    }
}

/// Decodes one message body from an `StreamBuffer` as it arrives, never holding more than the
/// buffer does: each call returns the body bytes available now, or the end with its trailers.
/// Chunk sizes are strict hexadecimal (no sign, no prefix, no leading whitespace, at most 16
/// digits), chunk lines end in CRLF (a bare CR or LF is refused at once), and every chunk's data
/// must be followed by CRLF. Trailer fields that must not appear in trailers are dropped.
public struct HTTP1BodyDecoder: Hashable, Sendable {
    /// What the body decoder produced.
    public enum Output: Hashable, Sendable {
        case body(ArraySlice<UInt8>)
        case end(trailers: HTTPHeaders)

        /// True for the end of the body.
        var isEnd: Bool { if case .end = self { true } else { false } }
    }

    /// Legal transitions: `length` → `done`; `chunkSize` → `chunkData` → `chunkDataEnd` →
    /// `chunkSize` …, or `chunkSize` → `trailers` → `done`; `untilClose` → `done` at EOF.
    public enum State: Hashable, Sendable {
        case length(remaining: UInt64)
        case chunkSize
        case chunkData(remaining: UInt64)
        case chunkDataEnd
        case trailers
        case untilClose
        case done
    }

    /// Where the body decoder is.
    public private(set) var state: State
    /// The status to hint when the body is malformed (400 for requests, 502 for responses).
    public let errorStatus: Int

    /// A decoder for a body framed by `framing`; malformed bodies hint `errorStatus`.
    public init(_ framing: HTTPBodyFraming, errorStatus: Int) {
        switch framing {
        case .none: self.state = .length(remaining: 0)
        case .length(let length): self.state = .length(remaining: length)
        case .chunked: self.state = .chunkSize
        case .untilClose: self.state = .untilClose
        }
        self.errorStatus = errorStatus
    }

    /// The next piece of the body, or nil when more bytes are needed. `eof` says the peer closed.
    public mutating func next(_ buffer: inout StreamBuffer, limits: HTTPDecoderLimits, eof: Bool) throws(HTTPProtocolError) -> Output? {
        while true {
            switch self.state {
            case .length(let remaining):
                if remaining == 0 {
                    self.state = .done
                    return .end(trailers: [:])
                }
                guard !buffer.isEmpty else { return try self.needMore(eof: eof, buffer) }
                let bytes = buffer.read(Int(min(remaining, UInt64(buffer.count))))
                self.state = .length(remaining: remaining - UInt64(bytes.count))
                return .body(bytes)
            case .chunkSize:
                guard let end = try buffer.endOfLine(within: limits.maxChunkLineBytes + 2, status: self.errorStatus, place: "chunk size line") else {
                    if buffer.count > limits.maxChunkLineBytes {
                        throw HTTPProtocolError(statusHint: self.errorStatus, "chunk size line longer than \(limits.maxChunkLineBytes) bytes", offset: buffer.offset)
                    }
                    return try self.needMore(eof: eof, buffer)
                }
                let lineOffset = buffer.offset
                let line = buffer.read(end)
                buffer.skip(2)
                let size = try self.chunkSize(line, offset: lineOffset)
                self.state = size == 0 ? .trailers : .chunkData(remaining: size)
            case .chunkData(let remaining):
                guard !buffer.isEmpty else { return try self.needMore(eof: eof, buffer) }
                let bytes = buffer.read(Int(min(remaining, UInt64(buffer.count))))
                let left = remaining - UInt64(bytes.count)
                self.state = left == 0 ? .chunkDataEnd : .chunkData(remaining: left)
                return .body(bytes)
            case .chunkDataEnd:
                guard buffer.count >= 2 else { return try self.needMore(eof: eof, buffer) }
                guard buffer[0] == 0x0D, buffer[1] == 0x0A else {
                    throw HTTPProtocolError(statusHint: self.errorStatus, "chunk data not followed by CRLF", offset: buffer.offset)
                }
                buffer.skip(2)
                self.state = .chunkSize
            case .trailers:
                guard let trailers = try self.trailers(&buffer, limits: limits) else { return try self.needMore(eof: eof, buffer) }
                self.state = .done
                return .end(trailers: trailers)
            case .untilClose:
                if !buffer.isEmpty { return .body(buffer.readAll()) }
                guard eof else { return nil }
                self.state = .done
                return .end(trailers: [:])
            case .done:
                return nil
            }
        }
    }

    private func needMore(eof: Bool, _ buffer: StreamBuffer) throws(HTTPProtocolError) -> Output? {
        if eof { throw HTTPProtocolError(statusHint: self.errorStatus, "connection closed inside the body", offset: buffer.offset) }
        return nil
    }

    private func chunkSize(_ line: ArraySlice<UInt8>, offset: Int) throws(HTTPProtocolError) -> UInt64 {
        let digits = line.prefix { Self.hexValue($0) != nil }
        guard !digits.isEmpty, digits.count <= 16 else {
            throw HTTPProtocolError(statusHint: self.errorStatus, "invalid chunk size", offset: offset)
        }
        var extensions = line.dropFirst(digits.count)
        while let first = extensions.first, first == 0x20 || first == 0x09 { extensions.removeFirst() }
        if let first = extensions.first {
            guard first == 0x3B, extensions.allSatisfy({ $0 == 0x09 || ($0 >= 0x20 && $0 != 0x7F) }) else {
                throw HTTPProtocolError(statusHint: self.errorStatus, "invalid chunk size", offset: offset)
            }
        }
        return digits.reduce(0) { $0 << 4 | UInt64(Self.hexValue($1)!) }
    }

    /// Reads the trailer section once it is complete (nil until then).
    private func trailers(_ buffer: inout StreamBuffer, limits: HTTPDecoderLimits) throws(HTTPProtocolError) -> HTTPHeaders? {
        if buffer.count >= 2, buffer[0] == 0x0D, buffer[1] == 0x0A {
            buffer.skip(2)
            return [:]
        }
        guard let end = try buffer.endOfHead(within: limits.maxHeadBytes + 4, status: self.errorStatus, place: "trailer section") else {
            if buffer.count > limits.maxHeadBytes {
                throw HTTPProtocolError(statusHint: self.errorStatus == 400 ? 431 : self.errorStatus, "trailer section larger than \(limits.maxHeadBytes) bytes", offset: buffer.offset)
            }
            return nil
        }
        let offset = buffer.offset
        let section = buffer.read(end)
        buffer.skip(4)
        let fields = try HTTP1HeadParser.fields(section, offset: offset, maxCount: limits.maxHeaderCount, status: self.errorStatus)
        return Self.permittedTrailers(fields)
    }

    /// Trailer fields without those a trailer section must not carry (RFC 9110 §6.5.1): framing
    /// (`Content-Length`, `Transfer-Encoding`), routing (`Host`), hop-by-hop fields, and Pico's
    /// own routing and marker fields (`x-pico-…`, which only a head may carry). A recipient that
    /// removes the chunked coding may discard trailers (§6.5.2); passing these on would let a
    /// client change how the next hop frames or routes the message.
    static func permittedTrailers(_ trailers: HTTPHeaders) -> HTTPHeaders {
        func forbidden(_ field: HTTPHeaders.Field) -> Bool {
            HTTPProxyRules.isHopByHop(field.name) || HTTPHeaders.sameName(field.name, "content-length")
                || HTTPHeaders.sameName(field.name, "host") || Self.isPicoField(field.name)
        }
        guard trailers.fields.contains(where: forbidden) else { return trailers }
        return HTTPHeaders(trailers.fields.filter { !forbidden($0) })
    }

    /// True for names starting with `x-pico-` (ASCII case-insensitively).
    static func isPicoField(_ name: String) -> Bool {
        name.utf8.count > 7 && HTTPHeaders.sameName(String(name.prefix(7)), "x-pico-")
    }

    static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case 0x30...0x39: byte - 0x30
        case 0x41...0x46: byte - 0x41 + 10
        case 0x61...0x66: byte - 0x61 + 10
        default: nil
        }
    }
}
