/// Bytes received on a stream (HTTP, WebSocket, yamux) and not yet decoded, with the offset of
/// the first one in the connection (for error messages). Reuses its storage: consumed bytes are dropped in bulk once they are the
/// larger part, so feeding and consuming in small pieces stays linear.
public struct StreamBuffer: Hashable, Sendable {
    private var storage: [UInt8] = []
    private var readIndex = 0
    /// Unread bytes known not to start a CRLF, and a CRLF CRLF (reset when bytes are consumed).
    private var crlfSearched = 0
    private var emptyLineSearched = 0
    /// Connection offset of the next unread byte.
    public private(set) var offset = 0

    private static let crlf: [UInt8] = [0x0D, 0x0A]
    private static let emptyLine: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A]

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
    /// unread bytes, or nil. A search resumes where the last unsuccessful one stopped, so a line
    /// that arrives a byte at a time is scanned once, not once per byte.
    public mutating func firstCRLF(within limit: Int) -> Int? {
        let (found, searched) = self.find(Self.crlf, within: limit, from: self.crlfSearched)
        self.crlfSearched = searched
        return found
    }

    /// The index of the first `CRLF CRLF` among the first `limit` unread bytes, or nil (resumed
    /// like `firstCRLF`).
    public mutating func firstEmptyLine(within limit: Int) -> Int? {
        let (found, searched) = self.find(Self.emptyLine, within: limit, from: self.emptyLineSearched)
        self.emptyLineSearched = searched
        return found
    }

    /// Searches `pattern` (CRLF or CRLF CRLF) from `searched` (bytes already known not to start a
    /// match, relative to the next unread byte) up to `limit`; returns the match and how far the
    /// search is settled. Scans the storage in place: every head and chunk line is found here.
    private func find(_ pattern: [UInt8], within limit: Int, from searched: Int) -> (Int?, Int) {
        let end = min(self.storage.count, self.readIndex + limit)
        let readIndex = self.readIndex
        return self.storage.withUnsafeBufferPointer { bytes in
            var index = readIndex + searched
            let last = end - pattern.count
            while index <= last {
                if bytes[index] == 0x0D {
                    var matched = 1
                    while matched < pattern.count, bytes[index + matched] == pattern[matched] { matched += 1 }
                    if matched == pattern.count { return (index - readIndex, searched) }
                }
                index += 1
            }
            return (nil, max(searched, index - readIndex))
        }
    }

    /// Removes and returns the next `length` unread bytes (at most `count`).
    public mutating func read(_ length: Int) -> ArraySlice<UInt8> {
        let length = min(length, self.count)
        let slice = self.storage[self.readIndex..<(self.readIndex + length)]
        self.consumed(length)
        return slice
    }

    /// Drops the next `length` unread bytes (at most `count`).
    public mutating func skip(_ length: Int) {
        self.consumed(min(length, self.count))
    }

    private mutating func consumed(_ length: Int) {
        self.readIndex += length
        self.offset += length
        self.crlfSearched = 0
        self.emptyLineSearched = 0
    }

    /// Removes and returns every unread byte.
    public mutating func readAll() -> ArraySlice<UInt8> {
        self.read(self.count)
    }
}
