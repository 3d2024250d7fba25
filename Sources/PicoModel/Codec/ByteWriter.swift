/// Appends wire primitives to a byte array: fixed-width big-endian integers, LEB128 varints and
/// length-prefixed UTF-8 strings. The counterpart of `ByteReader`.
public struct ByteWriter: Sendable {
    /// The bytes written so far.
    public private(set) var bytes: [UInt8]

    /// Creates an empty writer with room for `capacity` bytes.
    public init(capacity: Int = 256) {
        self.bytes = []
        self.bytes.reserveCapacity(capacity)
    }

    /// The number of bytes written so far.
    public var count: Int { self.bytes.count }

    /// Appends one byte.
    public mutating func writeByte(_ value: UInt8) {
        self.bytes.append(value)
    }

    /// Appends a big-endian 16-bit integer.
    public mutating func writeUInt16(_ value: UInt16) {
        self.bytes.append(UInt8(truncatingIfNeeded: value >> 8))
        self.bytes.append(UInt8(truncatingIfNeeded: value))
    }

    /// Appends a big-endian 64-bit integer.
    public mutating func writeUInt64(_ value: UInt64) {
        withUnsafeBytes(of: value.bigEndian) { self.bytes.append(contentsOf: $0) }
    }

    /// Appends an unsigned LEB128 varint (1 to 10 bytes).
    public mutating func writeVarint(_ value: UInt64) {
        var remaining = value
        while remaining >= 0x80 {
            self.bytes.append(UInt8(truncatingIfNeeded: remaining) | 0x80)
            remaining >>= 7
        }
        self.bytes.append(UInt8(remaining))
    }

    /// Appends a varint length followed by the UTF-8 bytes of `value`.
    public mutating func writeString(_ value: String) {
        let utf8 = value.utf8
        self.writeVarint(UInt64(utf8.count))
        self.bytes.append(contentsOf: utf8)
    }

    /// Appends raw bytes.
    public mutating func writeBytes(_ value: [UInt8]) {
        self.bytes.append(contentsOf: value)
    }

    /// Removes everything written after the first `count` bytes (used to undo a partial item).
    public mutating func truncate(to count: Int) {
        precondition(count <= self.bytes.count, "cannot truncate \(self.bytes.count) bytes to \(count)")
        self.bytes.removeSubrange(count...)
    }

    /// The number of bytes `writeVarint(value)` appends.
    public static func varintSize(_ value: UInt64) -> Int {
        var size = 1
        var remaining = value >> 7
        while remaining != 0 {
            size += 1
            remaining >>= 7
        }
        return size
    }

    /// The number of bytes `writeString(value)` appends.
    public static func stringSize(_ value: String) -> Int {
        let length = value.utf8.count
        return varintSize(UInt64(length)) + length
    }
}
