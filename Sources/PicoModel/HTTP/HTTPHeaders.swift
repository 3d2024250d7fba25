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
        self.fields.filter { Self.sameName($0.name, name) }.map(\.value)
    }

    /// The first value of `name`, if any.
    public func first(_ name: String) -> String? {
        self.fields.first { Self.sameName($0.name, name) }?.value
    }

    /// True when a field named `name` is present.
    public func contains(_ name: String) -> Bool {
        self.fields.contains { Self.sameName($0.name, name) }
    }

    /// The comma-separated elements of every `name` field, trimmed and lower-cased (for list
    /// headers such as `Connection`, `Transfer-Encoding` and `Upgrade`); empty elements skipped.
    public func tokens(_ name: String) -> [String] {
        self[name].flatMap { value in
            value.split(separator: ",").map { $0.trimmingHTTPWhitespace().lowercased() }.filter { !$0.isEmpty }
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

    /// Removes every field named `name`.
    public mutating func remove(_ name: String) {
        self.fields.removeAll { Self.sameName($0.name, name) }
    }

    /// ASCII case-insensitive comparison of two field names.
    public static func sameName(_ left: String, _ right: String) -> Bool {
        let (a, b) = (left.utf8, right.utf8)
        guard a.count == b.count else { return false }
        return zip(a, b).allSatisfy { Self.lowered($0) == Self.lowered($1) }
    }

    static func lowered(_ byte: UInt8) -> UInt8 {
        (byte >= 0x41 && byte <= 0x5A) ? byte | 0x20 : byte
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
