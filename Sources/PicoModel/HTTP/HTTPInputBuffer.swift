/// Bytes received and not yet decoded, with the offset of the first one in the connection (for
/// error messages). Reuses its storage: consumed bytes are dropped in bulk once they are the
/// larger part, so feeding and consuming in small pieces stays linear.
public struct HTTPInputBuffer: Hashable, Sendable {
    private var storage: [UInt8] = []
    private var readIndex = 0
    /// Connection offset of the next unread byte.
    public private(set) var offset = 0

    /// Creates an empty buffer.
    public init() {}

    /// Unread byte count.
    public var count: Int { self.storage.count - self.readIndex }

    /// True when nothing is unread.
    public var isEmpty: Bool { self.count == 0 }

    /// Appends received bytes.
    public mutating func append(_ bytes: some Sequence<UInt8>) {
        if self.readIndex > 0, self.readIndex >= self.storage.count / 2 {
            self.storage.removeFirst(self.readIndex)
            self.readIndex = 0
        }
        self.storage.append(contentsOf: bytes)
    }

    /// The unread byte at `index` (0 is the next one). `index` must be below `count`.
    public subscript(index: Int) -> UInt8 {
        self.storage[self.readIndex + index]
    }

    /// The index (relative to the next unread byte) of the first CRLF among the first `limit`
    /// unread bytes, or nil.
    public func firstCRLF(within limit: Int) -> Int? {
        let end = min(self.storage.count, self.readIndex + limit)
        var index = self.readIndex
        while index + 1 < end {
            if self.storage[index] == 0x0D, self.storage[index + 1] == 0x0A { return index - self.readIndex }
            index += 1
        }
        return nil
    }

    /// The index of the first `CRLF CRLF` among the first `limit` unread bytes, or nil.
    public func firstEmptyLine(within limit: Int) -> Int? {
        let end = min(self.storage.count, self.readIndex + limit)
        var index = self.readIndex
        while index + 3 < end {
            if self.storage[index] == 0x0D, self.storage[index + 1] == 0x0A, self.storage[index + 2] == 0x0D, self.storage[index + 3] == 0x0A {
                return index - self.readIndex
            }
            index += 1
        }
        return nil
    }

    /// Removes and returns the next `length` unread bytes (at most `count`).
    public mutating func read(_ length: Int) -> ArraySlice<UInt8> {
        let length = min(length, self.count)
        let slice = self.storage[self.readIndex..<(self.readIndex + length)]
        self.readIndex += length
        self.offset += length
        return slice
    }

    /// Drops the next `length` unread bytes (at most `count`).
    public mutating func skip(_ length: Int) {
        let length = min(length, self.count)
        self.readIndex += length
        self.offset += length
    }

    /// Removes and returns every unread byte.
    public mutating func readAll() -> ArraySlice<UInt8> {
        self.read(self.count)
    }
}
