/// A JSON document (RFC 8259), as `pico status` reads the admin port's answers and the token
/// rules read JWT headers, claims and key sets: objects keep their key order (the server's order
/// is the order columns and fields are printed in) and any repeated key, numbers keep their text.
public indirect enum JSONValue: Hashable, Sendable {
    case null
    case bool(Bool)
    case number(String)
    case string(String)
    case array([JSONValue])
    case object([(String, JSONValue)])

    public static func == (left: JSONValue, right: JSONValue) -> Bool {
        switch (left, right) {
        case (.null, .null): return true
        case (.bool(let a), .bool(let b)): return a == b
        case (.number(let a), .number(let b)): return a == b
        case (.string(let a), .string(let b)): return a == b
        case (.array(let a), .array(let b)): return a == b
        case (.object(let a), .object(let b)): return a.map(\.0) == b.map(\.0) && a.map(\.1) == b.map(\.1)
        default: return false
        }
    }

    public func hash(into hasher: inout Hasher) {
        switch self {
        case .null: hasher.combine(0)
        case .bool(let value): hasher.combine(value)
        case .number(let text), .string(let text): hasher.combine(text)
        case .array(let items): hasher.combine(items)
        case .object(let pairs):
            for (key, value) in pairs {
                hasher.combine(key)
                hasher.combine(value)
            }
        }
    }

    /// A parse failure: what was expected and the byte offset where it was not found.
    public struct ParseError: Error, Hashable, Sendable, CustomStringConvertible {
        public var message: String
        public var offset: Int
        public var description: String { "invalid JSON at byte \(self.offset): \(self.message)" }

        public init(message: String, offset: Int) {
            self.message = message
            self.offset = offset
        }
    }

    /// Nesting deeper than this is refused by default (the status documents are two levels deep).
    public static let maxDepth = 64

    /// Parses one JSON document (RFC 8259); trailing non-space bytes are an error.
    public static func parse(_ text: String) throws(ParseError) -> JSONValue {
        try Self.parse(bytes: Array(text.utf8))
    }

    /// Parses one JSON document from UTF-8 `bytes`, refusing nesting deeper than `maxDepth`
    /// (the parser recurses once per level, so hostile input is bounded by it).
    public static func parse(bytes: [UInt8], maxDepth: Int = JSONValue.maxDepth) throws(ParseError) -> JSONValue {
        var parser = JSONParser(bytes: bytes, maxDepth: maxDepth)
        let value = try parser.value(depth: 0)
        parser.skipSpace()
        guard parser.offset == parser.bytes.count else { throw parser.error("unexpected bytes after the document") }
        return value
    }

    /// The value as JSON text, indented by two spaces per level.
    public func prettyJSON(indent: String = "") -> String {
        let inner = indent + "  "
        switch self {
        case .null: return "null"
        case .bool(let value): return value ? "true" : "false"
        case .number(let text): return text
        case .string(let text): return JSONText.quote(text)
        case .array(let items):
            guard !items.isEmpty else { return "[]" }
            return "[\n" + items.map { inner + $0.prettyJSON(indent: inner) }.joined(separator: ",\n") + "\n" + indent + "]"
        case .object(let pairs):
            guard !pairs.isEmpty else { return "{}" }
            return "{\n" + pairs.map { inner + JSONText.quote($0.0) + ": " + $0.1.prettyJSON(indent: inner) }.joined(separator: ",\n") + "\n" + indent + "}"
        }
    }

    /// The text of a scalar as a person reads it (strings unquoted); nil for arrays and objects.
    public var scalarText: String? {
        switch self {
        case .null: return "null"
        case .bool(let value): return value ? "true" : "false"
        case .number(let text), .string(let text): return text
        case .array, .object: return nil
        }
    }
}

/// A recursive-descent reader over UTF-8 bytes.
struct JSONParser {
    let bytes: [UInt8]
    let maxDepth: Int
    var offset = 0

    func error(_ message: String) -> JSONValue.ParseError { JSONValue.ParseError(message: message, offset: self.offset) }

    mutating func skipSpace() {
        while self.offset < self.bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(self.bytes[self.offset]) { self.offset += 1 }
    }

    mutating func value(depth: Int) throws(JSONValue.ParseError) -> JSONValue {
        guard depth < self.maxDepth else { throw self.error("nested deeper than \(self.maxDepth)") }
        self.skipSpace()
        guard self.offset < self.bytes.count else { throw self.error("unexpected end") }
        switch self.bytes[self.offset] {
        case UInt8(ascii: "{"): return try self.object(depth: depth)
        case UInt8(ascii: "["): return try self.array(depth: depth)
        case UInt8(ascii: "\""): return .string(try self.string())
        case UInt8(ascii: "t"): return try self.literal("true", .bool(true))
        case UInt8(ascii: "f"): return try self.literal("false", .bool(false))
        case UInt8(ascii: "n"): return try self.literal("null", .null)
        default: return try self.number()
        }
    }

