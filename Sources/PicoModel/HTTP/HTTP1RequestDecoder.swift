/// Decodes the requests a client sends on one connection (server side), h11-style: `feed` the
/// bytes as they arrive, then call `next()` until it returns nil (more bytes needed).
///
/// Each request comes out as `.head`, then zero or more `.body` pieces (streamed, never the whole
/// body at once), then `.end`. The decoder then expects the next request (keep-alive), except:
/// - after a request with `Connection: close`, or an HTTP/1.0 one without keep-alive, it is
///   `.closed` and ignores the rest;
/// - after an upgrade request (`Connection: upgrade`) or `CONNECT`, it is `.upgradePending`:
///   the caller either switches protocols and takes the raw bytes that followed with
///   `takeUpgradedBytes()`, or, when the upstream refused, calls `refuseUpgrade()`.
///
/// Any protocol error moves it to `.failed` for good: the connection's framing can no longer
/// be trusted, and the caller answers with the error's `statusHint` and closes. Memory is bounded
/// by the limits while a head is read; during a body the caller bounds it by not reading the
/// socket while `bufferedByteCount` is high.
public struct HTTP1RequestDecoder: Hashable, Sendable {
    /// One piece of a request.
    public typealias Part = HTTPMessagePart<HTTPRequestHead>

    /// Legal transitions: `head` → `body` → `head` (keep-alive) | `closed` | `upgradePending`;
    /// `upgradePending` → `upgraded` | `head`; any → `failed`.
    public enum State: Hashable, Sendable {
        case head
        case body(HTTP1BodyDecoder, keepAlive: Bool, upgrade: Bool)
        case upgradePending
        case upgraded
        case closed
        case failed(HTTPProtocolError)
    }

    /// The limits in force.
    public let limits: HTTPDecoderLimits
    /// Where the decoder is.
    public private(set) var state: State = .head
    /// The body framing of the last head `next()` returned, as the decoder reads it: callers
    /// need not work it out again.
    public private(set) var headFraming: HTTPBodyFraming = .none
    private var buffer = StreamBuffer()
    private var sawEOF = false

    /// Creates a decoder expecting a request head.
    public init(limits: HTTPDecoderLimits = HTTPDecoderLimits()) {
        self.limits = limits
    }

    /// Bytes received and not yet returned.
    public var bufferedByteCount: Int { self.buffer.count }

    /// Offset in the connection of the next byte to decode.
    public var offset: Int { self.buffer.offset }

    /// True when nothing has been received of a request that has not ended: a close now loses
    /// nothing (no partial request).
    public var isIdle: Bool {
        if case .head = self.state { return self.buffer.isEmpty }
        return false
    }

    /// Adds received bytes.
    public mutating func feed(_ bytes: some Sequence<UInt8>) {
        self.buffer.append(bytes)
    }

    /// Adds received bytes. The concrete overloads give callers in other modules (the runtime's
    /// sockets and streams) a copy specialized for their buffers; the generic one would run
    /// unspecialized there, element by element.
    public mutating func feed(_ bytes: UnsafeRawBufferPointer) {
        self.buffer.append(bytes)
    }

    /// Adds received bytes (see `feed(_: UnsafeRawBufferPointer)`).
    public mutating func feed(_ bytes: ArraySlice<UInt8>) {
        self.buffer.append(bytes)
    }

    /// The client closed its side.
    public mutating func feedEOF() {
        self.sawEOF = true
    }

    /// The next piece of a request, nil when more bytes are needed (or none will come).
    public mutating func next() throws(HTTPProtocolError) -> Part? {
        do throws(HTTPProtocolError) {
            switch self.state {
            case .head:
                return try self.nextHead()
            case .body(var body, let keepAlive, let upgrade):
                let output = try body.next(&self.buffer, limits: self.limits, eof: self.sawEOF)
                let ended = output?.isEnd == true
                self.state = !ended ? .body(body, keepAlive: keepAlive, upgrade: upgrade) : upgrade ? .upgradePending : keepAlive ? .head : .closed
                return output.map(Part.init)
            case .upgradePending, .upgraded, .closed:
                return nil
            case .failed(let error):
                throw error
            }
        } catch {
            self.state = .failed(error)
            throw error
        }
    }

