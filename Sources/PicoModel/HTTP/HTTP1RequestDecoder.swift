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
public struct HTTP1RequestDecoder: Hashable, Sendable, ByteStreamDecoder {
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

    /// Adds received bytes (the `ByteStreamDecoder` contract: copied before returning, decoded by
    /// `next()`).
    public mutating func feed(_ bytes: UnsafeRawBufferPointer) {
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
        guard let end = try self.buffer.endOfHead(within: self.limits.maxHeadBytes + 4, status: 400, place: "request head") else {
            try self.checkIncompleteHead()
            return nil
        }
        let offset = self.buffer.offset
        let bytes = self.buffer.read(end)
        self.buffer.skip(4)
        let limits = self.limits
        let parsed = try bytes.withUnsafeBufferPointer { (bytes: UnsafeBufferPointer<UInt8>) throws(HTTPProtocolError) -> HTTPRequestHead in
            let lines = try HTTP1HeadParser.lines(bytes, offset: offset)
            guard lines.start.count <= limits.maxStartLineBytes else {
                throw HTTPProtocolError(statusHint: 414, "request line longer than \(limits.maxStartLineBytes) bytes", offset: offset)
            }
            let (method, target, version) = try HTTP1HeadParser.requestLine(bytes, lines.start, offset: offset)
            let headers = try HTTP1HeadParser.fields(bytes, from: lines.fieldsFrom, offset: offset, maxCount: limits.maxHeaderCount, status: 400)
            return HTTPRequestHead(method: method, target: target, version: version, headers: headers)
        }
        try Self.checkHost(parsed, offset: offset)
        let head = try Self.originForm(of: parsed, offset: offset)
        let framing = try HTTP1Framing.request(head, offset: offset)
        self.headFraming = framing
        let upgrade = head.isUpgrade || head.method == "CONNECT"
        self.state = .body(HTTP1BodyDecoder(framing, errorStatus: 400), keepAlive: head.keepAlive, upgrade: upgrade)
        return .head(head)
    }

    /// No complete head yet: fail when it can no longer fit, or when the client closed mid-head.
    private mutating func checkIncompleteHead() throws(HTTPProtocolError) {
        if try self.buffer.endOfLine(within: self.limits.maxStartLineBytes + 2, status: 400, place: "request line") == nil,
            self.buffer.count > self.limits.maxStartLineBytes {
            throw HTTPProtocolError(statusHint: 414, "request line longer than \(self.limits.maxStartLineBytes) bytes", offset: self.buffer.offset)
        }
        if self.buffer.count > self.limits.maxHeadBytes {
            throw HTTPProtocolError(statusHint: 431, "request head larger than \(self.limits.maxHeadBytes) bytes", offset: self.buffer.offset)
        }
        if self.sawEOF, !self.buffer.isEmpty {
            throw HTTPProtocolError(statusHint: 400, "connection closed inside the request head", offset: self.buffer.offset)
        }
    }

    /// An absolute-form target (`http://authority/path?query`) as origin form (`/path?query`)
    /// with `Host` set to the authority, which replaces any `Host` field the client sent (RFC
    /// 9112 §3.2.2): everything after the decoder (routing, the `/_pico` paths, the upstream)
    /// sees one form. Only `http` and `https` are accepted, and an authority with user
    /// information or bytes a host cannot hold is refused (400). Other targets are unchanged.
    static func originForm(of head: HTTPRequestHead, offset: Int) throws(HTTPProtocolError) -> HTTPRequestHead {
        guard let first = head.target.utf8.first, first != 0x2F, first != 0x2A, head.method != "CONNECT" else { return head }
        let target = Substring(head.target)
        guard let colon = target.firstIndex(of: ":"), target[colon...].hasPrefix("://") else {
            throw HTTPProtocolError(statusHint: 400, "request target is neither a path nor an absolute URL", offset: offset)
        }
        let scheme = target[..<colon].lowercased()
        guard scheme == "http" || scheme == "https" else {
            throw HTTPProtocolError(statusHint: 400, "unsupported scheme '\(scheme.prefix(16))' in the request target", offset: offset)
        }
        let rest = target[target.index(colon, offsetBy: 3)...]
        let authorityEnd = rest.firstIndex { $0 == "/" || $0 == "?" } ?? rest.endIndex
        let authority = rest[..<authorityEnd]
        guard !authority.isEmpty, authority.utf8.allSatisfy(Self.isAuthorityByte) else {
            throw HTTPProtocolError(statusHint: 400, "request target's authority is empty or holds user information or bytes a host cannot hold", offset: offset)
        }
        let pathAndQuery = rest[authorityEnd...]
        var result = head
        result.target = pathAndQuery.first == "/" ? String(pathAndQuery) : "/" + pathAndQuery
        result.headers.replaceOrAdd(name: "Host", value: String(authority))
        return result
    }

    /// RFC 3986 unreserved, pct-encoded, sub-delims, ":" and the brackets of an IP literal; not "@".
    static func isAuthorityByte(_ byte: UInt8) -> Bool {
        switch byte {
        case 0x30...0x39, 0x41...0x5A, 0x61...0x7A: true
        case 0x2D, 0x2E, 0x5F, 0x7E, 0x25, 0x21, 0x24, 0x26, 0x27, 0x28, 0x29, 0x2A, 0x2B, 0x2C, 0x3B, 0x3D, 0x3A, 0x5B, 0x5D: true
        default: false
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
