/// Decodes the responses a server sends on one connection (client side), as the proxy reads an
/// upstream's answer and the agent reads its local service's.
///
/// Call `expectResponse(to:)` with each request's method before its response arrives (the
/// method decides whether a body can follow). A response comes out as `.head`, `.body` pieces,
/// then `.end`; 1xx interim heads (such as `100 Continue`) come out as `.head` alone and the final
/// head follows. After `101 Switching Protocols`, or a 2xx answer to `CONNECT`, the decoder is
/// `.upgraded` and `takeUpgradedBytes()` hands over what followed. A response without
/// keep-alive, or delimited by the close, leaves it `.closed`. Errors hint 502 and are final.
public struct HTTP1ResponseDecoder: Hashable, Sendable, ByteStreamDecoder {
    /// One piece of a response.
    public typealias Part = HTTPMessagePart<HTTPResponseHead>

    /// Legal transitions: `idle` → `head` (a request was sent) → `body` → `idle` | `closed`;
    /// `head` → `upgraded` on 101; any → `failed`.
    public enum State: Hashable, Sendable {
        case idle
        case head(requestMethod: String)
        case body(HTTP1BodyDecoder, keepAlive: Bool)
        case upgraded
        case closed
        case failed(HTTPProtocolError)
    }

    /// The limits in force.
    public let limits: HTTPDecoderLimits
    /// Where the decoder is.
    public private(set) var state: State = .idle
    /// The body framing of the last head `next()` returned (`.none` for interim and upgrade
    /// heads), as the decoder reads it: callers need not work it out again.
    public private(set) var headFraming: HTTPBodyFraming = .none
    private var buffer = StreamBuffer()
    private var sawEOF = false

    /// Creates a decoder with no request outstanding.
    public init(limits: HTTPDecoderLimits = HTTPDecoderLimits()) {
        self.limits = limits
    }

    /// Bytes received and not yet returned.
    public var bufferedByteCount: Int { self.buffer.count }

    /// A request with `method` was sent: its response is next. Only valid when `.idle`.
    public mutating func expectResponse(to method: String) {
        precondition(self.state == .idle, "one response at a time: the previous one has not ended")
        self.state = .head(requestMethod: method)
    }

    /// Adds received bytes (the `ByteStreamDecoder` contract: copied before returning, decoded by
    /// `next()`).
    public mutating func feed(_ bytes: UnsafeRawBufferPointer) {
        self.buffer.append(bytes)
    }

    /// The server closed its side.
    public mutating func feedEOF() {
        self.sawEOF = true
    }

    /// The next piece of the response, nil when more bytes are needed (or none are expected).
    public mutating func next() throws(HTTPProtocolError) -> Part? {
        do throws(HTTPProtocolError) {
            switch self.state {
            case .head(let method):
                return try self.nextHead(requestMethod: method)
            case .body(var body, let keepAlive):
                let output = try body.next(&self.buffer, limits: self.limits, eof: self.sawEOF)
                let ended = output?.isEnd == true
                self.state = !ended ? .body(body, keepAlive: keepAlive) : keepAlive && !self.sawEOF ? .idle : .closed
                return output.map(Part.init)
            case .idle, .upgraded, .closed:
                return nil
            case .failed(let error):
                throw error
            }
        } catch {
            self.state = .failed(error)
            throw error
        }
    }

    /// After a 101 (or a 2xx to CONNECT): the bytes the server sent after the head.
    public mutating func takeUpgradedBytes() -> ArraySlice<UInt8> {
        precondition(self.state == .upgraded, "takeUpgradedBytes() is only valid after a protocol switch")
        return self.buffer.readAll()
    }

    private mutating func nextHead(requestMethod: String) throws(HTTPProtocolError) -> Part? {
        guard let end = try self.buffer.endOfHead(within: self.limits.maxHeadBytes + 4, status: 502, place: "response head") else {
            if self.buffer.count > self.limits.maxHeadBytes {
                throw HTTPProtocolError(statusHint: 502, "response head larger than \(self.limits.maxHeadBytes) bytes", offset: self.buffer.offset)
            }
            if self.sawEOF {
                let what = self.buffer.isEmpty ? "connection closed before the response" : "connection closed inside the response head"
                throw HTTPProtocolError(statusHint: 502, what, offset: self.buffer.offset)
            }
            return nil
        }
        let offset = self.buffer.offset
        let bytes = self.buffer.read(end)
        self.buffer.skip(4)
        let limits = self.limits
        let head = try bytes.withUnsafeBufferPointer { (bytes: UnsafeBufferPointer<UInt8>) throws(HTTPProtocolError) -> HTTPResponseHead in
            let lines = try HTTP1HeadParser.lines(bytes, offset: offset)
            guard lines.start.count <= limits.maxStartLineBytes else {
                throw HTTPProtocolError(statusHint: 502, "status line longer than \(limits.maxStartLineBytes) bytes", offset: offset)
            }
            let (version, status, reason) = try HTTP1HeadParser.statusLine(bytes, lines.start, offset: offset)
            let headers = try HTTP1HeadParser.fields(bytes, from: lines.fieldsFrom, offset: offset, maxCount: limits.maxHeaderCount, status: 502)
            return HTTPResponseHead(version: version, status: status, reason: reason, headers: headers)
        }
        let (version, status, headers) = (head.version, head.status, head.headers)
        self.headFraming = .none
        if head.isInterim { return .head(head) }
        if status == 101 || (requestMethod == "CONNECT" && (200..<300).contains(status)) {
            self.state = .upgraded
            return .head(head)
        }
        let framing = try HTTP1Framing.response(head, requestMethod: requestMethod, offset: offset)
        self.headFraming = framing
        let keepAlive = framing != .untilClose && !headers.hasToken("connection", "close") && (version >= .http1_1 || headers.hasToken("connection", "keep-alive"))
        self.state = .body(HTTP1BodyDecoder(framing, errorStatus: 502), keepAlive: keepAlive)
        return .head(head)
    }
}
