/// Writes WebSocket frames (RFC 6455 §5.2) into a caller-owned buffer. A client passes a fresh
/// 4-byte masking key per frame (from its random source); a server passes none.
public enum WebSocketFrameEncoder {
    /// Appends one frame. Control frames must be final with at most 125 bytes of payload.
    public static func write(
        _ opcode: WebSocketOpcode,
        payload: some Collection<UInt8>,
        fin: Bool = true,
        maskingKey: [UInt8]? = nil,
        into output: inout [UInt8]
    ) {
        self.writeFrame(opcode, payload: payload, fin: fin, maskingKey: maskingKey, into: &output)
    }

    /// `write` for a byte array: concrete, so callers in other modules (a tunnel writing each
    /// turn's frames) get a specialized copy instead of the generic one run unspecialized.
    public static func write(
        _ opcode: WebSocketOpcode,
        payload: [UInt8],
        fin: Bool = true,
        maskingKey: [UInt8]? = nil,
        into output: inout [UInt8]
    ) {
        self.writeFrame(opcode, payload: payload, fin: fin, maskingKey: maskingKey, into: &output)
    }

    /// Appends the header of an unmasked (server) frame whose `length`-byte payload the caller
    /// writes after it, so a large payload is not copied into the frame.
    public static func writeUnmaskedHeader(_ opcode: WebSocketOpcode, length: Int, fin: Bool = true, into output: inout [UInt8]) {
        self.writeHeader(opcode, length: length, fin: fin, maskingKey: nil, into: &output)
    }

    /// Appends the header of a frame whose `length`-byte payload the caller writes after it,
    /// masked with `maskingKey` (`WebSocketMask.apply` from phase 0) when one is given.
    public static func writeHeader(_ opcode: WebSocketOpcode, length: Int, fin: Bool = true, maskingKey: [UInt8]?, into output: inout [UInt8]) {
        precondition(length >= 0, "a payload length is not negative")
        precondition(maskingKey == nil || maskingKey?.count == 4, "a masking key is 4 bytes")
        output.append((fin ? 0x80 : 0) | opcode.rawValue)
        let maskBit: UInt8 = maskingKey == nil ? 0 : 0x80
        if length < 126 {
            output.append(maskBit | UInt8(length))
        } else if length <= 0xFFFF {
            output.append(maskBit | 126)
            output.append(contentsOf: [UInt8(length >> 8), UInt8(truncatingIfNeeded: length)])
        } else {
            output.append(maskBit | 127)
            for shift in stride(from: 56, through: 0, by: -8) { output.append(UInt8(truncatingIfNeeded: UInt64(length) >> UInt64(shift))) }
        }
        if let maskingKey { output.append(contentsOf: maskingKey) }
    }

    static func writeFrame(
        _ opcode: WebSocketOpcode,
        payload: some Collection<UInt8>,
        fin: Bool,
        maskingKey: [UInt8]?,
        into output: inout [UInt8]
    ) {
        precondition(!opcode.isControl || (fin && payload.count <= 125), "control frames are final and at most 125 bytes")
        self.writeHeader(opcode, length: payload.count, fin: fin, maskingKey: maskingKey, into: &output)
        guard let key = maskingKey else {
            output.append(contentsOf: payload)
            return
        }
        let start = output.count
        output.append(contentsOf: payload)
        output.withUnsafeMutableBytes { WebSocketMask.apply(key, phase: 0, to: UnsafeMutableRawBufferPointer(rebasing: $0[start...])) }
    }

    /// Appends a close frame with `code` and a reason (truncated to fit 125 bytes).
    public static func writeClose(code: UInt16, reason: String = "", maskingKey: [UInt8]? = nil, into output: inout [UInt8]) {
        var payload = [UInt8(code >> 8), UInt8(truncatingIfNeeded: code)]
        var text = Array(reason.utf8.prefix(123))
        while String(validating: text, as: UTF8.self) == nil { text.removeLast() }
        payload += text
        Self.write(.close, payload: payload, maskingKey: maskingKey, into: &output)
    }
}

/// The opening handshake of RFC 6455 §4 over our HTTP/1.1 heads.
public enum WebSocketHandshake {
    /// The GUID RFC 6455 appends to the key.
    public static let guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

    /// `Sec-WebSocket-Accept` for a client's `Sec-WebSocket-Key`.
    public static func acceptValue(forKey key: String) -> String {
        Base64.encode(SHA1.digest(Array((key + Self.guid).utf8)))
    }

    /// Why a request is not a WebSocket handshake we accept: the status and message to answer.
    public struct Refusal: Error, Hashable, Sendable {
        /// 400, 405 or 426.
        public var status: Int
        /// What was missing or wrong.
        public var message: String
    }

    /// The client's key when `head` is a valid handshake (GET, HTTP/1.1, `Upgrade: websocket`,
    /// `Connection: upgrade`, version 13, a key of 16 Base64-encoded bytes).
    public static func key(of head: HTTPRequestHead) -> Result<String, Refusal> {
        guard head.method == "GET" else { return .failure(Refusal(status: 405, message: "a WebSocket handshake must be a GET")) }
        guard head.version >= .http1_1, head.isUpgrade, head.headers.tokens("upgrade").contains("websocket") else {
            return .failure(Refusal(status: 426, message: "expected a WebSocket upgrade (Connection: Upgrade, Upgrade: websocket)"))
        }
        guard head.headers["sec-websocket-version"] == ["13"] else {
            return .failure(Refusal(status: 426, message: "unsupported Sec-WebSocket-Version (want 13)"))
        }
        let keys = head.headers["sec-websocket-key"]
        guard keys.count == 1, let key = keys.first, Base64.decode(key)?.count == 16 else {
            return .failure(Refusal(status: 400, message: "missing or malformed Sec-WebSocket-Key"))
        }
        return .success(key)
    }

    /// The `101 Switching Protocols` answer to a handshake with `key`.
    public static func switchingProtocols(key: String) -> HTTPResponseHead {
        HTTPResponseHead(status: 101, headers: ["Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Accept": Self.acceptValue(forKey: key)])
    }

    /// A client handshake for `target` on `host` with `key` (16 random bytes, Base64-encoded).
    public static func request(target: String, host: String, key: String, headers extra: HTTPHeaders = [:]) -> HTTPRequestHead {
        var headers: HTTPHeaders = ["Host": host, "Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Key": key, "Sec-WebSocket-Version": "13"]
        for field in extra { headers.add(name: field.name, value: field.value) }
        return HTTPRequestHead(method: "GET", target: target, headers: headers)
    }

    /// True when `head` accepts the handshake sent with `key`.
    public static func accepts(_ head: HTTPResponseHead, key: String) -> Bool {
        head.status == 101 && head.headers.tokens("upgrade") == ["websocket"] && head.headers.tokens("connection").contains("upgrade")
            && head.headers["sec-websocket-accept"] == [Self.acceptValue(forKey: key)]
    }
}