    /// After an upgrade request's end: the protocol switched; returns the bytes the client sent
    /// after the request (the start of the new protocol). Later bytes go straight to the caller.
    public mutating func takeUpgradedBytes() -> ArraySlice<UInt8> {
        precondition(self.state == .upgradePending, "takeUpgradedBytes() is only valid after an upgrade request ended")
        self.state = .upgraded
        return self.buffer.readAll()
    }

    /// After an upgrade request's end: the upgrade was refused; the connection carries HTTP/1.1
    /// requests again.
    public mutating func refuseUpgrade() {
        precondition(self.state == .upgradePending, "refuseUpgrade() is only valid after an upgrade request ended")
        self.state = .head
    }

    private mutating func nextHead() throws(HTTPProtocolError) -> Part? {
        var skipped = 0
        while self.buffer.count >= 2, self.buffer[0] == 0x0D, self.buffer[1] == 0x0A {
            skipped += 1
            guard skipped <= self.limits.maxLeadingEmptyLines else {
                throw HTTPProtocolError(statusHint: 400, "too many empty lines before the request line", offset: self.buffer.offset)
            }
            self.buffer.skip(2)
        }
        guard let end = self.buffer.firstEmptyLine(within: self.limits.maxHeadBytes + 4) else {
            try self.checkIncompleteHead()
            return nil
        }
        let offset = self.buffer.offset
        let bytes = self.buffer.read(end)
        self.buffer.skip(4)
        let limits = self.limits
        let head = try bytes.withUnsafeBufferPointer { (bytes: UnsafeBufferPointer<UInt8>) throws(HTTPProtocolError) -> HTTPRequestHead in
            let lines = try HTTP1HeadParser.lines(bytes, offset: offset)
            guard lines.start.count <= limits.maxStartLineBytes else {
                throw HTTPProtocolError(statusHint: 414, "request line longer than \(limits.maxStartLineBytes) bytes", offset: offset)
            }
            let (method, target, version) = try HTTP1HeadParser.requestLine(bytes, lines.start, offset: offset)
            let headers = try HTTP1HeadParser.fields(bytes, from: lines.fieldsFrom, offset: offset, maxCount: limits.maxHeaderCount, status: 400)
            return HTTPRequestHead(method: method, target: target, version: version, headers: headers)
        }
        try Self.checkHost(head, offset: offset)
        let framing = try HTTP1Framing.request(head, offset: offset)
        self.headFraming = framing
        let upgrade = head.isUpgrade || head.method == "CONNECT"
        self.state = .body(HTTP1BodyDecoder(framing, errorStatus: 400), keepAlive: head.keepAlive, upgrade: upgrade)
        return .head(head)
    }

    /// No complete head yet: fail when it can no longer fit, or when the client closed mid-head.
    private mutating func checkIncompleteHead() throws(HTTPProtocolError) {
        if self.buffer.firstCRLF(within: self.limits.maxStartLineBytes + 2) == nil, self.buffer.count > self.limits.maxStartLineBytes {
            throw HTTPProtocolError(statusHint: 414, "request line longer than \(self.limits.maxStartLineBytes) bytes", offset: self.buffer.offset)
        }
        if self.buffer.count > self.limits.maxHeadBytes {
            throw HTTPProtocolError(statusHint: 431, "request head larger than \(self.limits.maxHeadBytes) bytes", offset: self.buffer.offset)
        }
        if self.sawEOF, !self.buffer.isEmpty {
            throw HTTPProtocolError(statusHint: 400, "connection closed inside the request head", offset: self.buffer.offset)
        }
    }

    /// HTTP/1.1 requests carry exactly one Host (RFC 9112 §3.2); HTTP/1.0 at most one.
    private static func checkHost(_ head: HTTPRequestHead, offset: Int) throws(HTTPProtocolError) {
        let hosts = head.headers["host"]
        if hosts.count > 1 || (hosts.isEmpty && head.version >= .http1_1) {
            throw HTTPProtocolError(statusHint: 400, hosts.isEmpty ? "missing Host header" : "more than one Host header", offset: offset)
        }
    }
}
