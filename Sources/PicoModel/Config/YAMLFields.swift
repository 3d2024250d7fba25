/// Typed, checked access to the keys of one YAML mapping, for configuration and scenario files.
///
/// Every read names its key path in errors (`spec.topology.pods: expected an integer, got 'x'`)
/// with the line and column of the offending node; `finish()` rejects every key that was never
/// read, so a misspelt key is an error rather than silently ignored.
public struct YAMLFields: Sendable {
    /// The mapping being read.
    public let node: YAMLNode
    /// The dotted path of the mapping (`spec.topology`), empty at the root.
    public let path: String
    /// The file name for errors.
    public let file: String
    private var consumed: Set<String> = []

    /// Reads `node` as a mapping (a null node is an empty mapping).
    public init(_ node: YAMLNode, path: String, file: String) throws(YAMLError) {
        guard node.pairs != nil || node.isNull else {
            throw YAMLError(file: file, line: node.line, column: node.column, message: "\(path.isEmpty ? "document" : path): expected a mapping")
        }
        self.node = node
        self.path = path
        self.file = file
    }

    /// `path.key`.
    public func keyPath(_ key: String) -> String {
        self.path.isEmpty ? key : "\(self.path).\(key)"
    }

    /// An error about `node` (or the mapping itself) under `key`.
    public func error(_ key: String, _ message: String, at node: YAMLNode? = nil) -> YAMLError {
        let where_ = node ?? self.node
        return YAMLError(file: self.file, line: where_.line, column: where_.column, message: "\(self.keyPath(key)): \(message)")
    }

    /// The raw node of `key` (nil when absent or null); marks it read.
    public mutating func node(_ key: String) -> YAMLNode? {
        self.consumed.insert(key)
        guard let value = self.node[key], !value.isNull else { return nil }
        return value
    }

    /// True when `key` is present (even as null).
    public func has(_ key: String) -> Bool {
        self.node[key] != nil
    }

    /// A scalar's text.
    public mutating func string(_ key: String) throws(YAMLError) -> String? {
        guard let value = self.node(key) else { return nil }
        guard let text = value.scalarText else { throw self.error(key, "expected a string", at: value) }
        return text
    }

    /// A scalar's text that must be present.
    public mutating func requiredString(_ key: String) throws(YAMLError) -> String {
        guard let text = try self.string(key) else { throw self.error(key, "is required") }
        return text
    }

    /// An integer within `range`.
    public mutating func int(_ key: String, in range: ClosedRange<Int> = Int.min...Int.max) throws(YAMLError) -> Int? {
        guard let value = self.node(key) else { return nil }
        guard let text = value.scalarText, case .int(let number) = YAMLScalarResolver.resolve(text), let int = Int(exactly: number) else {
            throw self.error(key, "expected an integer, got '\(value.scalarText ?? "a collection")'", at: value)
        }
        guard range.contains(int) else { throw self.error(key, "must be in \(range.lowerBound)...\(range.upperBound), got \(int)", at: value) }
        return int
    }

    /// A non-negative 64-bit integer (seeds).
    public mutating func uint64(_ key: String) throws(YAMLError) -> UInt64? {
        guard let value = self.node(key) else { return nil }
        guard let text = value.scalarText, let number = UInt64(text.filter { $0 != "_" }) else {
            throw self.error(key, "expected a non-negative integer, got '\(value.scalarText ?? "a collection")'", at: value)
        }
        return number
    }

    /// A number (integer or decimal).
    public mutating func double(_ key: String) throws(YAMLError) -> Double? {
        guard let value = self.node(key) else { return nil }
        guard let text = value.scalarText, let number = Double(text), number.isFinite else {
            throw self.error(key, "expected a number, got '\(value.scalarText ?? "a collection")'", at: value)
        }
        return number
    }

    /// `true` or `false` (YAML 1.1's yes/no/on/off are refused as ambiguous).
    public mutating func bool(_ key: String) throws(YAMLError) -> Bool? {
        guard let value = self.node(key) else { return nil }
        switch value.scalarText {
        case "true": return true
        case "false": return false
        default: throw self.error(key, "expected true or false, got '\(value.scalarText ?? "a collection")'", at: value)
        }
    }

    /// A Go-style duration (`500ms`, `1m30s`), non-negative unless `allowNegative`.
    public mutating func duration(_ key: String, allowNegative: Bool = false) throws(YAMLError) -> Duration? {
        guard let value = self.node(key) else { return nil }
        guard let text = value.scalarText, let duration = DurationText.parse(text) else {
            throw self.error(key, "expected a duration such as 500ms or 1m30s, got '\(value.scalarText ?? "a collection")'", at: value)
        }
        guard allowNegative || duration >= .zero else { throw self.error(key, "must not be negative", at: value) }
        return duration
    }

    /// A percentage written `10%` (or a fraction `0.1`), as a fraction in `0...1`.
    public mutating func fraction(_ key: String) throws(YAMLError) -> Double? {
        guard let value = self.node(key) else { return nil }
        guard let text = value.scalarText else { throw self.error(key, "expected a percentage", at: value) }
        let number = text.hasSuffix("%") ? Double(text.dropLast()).map { $0 / 100 } : Double(text)
        guard let fraction = number, fraction >= 0, fraction <= 1 else {
            throw self.error(key, "expected a percentage from 0% to 100%, got '\(text)'", at: value)
        }
        return fraction
    }

    /// A nested mapping.
    public mutating func mapping(_ key: String) throws(YAMLError) -> YAMLFields? {
        guard let value = self.node(key) else { return nil }
        return try YAMLFields(value, path: self.keyPath(key), file: self.file)
    }

    /// A sequence's items.
    public mutating func sequence(_ key: String) throws(YAMLError) -> [YAMLNode]? {
        guard let value = self.node(key) else { return nil }
        guard let items = value.items else { throw self.error(key, "expected a list", at: value) }
        return items
    }

    /// A list of strings.
    public mutating func strings(_ key: String) throws(YAMLError) -> [String]? {
        guard let items = try self.sequence(key) else { return nil }
        var result: [String] = []
        for (index, item) in items.enumerated() {
            guard let text = item.scalarText else { throw self.error("\(key)[\(index)]", "expected a string", at: item) }
            result.append(text)
        }
        return result
    }

    /// Fails on the first key that was never read (a misspelling or an unsupported key).
    public func finish() throws(YAMLError) {
        for pair in self.node.pairs ?? [] where !self.consumed.contains(pair.key.scalarText ?? "") {
            throw YAMLError(
                file: self.file, line: pair.key.line, column: pair.key.column,
                message: "unknown key '\(self.keyPath(pair.key.scalarText ?? ""))'")
        }
    }
}
