/// A node of a YAML document as read by `YAMLReader`: a scalar (its text exactly as written, after
/// unquoting), a sequence, or a mapping with its keys in file order. Every node knows where it
/// started, so configuration and scenario errors can name the line and column.
public struct YAMLNode: Hashable, Sendable {
    /// How a scalar was written (plain scalars are the only ones that may resolve to non-strings).
    public enum ScalarStyle: Hashable, Sendable {
        /// Unquoted.
        case plain
        /// `'…'`.
        case singleQuoted
        /// `"…"`.
        case doubleQuoted
        /// `|` block.
        case literal
        /// `>` block.
        case folded
    }

    /// One `key: value` entry of a mapping.
    public struct Pair: Hashable, Sendable {
        /// The key node (a scalar).
        public var key: YAMLNode
        /// The value node.
        public var value: YAMLNode
    }

    /// The shape of a node.
    public indirect enum Content: Hashable, Sendable {
        /// A scalar's text and style.
        case scalar(String, ScalarStyle)
        /// Items in order.
        case sequence([YAMLNode])
        /// Entries in file order (keys are unique).
        case mapping([Pair])
    }

    /// The node's content.
    public var content: Content
    /// 1-based line where the node starts.
    public var line: Int
    /// 1-based column where the node starts.
    public var column: Int

    /// Creates a node.
    public init(_ content: Content, line: Int, column: Int) {
        self.content = content
        self.line = line
        self.column = column
    }

    /// The scalar's text, or nil for collections.
    public var scalarText: String? {
        if case .scalar(let text, _) = self.content { return text }
        return nil
    }

    /// True for a plain scalar that YAML reads as null (`~`, `null`, `Null`, `NULL`, or nothing).
    public var isNull: Bool {
        if case .scalar(let text, .plain) = self.content { return ["", "~", "null", "Null", "NULL"].contains(text) }
        return false
    }

    /// The entries of a mapping, or nil.
    public var pairs: [Pair]? {
        if case .mapping(let pairs) = self.content { return pairs }
        return nil
    }

    /// The items of a sequence, or nil.
    public var items: [YAMLNode]? {
        if case .sequence(let items) = self.content { return items }
        return nil
    }

    /// The value for `key` in a mapping (nil when absent or not a mapping).
    public subscript(key: String) -> YAMLNode? {
        self.pairs?.first { $0.key.scalarText == key }?.value
    }
}

/// A scalar resolved the way YAML 1.1 resolvers (PyYAML's `safe_load`) read plain scalars: used by
/// tests that compare this reader with PyYAML, and by callers that accept "any value".
public indirect enum YAMLValue: Hashable, Sendable {
    /// Null.
    case null
    /// A boolean (`true`, `yes`, `on`, … and their negations).
    case bool(Bool)
    /// An integer (decimal, `0x` hexadecimal, leading-zero octal, `0b` binary, `_` separators).
    case int(Int64)
    /// A floating-point number (with a `.`, or `.inf`/`.nan`).
    case double(Double)
    /// Text.
    case string(String)
    /// A sequence.
    case sequence([YAMLValue])
    /// A mapping (keys as strings, in file order).
    case mapping([(String, YAMLValue)])

    public static func == (lhs: YAMLValue, rhs: YAMLValue) -> Bool {
        switch (lhs, rhs) {
        case (.null, .null): return true
        case (.bool(let a), .bool(let b)): return a == b
        case (.int(let a), .int(let b)): return a == b
        case (.double(let a), .double(let b)): return a == b || (a.isNaN && b.isNaN)
        case (.string(let a), .string(let b)): return a == b
        case (.sequence(let a), .sequence(let b)): return a == b
        case (.mapping(let a), .mapping(let b)): return a.count == b.count && zip(a, b).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        default: return false
        }
    }

    public func hash(into hasher: inout Hasher) {
        switch self {
        case .null: hasher.combine(0)
        case .bool(let value): hasher.combine(value)
        case .int(let value): hasher.combine(value)
        case .double(let value): hasher.combine(value)
        case .string(let value): hasher.combine(value)
        case .sequence(let value): hasher.combine(value)
        case .mapping(let value): for (key, item) in value { hasher.combine(key); hasher.combine(item) }
        }
    }
}

