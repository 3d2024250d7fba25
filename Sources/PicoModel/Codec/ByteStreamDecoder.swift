/// A decoder of a byte stream, fed bytes as they arrive and asked for what they decode to: the
/// shared `feed` contract of `LengthPrefixedFrames`, `YamuxFrameDecoder`, `YamuxSession`,
/// `WebSocketFrameDecoder`, `HTTP1RequestDecoder` and `HTTP1ResponseDecoder`.
///
/// What a caller may rely on:
/// - `feed` copies the bytes before it returns: the caller may reuse or free its buffer at once
///   (a socket's read buffer, a slice of a message that is then dropped).
/// - `feed` only buffers. It never fails and never decodes; what the bytes mean (parts, frames,
///   messages, events) comes out of the decoder's own `next()`, in the order the bytes were fed,
///   and protocol errors and size limits are reported there. So a caller drains `next()` after
///   each `feed`: bytes fed without draining stay buffered without bound.
/// - Bytes may be fed in pieces of any size, down to one byte at a time.
///
/// A conforming decoder implements the one requirement, the raw-buffer form the runtime's
/// sockets read into; the other forms (`ArraySlice<UInt8>`, `[UInt8]`, any `Sequence<UInt8>`)
/// come from the extension below and call it without copying first when their bytes are
/// contiguous. They are `@inlinable`, so calls from other modules run specialized for the
/// concrete decoder rather than through generic code element by element.
public protocol ByteStreamDecoder {
    /// Appends received bytes to the decoder's input (see the protocol's contract).
    mutating func feed(_ bytes: UnsafeRawBufferPointer)
}

extension ByteStreamDecoder {
    /// Appends received bytes (a message's payload, a stream's data) without an intermediate copy.
    @inlinable
    public mutating func feed(_ bytes: ArraySlice<UInt8>) {
        bytes.withUnsafeBytes { self.feed($0) }
    }

    /// Appends received bytes without an intermediate copy.
    @inlinable
    public mutating func feed(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { self.feed($0) }
    }

    /// Appends received bytes of any sequence: directly when its storage is contiguous, through
    /// one temporary array otherwise (tests, string views, lazily made bytes).
    @inlinable
    public mutating func feed(_ bytes: some Sequence<UInt8>) {
        let fed: Void? = bytes.withContiguousStorageIfAvailable { self.feed(UnsafeRawBufferPointer($0)) }
        guard fed == nil else { return }
        Array(bytes).withUnsafeBytes { self.feed($0) }
    }
}
