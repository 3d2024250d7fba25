/// The 12-byte yamux frame header (hashicorp/yamux `spec.md`): version 0, type, flags, stream
/// ID and length, big-endian. For data frames `length` counts the payload bytes that follow; for
/// window updates it is the window increment; for pings the opaque ping value; for go-away the
/// error code.
public struct YamuxHeader: Hashable, Sendable {
    /// Frame types.
    public enum FrameType: UInt8, Hashable, Sendable {
        case data = 0x0
        case windowUpdate = 0x1
        case ping = 0x2
        case goAway = 0x3
    }

    /// Header flags (a set of bits).
    public struct Flags: OptionSet, Hashable, Sendable {
        public let rawValue: UInt16
        public init(rawValue: UInt16) { self.rawValue = rawValue }
        /// Opens a stream (or, on a ping, asks for an answer).
        public static let syn = Flags(rawValue: 0x1)
        /// Acknowledges a stream (or answers a ping).
        public static let ack = Flags(rawValue: 0x2)
        /// Half-closes a stream: the sender sends no more data.
        public static let fin = Flags(rawValue: 0x4)
        /// Resets a stream at once.
        public static let rst = Flags(rawValue: 0x8)
    }

    /// Go-away error codes.
    public enum GoAwayCode: UInt32, Hashable, Sendable {
        case normal = 0
        case protocolError = 1
        case internalError = 2
    }

    /// The encoded size.
    public static let size = 12
    /// The only protocol version.
    public static let version: UInt8 = 0
    /// The stream window both sides start with (256 KiB).
    public static let initialWindow: UInt32 = 256 * 1_024

    public var type: FrameType
    public var flags: Flags
    public var streamID: UInt32
    public var length: UInt32

    /// Creates a header.
    public init(_ type: FrameType, flags: Flags = [], streamID: UInt32, length: UInt32) {
        self.type = type
        self.flags = flags
        self.streamID = streamID
        self.length = length
    }

    /// Appends the 12 header bytes.
    public func write(into output: inout [UInt8]) {
        output.append(Self.version)
        output.append(self.type.rawValue)
        output.append(UInt8(self.flags.rawValue >> 8))
        output.append(UInt8(truncatingIfNeeded: self.flags.rawValue))
        for value in [self.streamID, self.length] {
            output.append(contentsOf: [UInt8(value >> 24), UInt8(truncatingIfNeeded: value >> 16), UInt8(truncatingIfNeeded: value >> 8), UInt8(truncatingIfNeeded: value)])
        }
    }
}

/// The peer broke the yamux framing; the session answers with go-away (protocol error) and closes.
public struct YamuxProtocolError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What was wrong.
    public var message: String
    /// Offset of the frame's first byte in the session's byte stream.
    public var offset: Int

    /// Creates an error.
    public init(_ message: String, offset: Int) {
        self.message = message
        self.offset = offset
    }

    public var description: String { "\(self.message) (frame at byte \(self.offset))" }
}

/// Splits a yamux byte stream into frames: a header, then for data frames the payload in pieces
/// as it arrives (never more than `maxDataFrame` bytes per frame, which bounds what a peer can
/// make us expect). Malformed headers (a version other than 0, an unknown type, flags outside
/// SYN|ACK|FIN|RST, a session-level frame on a stream or the reverse) are errors, after which the
/// decoder stays failed.
public struct YamuxFrameDecoder: Hashable, Sendable, ByteStreamDecoder {
    /// A decoded piece.
    public enum Event: Hashable, Sendable {
        /// A frame header. For data frames, `.data` pieces totalling `length` bytes follow.
        case header(YamuxHeader)
        /// Payload bytes of the current data frame.
        case data(streamID: UInt32, ArraySlice<UInt8>)
    }

    private struct PendingPayload: Hashable, Sendable {
        var streamID: UInt32
        var remaining: UInt32
    }

    /// Largest data frame accepted: a peer may not send more than the window it was given.
    public let maxDataFrame: UInt32
    private var buffer = StreamBuffer()
    private var payload: PendingPayload?
    private var failure: YamuxProtocolError?

    /// Creates a decoder; `initialBytes` are bytes already received.
    public init(maxDataFrame: UInt32 = YamuxHeader.initialWindow, initialBytes: some Sequence<UInt8> = [UInt8]()) {
        self.maxDataFrame = maxDataFrame
        self.buffer.append(initialBytes)
    }

    /// Bytes received and not yet decoded.
    public var bufferedByteCount: Int { self.buffer.count }

    /// Session offset of the next undecoded byte.
    public var offset: Int { self.buffer.offset }

    /// Adds received bytes (the `ByteStreamDecoder` contract: copied before returning, decoded by
    /// `next()`).
    public mutating func feed(_ bytes: UnsafeRawBufferPointer) {
        self.buffer.append(bytes)
    }

    /// The next event, nil when more bytes are needed.
    public mutating func next() throws(YamuxProtocolError) -> Event? {
        if let failure = self.failure { throw failure }
        if let payload = self.payload {
            guard !self.buffer.isEmpty else { return nil }
            let bytes = self.buffer.read(Int(min(payload.remaining, UInt32(clamping: self.buffer.count))))
            let left = payload.remaining - UInt32(bytes.count)
            self.payload = left == 0 ? nil : PendingPayload(streamID: payload.streamID, remaining: left)
            return .data(streamID: payload.streamID, bytes)
        }
        guard self.buffer.count >= YamuxHeader.size else { return nil }
        do throws(YamuxProtocolError) {
            let header = try self.parseHeader()
            self.buffer.skip(YamuxHeader.size)
            if header.type == .data, header.length > 0 { self.payload = PendingPayload(streamID: header.streamID, remaining: header.length) }
            return .header(header)
        } catch {
            self.failure = error
            throw error
        }
    }

    private func parseHeader() throws(YamuxProtocolError) -> YamuxHeader {
        let offset = self.buffer.offset
        guard self.buffer[0] == YamuxHeader.version else { throw YamuxProtocolError("unsupported yamux version \(self.buffer[0])", offset: offset) }
        guard let type = YamuxHeader.FrameType(rawValue: self.buffer[1]) else {
            throw YamuxProtocolError("unknown yamux frame type \(self.buffer[1])", offset: offset)
        }
        let flags = YamuxHeader.Flags(rawValue: UInt16(self.buffer[2]) << 8 | UInt16(self.buffer[3]))
        guard flags.isSubset(of: [.syn, .ack, .fin, .rst]) else { throw YamuxProtocolError("unknown yamux flags \(flags.rawValue)", offset: offset) }
        let word = { (at: Int) in (0..<4).reduce(UInt32(0)) { $0 << 8 | UInt32(self.buffer[at + $1]) } }
        let header = YamuxHeader(type, flags: flags, streamID: word(4), length: word(8))
        switch type {
        case .ping, .goAway:
            guard header.streamID == 0 else { throw YamuxProtocolError("\(type) frame on stream \(header.streamID)", offset: offset) }
        case .data, .windowUpdate:
            guard header.streamID != 0 else { throw YamuxProtocolError("\(type) frame on stream 0", offset: offset) }
        }
        if type == .data, header.length > self.maxDataFrame {
            throw YamuxProtocolError("data frame of \(header.length) bytes exceeds the \(self.maxDataFrame)-byte limit", offset: offset)
        }
        return header
    }
}
