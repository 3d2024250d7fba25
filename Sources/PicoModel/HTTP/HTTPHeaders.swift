/// An ordered list of HTTP header fields. Names keep the case they arrived in; lookups ignore
/// case (RFC 9110 §5.1). Order and duplicates are preserved, so a proxy forwards what it got.
public struct HTTPHeaders: Hashable, Sendable, Sequence, ExpressibleByDictionaryLiteral {
    /// One field as it appeared.
    public struct Field: Hashable, Sendable {
        /// The field name, as sent.
        public var name: String
        /// The field value, without leading or trailing whitespace.
        public var value: String

        /// Creates a field.
        public init(name: String, value: String) {
            self.name = name
            self.value = value
        }
    }

    /// The fields, in order.
    public private(set) var fields: [Field]

    /// Creates headers from fields in order.
    public init(_ fields: [Field] = []) {
        self.fields = fields
    }

    public init(dictionaryLiteral elements: (String, String)...) {
        self.fields = elements.map { Field(name: $0.0, value: $0.1) }
    }

    public func makeIterator() -> IndexingIterator<[Field]> { self.fields.makeIterator() }

    /// Number of fields.
    public var count: Int { self.fields.count }

    /// Every value of `name`, in order.
    public subscript(name: String) -> [String] {
        var values: [String] = []
        for field in self.fields where Self.sameName(field.name, name) { values.append(field.value) }
        return values
    }

    /// The first value of `name`, if any.
    public func first(_ name: String) -> String? {
        for field in self.fields where Self.sameName(field.name, name) { return field.value }
        return nil
    }

    /// True when a field named `name` is present.
    public func contains(_ name: String) -> Bool {
        for field in self.fields where Self.sameName(field.name, name) { return true }
        return false
    }

    /// The comma-separated elements of every `name` field, trimmed and lower-cased (for list
    /// headers such as `Connection`, `Transfer-Encoding` and `Upgrade`); empty elements skipped.
    public func tokens(_ name: String) -> [String] {
        var tokens: [String] = []
        for field in self.fields where Self.sameName(field.name, name) {
            for element in field.value.split(separator: ",") {
                let token = element.trimmingHTTPWhitespace()
                if !token.isEmpty { tokens.append(token.lowercased()) }
            }
        }
        return tokens
    }

    /// True when some `name` field lists `token` (ASCII case-insensitively; empty elements never
    /// match), as `tokens(name).contains(token)` but without building the list.
    public func hasToken(_ name: String, _ token: String) -> Bool {
        for field in self.fields where Self.sameName(field.name, name) {
            var value = field.value
            var found = false
            value.withUTF8 { bytes in
                Self.forEachElement(of: bytes) { element in
                    found = !element.isEmpty && Self.sameName(element, token)
                    return !found
                }
            }
            if found { return true }
        }
        return false
    }

    /// Calls `body` with each comma-separated element of a field value, HTTP whitespace trimmed
    /// (empty elements included), until it returns false. Reads the bytes in place.
    static func forEachElement(of value: UnsafeBufferPointer<UInt8>, _ body: (UnsafeBufferPointer<UInt8>) -> Bool) {
        var start = 0
        while true {
            var end = start
            while end < value.count, value[end] != 0x2C { end += 1 }
            var low = start
            var high = end
            while low < high, value[low] == 0x20 || value[low] == 0x09 { low += 1 }
            while high > low, value[high - 1] == 0x20 || value[high - 1] == 0x09 { high -= 1 }
            guard body(UnsafeBufferPointer(rebasing: value[low..<high])), end < value.count else { return }
            start = end + 1
        }
    }

    /// Appends a field.
    public mutating func add(name: String, value: String) {
        self.fields.append(Field(name: name, value: value))
    }

    /// Replaces every `name` field by one with `value`, at the first one's position (appended
    /// when there was none).
    public mutating func replaceOrAdd(name: String, value: String) {
        guard let first = self.fields.firstIndex(where: { Self.sameName($0.name, name) }) else {
            self.add(name: name, value: value)
            return
        }
        // The usual case, one such field: replaced in place, nothing else copied.
        if !self.fields[(first + 1)...].contains(where: { Self.sameName($0.name, name) }) {
            self.fields[first].value = value
            return
        }
        var kept: [Field] = []
        kept.reserveCapacity(self.fields.count)
        for (index, field) in self.fields.enumerated() {
            if index == first {
                kept.append(Field(name: field.name, value: value))
            } else if !Self.sameName(field.name, name) {
                kept.append(field)
            }
        }
        self.fields = kept
    }

    /// Removes every field for which `shouldRemove` is true.
    public mutating func removeAll(where shouldRemove: (Field) -> Bool) {
        self.fields.removeAll(where: shouldRemove)
    }

    /// Removes every field named `name`.
    public mutating func remove(_ name: String) {
        self.fields.removeAll { Self.sameName($0.name, name) }
    }

    /// ASCII case-insensitive comparison of two field names.
    public static func sameName(_ left: String, _ right: String) -> Bool {
        guard left.utf8.count == right.utf8.count else { return false }
        var right = right
        return right.withUTF8 { Self.sameName($0, left) }
    }

    /// ASCII case-insensitive comparison of raw bytes with a name.
    static func sameName(_ bytes: UnsafeBufferPointer<UInt8>, _ name: String) -> Bool {
        guard bytes.count == name.utf8.count else { return false }
        var name = name
        return name.withUTF8 { other in
            for index in 0..<bytes.count where bytes[index] != other[index] {
                if Self.lowered(bytes[index]) != Self.lowered(other[index]) { return false }
            }
            return true
        }
    }

    static func lowered(_ byte: UInt8) -> UInt8 {
        (byte >= 0x41 && byte <= 0x5A) ? byte | 0x20 : byte
    }
}

extension String {
    /// The string without leading and trailing spaces and horizontal tabs (HTTP's OWS); the
    /// string itself, without a copy, when it has none (as a parsed field value never has).
    func trimmingHTTPWhitespace() -> String {
        let isWhitespace = { (byte: UInt8) in byte == 0x20 || byte == 0x09 }
        guard let first = self.utf8.first, let last = self.utf8.last, isWhitespace(first) || isWhitespace(last) else { return self }
        return String(Substring(self).trimmingHTTPWhitespace())
    }
}

extension Substring {
    /// The substring without leading and trailing spaces and horizontal tabs (HTTP's OWS).
    func trimmingHTTPWhitespace() -> Substring {
        var result = self
        while let first = result.first, first == " " || first == "\t" { result.removeFirst() }
        while let last = result.last, last == " " || last == "\t" { result.removeLast() }
        return result
    }
}
