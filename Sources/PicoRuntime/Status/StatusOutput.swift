import PicoModel
/// How `pico status` prints a document: aligned tables for people, JSON or YAML for programs.
public enum StatusOutput: String, Hashable, Sendable, CaseIterable {
    case table
    case json
    case yaml

    /// `value` in this format, ending with a newline. `columns` names the two columns of a flat
    /// mapping in table form (e.g. ENDPOINT, UPSTREAMS).
    public func render(_ value: JSONValue, columns: (String, String) = ("FIELD", "VALUE")) -> String {
        switch self {
        case .json: return value.prettyJSON() + "\n"
        case .yaml: return YAMLText.document(value)
        case .table: return StatusTable.render(value, columns: columns)
        }
    }
}

/// Aligned plain-text tables: a list of objects becomes one row per object with a column per
/// key (in first-seen order); a mapping becomes two columns. Nested values are shown inline
/// (`app=1, ws=2`).
public enum StatusTable {
    public static func render(_ value: JSONValue, columns: (String, String)) -> String {
        switch value {
        case .array(let items):
            let objects = items.compactMap { item -> [(String, JSONValue)]? in
                if case .object(let pairs) = item { return pairs }
                return nil
            }
            guard !items.isEmpty else { return "(none)\n" }
            guard objects.count == items.count else {
                return Self.align([[columns.1]] + items.map { [Self.inline($0)] })
            }
            var keys: [String] = []
            for pairs in objects {
                for (key, _) in pairs where !keys.contains(key) { keys.append(key) }
            }
            let rows = objects.map { pairs in keys.map { key in pairs.first { $0.0 == key }.map { Self.inline($0.1) } ?? "" } }
            return Self.align([keys.map { $0.uppercased() }] + rows)
        case .object(let pairs):
            guard !pairs.isEmpty else { return "(none)\n" }
            return Self.align([[columns.0, columns.1]] + pairs.map { [$0.0, Self.inline($0.1)] })
        default:
            return Self.inline(value) + "\n"
        }
    }

    /// A value on one line.
    static func inline(_ value: JSONValue) -> String {
        switch value {
        case .array(let items): return items.map(Self.inline).joined(separator: ", ")
        case .object(let pairs): return pairs.map { "\($0.0)=\(Self.inline($0.1))" }.joined(separator: ", ")
        case .null: return "-"
        default: return value.scalarText ?? ""
        }
    }

    /// Left-aligned columns separated by at least three spaces, without trailing spaces.
    static func align(_ rows: [[String]]) -> String {
        let count = rows.map(\.count).max() ?? 0
        var widths = [Int](repeating: 0, count: count)
        for row in rows {
            for (index, cell) in row.enumerated() { widths[index] = max(widths[index], cell.count) }
        }
        return rows.map { row in
            var line = ""
            for (index, cell) in row.enumerated() {
                line += cell
                if index < row.count - 1 { line += String(repeating: " ", count: widths[index] - cell.count + 3) }
            }
            return line
        }.joined(separator: "\n") + "\n"
    }
}

/// YAML text for a JSON value (block style; strings quoted whenever a YAML reader could take
/// them for something else).
public enum YAMLText {
    public static func document(_ value: JSONValue) -> String {
        switch value {
        case .array(let items) where !items.isEmpty: return Self.block(value, indent: "")
        case .object(let pairs) where !pairs.isEmpty: return Self.block(value, indent: "")
        default: return Self.scalar(value) + "\n"
        }
    }

    static func block(_ value: JSONValue, indent: String) -> String {
        var text = ""
        switch value {
        case .array(let items):
            for item in items {
                switch item {
                case .object(let pairs) where !pairs.isEmpty:
                    let nested = Self.block(item, indent: indent + "  ")
                    text += indent + "- " + nested.dropFirst(indent.count + 2)
                case .array(let inner) where !inner.isEmpty:
                    text += indent + "-\n" + Self.block(item, indent: indent + "  ")
                default:
                    text += indent + "- " + Self.scalar(item) + "\n"
                }
            }
        case .object(let pairs):
            for (key, item) in pairs {
                switch item {
                case .object(let inner) where !inner.isEmpty:
                    text += indent + Self.string(key) + ":\n" + Self.block(item, indent: indent + "  ")
                case .array(let inner) where !inner.isEmpty:
                    text += indent + Self.string(key) + ":\n" + Self.block(item, indent: indent + "  ")
                default:
                    text += indent + Self.string(key) + ": " + Self.scalar(item) + "\n"
                }
            }
        default:
            text += indent + Self.scalar(value) + "\n"
        }
        return text
    }

    static func scalar(_ value: JSONValue) -> String {
        switch value {
        case .null: return "null"
        case .bool(let flag): return flag ? "true" : "false"
        case .number(let text): return text
        case .string(let text): return Self.string(text)
        case .array: return "[]"
        case .object: return "{}"
        }
    }

    /// A plain scalar when that reads back as the same string, else a double-quoted one.
    static func string(_ text: String) -> String {
        let reserved = ["", "~", "null", "true", "false", "yes", "no", "on", "off", "y", "n"]
        let special = ":#{}[],&*!|>'\"%@`\\"
        let plain = !reserved.contains(text.lowercased())
            && Double(text) == nil && !(text.first.map { $0.isNumber || $0 == "+" } ?? false)
            && !text.hasPrefix(" ") && !text.hasSuffix(" ") && !text.hasPrefix("-") && !text.hasPrefix("?") && !text.hasPrefix(".")
            && !text.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7F || special.unicodeScalars.contains($0) }
        return plain ? text : JSONText.quote(text)
    }
}
