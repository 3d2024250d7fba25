/// The peer sent bytes that are not valid HTTP/1.1 (a remote protocol error, in h11's terms).
///
/// Decoding never traps on any input: every problem is one of these. `statusHint` is the status a
/// server should answer with (400, 413, 414, 431, 501, 505); after any error the decoder is
/// finished and the connection must be closed, since its framing can no longer be trusted.
/// `description` is one line naming what was wrong and where (byte offset in the connection).
public struct HTTPProtocolError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The response status a server should send, when it can still send one.
    public var statusHint: Int
    /// What was wrong, e.g. `"conflicting Content-Length values"`.
    public var message: String
    /// Offset from the first byte the decoder was fed where the problem was found.
    public var offset: Int

    /// Creates an error.
    public init(statusHint: Int, _ message: String, offset: Int) {
        self.statusHint = statusHint
        self.message = message
        self.offset = offset
    }

    public var description: String { "\(self.message) (at byte \(self.offset))" }
}

/// Bounds on what an HTTP/1.1 decoder buffers before it gives up. Every limit hit is an
/// `HTTPProtocolError` with the matching status hint, never unbounded memory.
public struct HTTPDecoderLimits: Hashable, Sendable {
    /// Longest request or status line, CRLF excluded (414 for a request line).
    public var maxStartLineBytes: Int = 8 * 1_024
    /// Largest head (start line plus every header line), and separately largest trailer
    /// section (431).
    public var maxHeadBytes: Int = 64 * 1_024
    /// Most header fields in one head or trailer section (431).
    public var maxHeaderCount: Int = 128
    /// Longest chunk-size line including extensions (400).
    public var maxChunkLineBytes: Int = 4 * 1_024
    /// Empty lines tolerated before a request line (RFC 9112 §2.2 asks to ignore at least one).
    public var maxLeadingEmptyLines: Int = 4

    /// The defaults above.
    public init() {}
}

extension StreamBuffer {
    /// `firstEmptyLine(within:)` for HTTP: a bare CR or LF before the end of the head (or trailer
    /// section) is refused at once with `status`, naming `place`, instead of waiting for a CRLF
    /// CRLF that a bare-LF client never sends.
    mutating func endOfHead(within limit: Int, status: Int, place: String) throws(HTTPProtocolError) -> Int? {
        do throws(BareLineBreak) {
            return try self.firstEmptyLine(within: limit)
        } catch {
            throw HTTPProtocolError(statusHint: status, "\(error.name) in the \(place)", offset: self.offset + error.index)
        }
    }

    /// `firstCRLF(within:)` for HTTP, refusing a bare CR or LF as `endOfHead` does.
    mutating func endOfLine(within limit: Int, status: Int, place: String) throws(HTTPProtocolError) -> Int? {
        do throws(BareLineBreak) {
            return try self.firstCRLF(within: limit)
        } catch {
            throw HTTPProtocolError(statusHint: status, "\(error.name) in the \(place)", offset: self.offset + error.index)
        }
    }
}
