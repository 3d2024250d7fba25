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
    /// that arrives a byte at a time is scanned once, not once per byte. Throws when a CR or LF
    /// outside a CRLF pair comes first: a line that ends in a bare LF never ends, and waiting
    /// for it would hold the connection until a timeout.
    public mutating func firstCRLF(within limit: Int) throws(BareLineBreak) -> Int? {
        let (found, searched) = try self.find(Self.crlf, within: limit, from: self.crlfSearched)
        self.crlfSearched = searched
        return found
    }

    /// The index of the first `CRLF CRLF` among the first `limit` unread bytes, or nil (resumed
    /// and refusing bare line breaks like `firstCRLF`).
    public mutating func firstEmptyLine(within limit: Int) throws(BareLineBreak) -> Int? {
        let (found, searched) = try self.find(Self.emptyLine, within: limit, from: self.emptyLineSearched)
        self.emptyLineSearched = searched
        return found
    }

    /// Searches `pattern` (CRLF or CRLF CRLF) from `searched` (bytes already known not to start a
    /// match, relative to the next unread byte) up to `limit`; returns the match and how far the
    /// search is settled. Scans the storage in place: every head and chunk line is found here.
    /// Every byte before the match is checked for a CR not followed by LF and an LF not preceded
    /// by CR.
    private func find(_ pattern: [UInt8], within limit: Int, from searched: Int) throws(BareLineBreak) -> (Int?, Int) {
        let end = min(self.storage.count, self.readIndex + limit)
        let readIndex = self.readIndex
        let outcome: (found: Int?, settled: Int, bare: BareLineBreak?) = self.storage.withUnsafeBufferPointer { bytes in
            var index = readIndex + searched
            let last = end - pattern.count
            while index < end {
                let byte = bytes[index]
                if byte == 0x0D {
                    if index + 1 < end, bytes[index + 1] != 0x0A { return (nil, 0, BareLineBreak(index: index - readIndex, byte: byte)) }
                    if index <= last {
                        var matched = 1
                        while matched < pattern.count, bytes[index + matched] == pattern[matched] { matched += 1 }
                        if matched == pattern.count { return (index - readIndex, searched, nil) }
                    }
                } else if byte == 0x0A, index == readIndex || bytes[index - 1] != 0x0D {
                    return (nil, 0, BareLineBreak(index: index - readIndex, byte: byte))
                }
                index += 1
            }
            // Bytes too near the end to start a match are searched again when more arrive.
            return (nil, max(searched, min(index, last + 1) - readIndex), nil)
        }
        if let bare = outcome.bare { throw bare }
        return (outcome.found, outcome.settled)
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

/// A CR not followed by LF, or an LF not preceded by CR, where a line break was expected.
public struct BareLineBreak: Error, Hashable, Sendable {
    /// Its index, relative to the buffer's next unread byte when the search ran.
    public var index: Int
    /// The byte: 0x0D (CR) or 0x0A (LF).
    public var byte: UInt8

    /// Names the byte: "bare CR" or "bare LF".
    public var name: String { self.byte == 0x0D ? "bare CR" : "bare LF" }
}
