/// The peer broke RFC 6455. `closeCode` is the status to send in our close frame (1002 protocol
/// error, 1003 unsupported data, 1009 too big); the connection is then closed.
public struct WebSocketProtocolError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The close status code to answer with.
    public var closeCode: UInt16
    /// What was wrong.
    public var message: String
    /// Offset of the frame's first byte in the byte stream.
    public var offset: Int

    /// Creates an error.
    public init(closeCode: UInt16, _ message: String, offset: Int) {
        self.closeCode = closeCode
        self.message = message
        self.offset = offset
    }

    public var description: String { "\(self.message) (close code \(self.closeCode), frame at byte \(self.offset))" }
}

/// The frame opcodes of RFC 6455 §5.2.
public enum WebSocketOpcode: UInt8, Hashable, Sendable {
    case continuation = 0x0
    case text = 0x1
    case binary = 0x2
    case close = 0x8
    case ping = 0x9
    case pong = 0xA

    /// Control frames: close, ping, pong.
    public var isControl: Bool { self.rawValue & 0x8 != 0 }
}

/// Decodes the WebSocket frames of a tunnel as they arrive: binary message payloads come out as
/// a byte stream (unmasked, in pieces, message boundaries carry no meaning for yamux inside), and
/// control frames whole. Text messages are refused (1003): tunnels carry binary only.
///
/// As a server it requires every frame masked, as a client it refuses masked frames (RFC 6455
/// §5.1). Control frames must be final and at most 125 bytes; reserved bits must be zero (no
/// extension is negotiated); a continuation needs an open message and a new message none. After
/// a close frame the decoder is `.closed`; after an error, `.failed` for good.
public struct WebSocketFrameDecoder: Hashable, Sendable, ByteStreamDecoder {
    /// Which side of the connection we are.
    public enum Role: Hashable, Sendable {
        case server
        case client
    }

    /// What a frame carried.
    public enum Event: Hashable, Sendable {
        /// Payload bytes of a binary message.
        case data(ArraySlice<UInt8>)
        /// A binary message ended without a single payload byte (the TCP route reads it as the
        /// end of its sender's direction; a tunnel ignores it).
        case emptyMessage
        /// A ping with its application data (answer with a pong carrying the same bytes).
        case ping([UInt8])
        /// A pong.
        case pong([UInt8])
        /// The peer's close frame: its status code (nil when it sent none) and reason.
        case close(code: UInt16?, reason: String)
    }

    /// Legal transitions: `header` → `payload` → `header` | `closed`; any → `failed`.
    public enum State: Hashable, Sendable {
        case header
        case payload(Payload)
        case closed
        case failed(WebSocketProtocolError)
    }

    /// A frame whose payload is being read.
    public struct Payload: Hashable, Sendable {
        var opcode: WebSocketOpcode
        var remaining: UInt64
        var mask: [UInt8]?
        var maskOffset: Int
        var control: [UInt8]
        /// The frame ends its message.
        var fin: Bool
    }

    /// Our side.
    public let role: Role
    /// Where the decoder is.
    public private(set) var state: State = .header
    private var buffer = StreamBuffer()
    private var inMessage = false
    /// Payload bytes of the current binary message so far (saturating).
    private var messageBytes: UInt64 = 0

    /// Creates a decoder for `role`, optionally starting with bytes already received (those that
    /// followed the handshake).
    public init(role: Role, initialBytes: some Sequence<UInt8> = [UInt8]()) {
        self.role = role
        self.buffer.append(initialBytes)
    }

    /// Bytes received and not yet decoded.
    public var bufferedByteCount: Int { self.buffer.count }

    /// Adds received bytes (the `ByteStreamDecoder` contract: copied before returning, decoded by
    /// `next()`).
    public mutating func feed(_ bytes: UnsafeRawBufferPointer) {
        // After the peer's close frame, or a protocol error, nothing it sends means anything
        // (RFC 6455 §5.5.1): dropped, so a peer that keeps sending cannot grow the buffer.
        switch self.state {
        case .closed, .failed: return
        default: self.buffer.append(bytes)
        }
    }

    /// The next event, nil when more bytes are needed.
    public mutating func next() throws(WebSocketProtocolError) -> Event? {
        do throws(WebSocketProtocolError) {
            while true {
                switch self.state {
                case .header:
                    guard let payload = try self.readHeader() else { return nil }
                    self.state = .payload(payload)
                    if payload.remaining == 0, !payload.opcode.isControl {
                        self.state = .header
                        if payload.fin, self.messageBytes == 0 { return .emptyMessage }
                    }
                case .payload(var payload):
                    if payload.opcode.isControl {
                        let take = Int(min(payload.remaining, UInt64(self.buffer.count)))
                        payload.control += self.unmask(self.buffer.read(take), &payload)
                        payload.remaining -= UInt64(take)
                        guard payload.remaining == 0 else {
                            self.state = .payload(payload)
                            return nil
                        }
                        self.state = .header
                        return try self.controlEvent(payload)
                    }
                    guard !self.buffer.isEmpty else { return nil }
                    let take = Int(min(payload.remaining, UInt64(self.buffer.count)))
                    let bytes = self.unmask(self.buffer.read(take), &payload)
                    payload.remaining -= UInt64(take)
                    self.state = payload.remaining == 0 ? .header : .payload(payload)
                    return .data(bytes)
                case .closed:
                    return nil
                case .failed(let error):
                    throw error
                }
            }
        } catch {
            self.state = .failed(error)
            throw error
        }
    }

