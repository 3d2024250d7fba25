/// Why a gossip datagram or state-exchange message could not be decoded.
///
/// Decoding untrusted bytes never traps: every failure is one of these, naming the field and the
/// byte offset where it was detected. Callers may rely on `description` being a single line fit
/// for a log record.
public struct WireDecodeError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What went wrong.
    public enum Code: Hashable, Sendable {
        /// The input ended inside a field.
        case truncated
        /// The first byte is not Pico's magic byte.
        case badMagic
        /// The wire version is one this build does not speak.
        case unsupportedVersion(UInt8)
        /// A message or item kind byte that this version does not define.
        case unknownKind(UInt8)
        /// A length or count above the limit for that field.
        case tooLarge(limit: Int)
        /// A variable-length integer longer than ten bytes or above the field's range.
        case badVarint
        /// A string field that is not valid UTF-8.
        case invalidUTF8
        /// A field with a value the protocol forbids (zero UID, unknown status, ...).
        case invalidValue
        /// Bytes left over after the last field.
        case trailingBytes
    }

    /// What went wrong.
    public var code: Code
    /// The field being read, e.g. `"ping.sequence"`.
    public var field: String
    /// Byte offset from the start of the input where the problem was detected.
    public var offset: Int

    /// Creates an error.
    public init(_ code: Code, field: String, offset: Int) {
        self.code = code
        self.field = field
        self.offset = offset
    }

    public var description: String {
        let what: String
        switch self.code {
        case .truncated: what = "input ends inside the field"
        case .badMagic: what = "not a Pico gossip message (bad magic byte)"
        case .unsupportedVersion(let version): what = "unsupported wire version \(version)"
        case .unknownKind(let kind): what = "unknown kind \(kind)"
        case .tooLarge(let limit): what = "value above the limit of \(limit)"
        case .badVarint: what = "malformed variable-length integer"
        case .invalidUTF8: what = "string is not valid UTF-8"
        case .invalidValue: what = "value not allowed here"
        case .trailingBytes: what = "unexpected bytes after the message"
        }
        return "\(what) in \(self.field) at byte \(self.offset)"
    }
}
