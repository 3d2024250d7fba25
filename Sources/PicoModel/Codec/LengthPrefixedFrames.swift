/// The framing of state exchanges on TCP: each message is a `u32` big-endian byte length, then the
/// message (at most `maxLength` bytes). The opener sends its request, the peer its reply, and the
/// peer closes. A feed/next machine: bytes in, whole messages out; a length above the limit is an
/// error before anything is buffered for it.
public struct LengthPrefixedFrames: Sendable, ByteStreamDecoder {
    /// Largest message accepted (the state exchange bound: 16 MiB).
    public let maxLength: Int
    private var buffer = StreamBuffer()
    private var pendingLength: Int?

    /// A decoder for messages of at most `maxLength` bytes.
    public init(maxLength: Int = 16 * 1_024 * 1_024) {
        self.maxLength = maxLength
    }

    /// `message` with its length prefix.
    public static func frame(_ message: [UInt8]) -> [UInt8] {
        let length = UInt32(message.count)
        return [UInt8(length >> 24), UInt8(truncatingIfNeeded: length >> 16), UInt8(truncatingIfNeeded: length >> 8), UInt8(truncatingIfNeeded: length)] + message
    }

    /// Bytes received (the `ByteStreamDecoder` contract: copied before returning, decoded by
    /// `next()`).
    public mutating func feed(_ bytes: UnsafeRawBufferPointer) {
        self.buffer.append(bytes)
    }

    /// Bytes received and not yet part of a returned message.
    public var bufferedCount: Int { self.buffer.count }

    /// The next whole message, nil until one is complete; throws `tooLarge` for a length above
    /// the limit (at the offset of the prefix).
    public mutating func next() throws(WireDecodeError) -> [UInt8]? {
        if self.pendingLength == nil {
            guard self.buffer.count >= 4 else { return nil }
            let offset = self.buffer.offset
            let prefix = Array(self.buffer.read(4))
            let length = Int(prefix[0]) << 24 | Int(prefix[1]) << 16 | Int(prefix[2]) << 8 | Int(prefix[3])
            guard length <= self.maxLength else { throw WireDecodeError(.tooLarge(limit: self.maxLength), field: "frame.length", offset: offset) }
            self.pendingLength = length
        }
        guard let length = self.pendingLength, self.buffer.count >= length else { return nil }
        self.pendingLength = nil
        return Array(self.buffer.read(length))
    }
}