extension YAMLNode {
    /// This node with plain scalars resolved as YAML 1.1 does (see `YAMLValue`).
    public var resolved: YAMLValue {
        switch self.content {
        case .scalar(let text, .plain): return YAMLScalarResolver.resolve(text)
        case .scalar(let text, _): return .string(text)
        case .sequence(let items): return .sequence(items.map(\.resolved))
        case .mapping(let pairs): return .mapping(pairs.map { ($0.key.scalarText ?? "", $0.value.resolved) })
        }
    }
}

/// YAML 1.1 implicit typing of plain scalars, for the forms PyYAML's SafeLoader resolves.
enum YAMLScalarResolver {
    static let trueWords: Set<String> = ["yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"]
    static let falseWords: Set<String> = ["no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"]

    static func resolve(_ text: String) -> YAMLValue {
        if ["", "~", "null", "Null", "NULL"].contains(text) { return .null }
        if self.trueWords.contains(text) { return .bool(true) }
        if self.falseWords.contains(text) { return .bool(false) }
        if let value = self.integer(text) { return .int(value) }
        if let value = self.float(text) { return .double(value) }
        return .string(text)
    }

    static func integer(_ text: String) -> Int64? {
        var body = Substring(text)
        var negative = false
        if let first = body.first, first == "-" || first == "+" {
            negative = first == "-"
            body = body.dropFirst()
        }
        guard let first = body.first, first.isASCII, first.isNumber else { return nil }
        let radix: Int
        if body.hasPrefix("0x") {
            radix = 16
            body = body.dropFirst(2)
        } else if body.hasPrefix("0b") {
            radix = 2
            body = body.dropFirst(2)
        } else if body.count > 1, body.hasPrefix("0") {
            radix = 8
            body = body.dropFirst()
        } else {
            radix = 10
        }
        guard !body.isEmpty, !body.hasPrefix("_") || radix != 10 else { return nil }
        let digits = body.filter { $0 != "_" }
        guard !digits.isEmpty, let magnitude = Int64(digits, radix: radix) else { return nil }
        return negative ? -magnitude : magnitude
    }

    static func float(_ text: String) -> Double? {
        switch text {
        case ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF": return .infinity
        case "-.inf", "-.Inf", "-.INF": return -.infinity
        case ".nan", ".NaN", ".NAN": return .nan
        default: break
        }
        // PyYAML needs a dot: 1.5, -0.25, 1.0e+3, .5; "1e3" stays a string.
        guard text.contains("."), text.allSatisfy({ $0.isASCII && ($0.isNumber || "+-._eE".contains($0)) }) else { return nil }
        let parts = text.split(separator: "e", maxSplits: 1, omittingEmptySubsequences: false)
        let partsUpper = parts.count == 2 ? parts : text.split(separator: "E", maxSplits: 1, omittingEmptySubsequences: false)
        if partsUpper.count == 2 {
            let exponent = partsUpper[1]
            guard exponent.first == "+" || exponent.first == "-", exponent.dropFirst().allSatisfy(\.isNumber), exponent.count > 1 else { return nil }
        }
        let mantissa = partsUpper[0]
        guard mantissa.contains("."), !mantissa.dropFirst().contains(where: { $0 == "+" || $0 == "-" }) else { return nil }
        // A sign must be followed by a digit ("-.5" is a string to YAML 1.1).
        if let sign = mantissa.first, sign == "+" || sign == "-" {
            guard let next = mantissa.dropFirst().first, next.isNumber else { return nil }
        }
        return Double(text.filter { $0 != "_" })
    }
}