    private mutating func readHeader() throws(WebSocketProtocolError) -> Payload? {
        guard self.buffer.count >= 2 else { return nil }
        let offset = self.buffer.offset
        let (first, second) = (self.buffer[0], self.buffer[1])
        let lengthBytes = second & 0x7F == 126 ? 2 : second & 0x7F == 127 ? 8 : 0
        let masked = second & 0x80 != 0
        let headerLength = 2 + lengthBytes + (masked ? 4 : 0)
        guard self.buffer.count >= headerLength else { return nil }
        guard first & 0x70 == 0 else { throw WebSocketProtocolError(closeCode: 1002, "reserved bits set without a negotiated extension", offset: offset) }
        guard let opcode = WebSocketOpcode(rawValue: first & 0x0F) else {
            throw WebSocketProtocolError(closeCode: 1002, "unknown opcode \(first & 0x0F)", offset: offset)
        }
        let fin = first & 0x80 != 0
        guard masked == (self.role == .server) else {
            throw WebSocketProtocolError(closeCode: 1002, self.role == .server ? "unmasked frame from a client" : "masked frame from a server", offset: offset)
        }
        var length = UInt64(second & 0x7F)
        if lengthBytes > 0 {
            length = (0..<lengthBytes).reduce(UInt64(0)) { $0 << 8 | UInt64(self.buffer[2 + $1]) }
            guard lengthBytes == 2 ? length >= 126 : length > 0xFFFF && length >> 63 == 0 else {
                throw WebSocketProtocolError(closeCode: 1002, "payload length not in its shortest form", offset: offset)
            }
        }
        try self.checkSequence(opcode, fin: fin, length: length, offset: offset)
        let mask = masked ? (0..<4).map { self.buffer[2 + lengthBytes + $0] } : nil
        self.buffer.skip(headerLength)
        return Payload(opcode: opcode, remaining: length, mask: mask, maskOffset: 0, control: [], fin: fin)
    }

    private mutating func checkSequence(_ opcode: WebSocketOpcode, fin: Bool, length: UInt64, offset: Int) throws(WebSocketProtocolError) {
        switch opcode {
        case .close, .ping, .pong:
            guard fin, length <= 125 else {
                throw WebSocketProtocolError(closeCode: 1002, "control frame fragmented or longer than 125 bytes", offset: offset)
            }
        case .text:
            throw WebSocketProtocolError(closeCode: 1003, "text message on a binary tunnel", offset: offset)
        case .binary:
            guard !self.inMessage else { throw WebSocketProtocolError(closeCode: 1002, "new message before the previous one ended", offset: offset) }
            self.inMessage = !fin
            self.messageBytes = length
        case .continuation:
            guard self.inMessage else { throw WebSocketProtocolError(closeCode: 1002, "continuation frame without a message", offset: offset) }
            self.inMessage = !fin
            self.messageBytes = self.messageBytes > UInt64.max - length ? UInt64.max : self.messageBytes + length
        }
    }

    private func unmask(_ bytes: ArraySlice<UInt8>, _ payload: inout Payload) -> ArraySlice<UInt8> {
        guard let mask = payload.mask else { return bytes }
        var unmasked = Array(bytes)
        unmasked.withUnsafeMutableBytes { WebSocketMask.apply(mask, phase: payload.maskOffset, to: $0) }
        payload.maskOffset = (payload.maskOffset + unmasked.count) & 3
        return unmasked[...]
    }

    /// RFC 6455 §7.4: the codes an endpoint may send (1000–1003, 1007–1014, and 3000–4999 for
    /// libraries and applications); 1004–1006 and 1015 are reserved, the rest undefined.
    static func isSendableCloseCode(_ code: UInt16) -> Bool {
        switch code {
        case 1000...1003, 1007...1014, 3000...4999: true
        default: false
        }
    }

    private mutating func controlEvent(_ payload: Payload) throws(WebSocketProtocolError) -> Event {
        switch payload.opcode {
        case .ping: return .ping(payload.control)
        case .pong: return .pong(payload.control)
        default:
            self.state = .closed
            guard payload.control.count >= 2 else {
                guard payload.control.isEmpty else { throw WebSocketProtocolError(closeCode: 1002, "close frame with a one-byte body", offset: self.buffer.offset) }
                return .close(code: nil, reason: "")
            }
            let code = UInt16(payload.control[0]) << 8 | UInt16(payload.control[1])
            guard Self.isSendableCloseCode(code) else {
                throw WebSocketProtocolError(closeCode: 1002, "close code \(code) is not allowed on the wire", offset: self.buffer.offset)
            }
            guard let reason = String(validating: payload.control[2...], as: UTF8.self) else {
                throw WebSocketProtocolError(closeCode: 1007, "close reason is not UTF-8", offset: self.buffer.offset)
            }
            return .close(code: code, reason: reason)
        }
    }
}