    mutating func literal(_ word: String, _ value: JSONValue) throws(JSONValue.ParseError) -> JSONValue {
        let expected = Array(word.utf8)
        guard self.bytes.count - self.offset >= expected.count, Array(self.bytes[self.offset..<self.offset + expected.count]) == expected else {
            throw self.error("expected \(word)")
        }
        self.offset += expected.count
        return value
    }

    mutating func number() throws(JSONValue.ParseError) -> JSONValue {
        let start = self.offset
        while self.offset < self.bytes.count, "+-0123456789.eE".utf8.contains(self.bytes[self.offset]) { self.offset += 1 }
        let text = String(decoding: self.bytes[start..<self.offset], as: UTF8.self)
        guard !text.isEmpty, Double(text) != nil, text.first != "+" else {
            self.offset = start
            throw self.error("expected a value")
        }
        return .number(text)
    }

    mutating func string() throws(JSONValue.ParseError) -> String {
        self.offset += 1
        var scalars: [UInt8] = []
        while self.offset < self.bytes.count {
            let byte = self.bytes[self.offset]
            self.offset += 1
            switch byte {
            case UInt8(ascii: "\""):
                return String(decoding: scalars, as: UTF8.self)
            case UInt8(ascii: "\\"):
                guard self.offset < self.bytes.count else { throw self.error("unfinished escape") }
                let escape = self.bytes[self.offset]
                self.offset += 1
                switch escape {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): scalars.append(escape)
                case UInt8(ascii: "b"): scalars.append(0x08)
                case UInt8(ascii: "f"): scalars.append(0x0C)
                case UInt8(ascii: "n"): scalars.append(0x0A)
                case UInt8(ascii: "r"): scalars.append(0x0D)
                case UInt8(ascii: "t"): scalars.append(0x09)
                case UInt8(ascii: "u"):
                    var code = try self.hex4()
                    if (0xD800..<0xDC00).contains(code), self.bytes.count - self.offset >= 6,
                       self.bytes[self.offset] == UInt8(ascii: "\\"), self.bytes[self.offset + 1] == UInt8(ascii: "u") {
                        self.offset += 2
                        let low = try self.hex4()
                        guard (0xDC00..<0xE000).contains(low) else { throw self.error("invalid surrogate pair") }
                        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                    }
                    scalars += Array(String(Unicode.Scalar(code).map(Character.init) ?? "\u{FFFD}").utf8)
                default:
                    throw self.error("invalid escape")
                }
            case 0x00..<0x20:
                throw self.error("control character in a string")
            default:
                scalars.append(byte)
            }
        }
        throw self.error("unfinished string")
    }

    mutating func hex4() throws(JSONValue.ParseError) -> UInt32 {
        guard self.bytes.count - self.offset >= 4,
              let code = UInt32(String(decoding: self.bytes[self.offset..<self.offset + 4], as: UTF8.self), radix: 16) else {
            throw self.error("invalid \\u escape")
        }
        self.offset += 4
        return code
    }

    mutating func array(depth: Int) throws(JSONValue.ParseError) -> JSONValue {
        self.offset += 1
        var items: [JSONValue] = []
        self.skipSpace()
        if self.offset < self.bytes.count, self.bytes[self.offset] == UInt8(ascii: "]") {
            self.offset += 1
            return .array(items)
        }
        while true {
            items.append(try self.value(depth: depth + 1))
            self.skipSpace()
            guard self.offset < self.bytes.count else { throw self.error("unfinished array") }
            let byte = self.bytes[self.offset]
            self.offset += 1
            if byte == UInt8(ascii: "]") { return .array(items) }
            guard byte == UInt8(ascii: ",") else {
                self.offset -= 1
                throw self.error("expected , or ]")
            }
        }
    }

    mutating func object(depth: Int) throws(JSONValue.ParseError) -> JSONValue {
        self.offset += 1
        var pairs: [(String, JSONValue)] = []
        self.skipSpace()
        if self.offset < self.bytes.count, self.bytes[self.offset] == UInt8(ascii: "}") {
            self.offset += 1
            return .object(pairs)
        }
        while true {
            self.skipSpace()
            guard self.offset < self.bytes.count, self.bytes[self.offset] == UInt8(ascii: "\"") else { throw self.error("expected a key") }
            let key = try self.string()
            self.skipSpace()
            guard self.offset < self.bytes.count, self.bytes[self.offset] == UInt8(ascii: ":") else { throw self.error("expected :") }
            self.offset += 1
            pairs.append((key, try self.value(depth: depth + 1)))
            self.skipSpace()
            guard self.offset < self.bytes.count else { throw self.error("unfinished object") }
            let byte = self.bytes[self.offset]
            self.offset += 1
            if byte == UInt8(ascii: "}") { return .object(pairs) }
            guard byte == UInt8(ascii: ",") else {
                self.offset -= 1
                throw self.error("expected , or }")
            }
        }
    }
}
