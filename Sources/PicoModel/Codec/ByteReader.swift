/// Reads wire primitives from untrusted bytes. Every read either succeeds or throws a
/// `WireDecodeError` naming the field and offset; nothing here can trap on any input. A field's
/// name is an autoclosure, built only when a read fails (decoders name fields by interpolation,
/// which cost an allocation per field of every message read).
public struct ByteReader: Sendable {
    private let bytes: [UInt8]
    /// The offset of the next byte to read.
    public private(set) var offset: Int

    /// Creates a reader positioned at the first byte.
    public init(_ bytes: [UInt8]) {
        self.bytes = bytes
        self.offset = 0
    }

    /// True when every byte has been read.
    public var isAtEnd: Bool { self.offset >= self.bytes.count }

    /// Bytes not yet read.
    public var remaining: Int { self.bytes.count - self.offset }

    /// Reads one byte.
    public mutating func readByte(_ field: @autoclosure () -> String) throws(WireDecodeError) -> UInt8 {
        guard self.offset < self.bytes.count else { throw WireDecodeError(.truncated, field: field(), offset: self.offset) }
        let value = self.bytes[self.offset]
        self.offset += 1
        return value
    }

    /// Reads a big-endian 16-bit integer.
    public mutating func readUInt16(_ field: @autoclosure () -> String) throws(WireDecodeError) -> UInt16 {
        guard self.remaining >= 2 else { throw WireDecodeError(.truncated, field: field(), offset: self.offset) }
        let value = UInt16(self.bytes[self.offset]) << 8 | UInt16(self.bytes[self.offset + 1])
        self.offset += 2
        return value
    }

    /// Reads a big-endian 64-bit integer.
    public mutating func readUInt64(_ field: @autoclosure () -> String) throws(WireDecodeError) -> UInt64 {
        guard self.remaining >= 8 else { throw WireDecodeError(.truncated, field: field(), offset: self.offset) }
        var value: UInt64 = 0
        for index in 0..<8 {
            value = value << 8 | UInt64(self.bytes[self.offset + index])
        }
        self.offset += 8
        return value
    }

    /// Reads an unsigned LEB128 varint of at most ten bytes that fits in 64 bits.
    public mutating func readVarint(_ field: @autoclosure () -> String) throws(WireDecodeError) -> UInt64 {
        let start = self.offset
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard self.offset < self.bytes.count else { throw WireDecodeError(.truncated, field: field(), offset: self.offset) }
            let byte = self.bytes[self.offset]
            self.offset += 1
            let payload = UInt64(byte & 0x7F)
            if shift == 63 && payload > 1 { throw WireDecodeError(.badVarint, field: field(), offset: start) }
            value |= payload << shift
            if byte & 0x80 == 0 { return value }
            shift += 7
            if shift > 63 { throw WireDecodeError(.badVarint, field: field(), offset: start) }
        }
    }

    /// Reads a varint no larger than `limit`.
    public mutating func readVarint(_ field: @autoclosure () -> String, limit: UInt64) throws(WireDecodeError) -> UInt64 {
        let start = self.offset
        let value = try self.readVarint(field())
        guard value <= limit else { throw WireDecodeError(.tooLarge(limit: Int(clamping: limit)), field: field(), offset: start) }
        return value
    }

    /// Reads a count of items, each at least `minimumItemSize` bytes long, that must fit both under
    /// `limit` and in the bytes that remain (so a forged count cannot make the caller allocate).
    public mutating func readCount(_ field: @autoclosure () -> String, limit: Int, minimumItemSize: Int = 1) throws(WireDecodeError) -> Int {
        let start = self.offset
        let value = try self.readVarint(field(), limit: UInt64(limit))
        let count = Int(value)
        guard count <= self.remaining / max(1, minimumItemSize) else {
            throw WireDecodeError(.truncated, field: field(), offset: start)
        }
        return count
    }

    /// Reads a varint-length-prefixed UTF-8 string of at most `maxBytes` bytes. When its bytes
    /// are exactly `likely`'s, `likely` itself is returned, without decoding (a node's three
    /// addresses usually share one host).
    public mutating func readString(_ field: @autoclosure () -> String, maxBytes: Int, likely: String? = nil) throws(WireDecodeError) -> String {
        let start = self.offset
        let length = Int(try self.readVarint(field(), limit: UInt64(maxBytes)))
        guard self.remaining >= length else { throw WireDecodeError(.truncated, field: field(), offset: self.offset) }
        let offset = self.offset
        if var likely, likely.utf8.count == length {
            let same = likely.withUTF8 { known in
                self.bytes.withUnsafeBufferPointer { buffer in known.elementsEqual(buffer[offset..<(offset + length)]) }
            }
            if same {
                self.offset += length
                return likely
            }
        }
        let decoded: String? = self.bytes.withUnsafeBufferPointer { buffer in
            let part = UnsafeBufferPointer(rebasing: buffer[offset..<(offset + length)])
            // ASCII (names, addresses, endpoints) is valid UTF-8 as it stands: decoded without
            // the generic validator, which costs more than the rest of a gossip decode.
            if part.allSatisfy({ $0 < 0x80 }) { return String(decoding: part, as: UTF8.self) }
            return String(validating: part, as: UTF8.self)
        }
        guard let text = decoded else {
            throw WireDecodeError(.invalidUTF8, field: field(), offset: start)
        }
        self.offset += length
        return text
    }

    /// Fails with `.trailingBytes` unless every byte has been read.
    public func expectEnd(_ field: @autoclosure () -> String) throws(WireDecodeError) {
        guard self.isAtEnd else { throw WireDecodeError(.trailingBytes, field: field(), offset: self.offset) }
    }
}
