/// Serialises HTTP/1.1 heads and chunked framing, appending to a caller-owned buffer (so a
/// connection reuses one output buffer). Callers are trusted: names and values are written as
/// given, so they must come from a decoder (which validated them) or from our own code.
public enum HTTP1Encoder {
    /// Appends `METHOD target HTTP/x.y`, the fields and the empty line.
    public static func write(_ head: HTTPRequestHead, into output: inout [UInt8]) {
        output.append(contentsOf: head.method.utf8)
        output.append(0x20)
        output.append(contentsOf: head.target.utf8)
        output.append(0x20)
        output.append(contentsOf: head.version.description.utf8)
        Self.writeFields(head.headers, into: &output)
    }

    /// Appends `HTTP/x.y status reason`, the fields and the empty line.
    public static func write(_ head: HTTPResponseHead, into output: inout [UInt8]) {
        output.append(contentsOf: head.version.description.utf8)
        output.append(0x20)
        output.append(contentsOf: String(head.status).utf8)
        output.append(0x20)
        output.append(contentsOf: head.reason.utf8)
        Self.writeFields(head.headers, into: &output)
    }

    /// Appends one chunk of a chunked body (`size CRLF data CRLF`); nothing for empty data, since
    /// an empty chunk would end the body.
    public static func writeChunk(_ data: some Collection<UInt8>, into output: inout [UInt8]) {
        self.appendChunk(data, into: &output)
    }

    /// `writeChunk` for a slice: concrete, so callers in other modules get a specialized copy.
    public static func writeChunk(_ data: ArraySlice<UInt8>, into output: inout [UInt8]) {
        self.appendChunk(data, into: &output)
    }

    static func appendChunk(_ data: some Collection<UInt8>, into output: inout [UInt8]) {
        guard !data.isEmpty else { return }
        output.append(contentsOf: String(data.count, radix: 16).utf8)
        output.append(contentsOf: [0x0D, 0x0A])
        output.append(contentsOf: data)
        output.append(contentsOf: [0x0D, 0x0A])
    }

    /// Appends the last chunk, the trailers and the empty line.
    public static func writeLastChunk(trailers: HTTPHeaders = [:], into output: inout [UInt8]) {
        output.append(0x30)
        Self.writeFields(trailers, into: &output)
    }

    /// The bytes of a request head.
    public static func encode(_ head: HTTPRequestHead) -> [UInt8] {
        var output: [UInt8] = []
        Self.write(head, into: &output)
        return output
    }

    /// The bytes of a response head.
    public static func encode(_ head: HTTPResponseHead) -> [UInt8] {
        var output: [UInt8] = []
        Self.write(head, into: &output)
        return output
    }

    private static func writeFields(_ headers: HTTPHeaders, into output: inout [UInt8]) {
        output.append(contentsOf: [0x0D, 0x0A])
        for field in headers {
            output.append(contentsOf: field.name.utf8)
            output.append(contentsOf: [0x3A, 0x20])
            output.append(contentsOf: field.value.utf8)
            output.append(contentsOf: [0x0D, 0x0A])
        }
        output.append(contentsOf: [0x0D, 0x0A])
    }
}
