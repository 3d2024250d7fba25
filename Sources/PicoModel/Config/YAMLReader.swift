/// Pico's own reader for the YAML subset its configuration and scenario files use: block mappings
/// and sequences, flow `[…]` and `{…}`, plain, single- and double-quoted scalars, `|` and `>` block
/// scalars with chomping and indentation indicators, and comments. Anchors, aliases, tags,
/// directives, multiple documents, complex keys and multi-line plain or quoted scalars are refused
/// with an error naming the file, line and column, as is anything malformed. Pure: no I/O.
public enum YAMLReader {
    /// Largest document accepted, in UTF-8 bytes.
    public static let maxBytes = 4 * 1024 * 1024
    /// Deepest nesting accepted.
    public static let maxDepth = 64

    /// Parses one document. An empty document is a null scalar.
    public static func parse(_ text: String, file: String = "<input>") throws(YAMLError) -> YAMLNode {
        guard text.utf8.count <= self.maxBytes else {
            throw YAMLError(file: file, line: 1, column: 1, message: "document larger than \(self.maxBytes) bytes")
        }
        var parser = try YAMLParser(text: text, file: file)
        return try parser.parseDocument()
    }
}

struct YAMLParser {
    var lines: [[Character]]
    let file: String
    var index = 0
    var depth = 0

    init(text: String, file: String) throws(YAMLError) {
        self.file = file
        var text = text
        if text.hasPrefix("\u{FEFF}") { text.removeFirst() }
        // "\r\n" is one Character in Swift, so both line ends are split on explicitly.
        self.lines = text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }).map { line in
            var characters = Array(line)
            if characters.last == "\r" { characters.removeLast() }
            return characters
        }
        // A final line break ends the last line; it does not start an empty one.
        if self.lines.count > 1, self.lines.last?.isEmpty == true { self.lines.removeLast() }
        try self.checkStructure()
    }

    func error(_ message: String, line: Int, column: Int) -> YAMLError {
        YAMLError(file: self.file, line: line + 1, column: column + 1, message: message)
    }

    /// Rejects tabs in indentation, directives and extra documents; drops one leading `---`.
    mutating func checkStructure() throws(YAMLError) {
        var sawContent = false
        for number in self.lines.indices {
            let line = self.lines[number]
            if let tab = line.prefix(while: { $0 == " " || $0 == "\t" }).firstIndex(of: "\t"), self.indent(number) < line.count {
                throw self.error("tab in indentation (YAML indents with spaces)", line: number, column: tab)
            }
            if line.first == "%" { throw self.error("directives (%) are not supported", line: number, column: 0) }
            let isMarker = line.starts(with: "---") && (line.count == 3 || line[3] == " ")
            let isEnd = line.starts(with: "...") && (line.count == 3 || line[3] == " ")
            if isMarker || isEnd {
                if isMarker, !sawContent {
                    self.lines[number] = []
                    sawContent = true
                    continue
                }
                throw self.error("multiple documents are not supported", line: number, column: 0)
            }
            if !self.isBlankOrComment(number) { sawContent = true }
        }
    }

    // MARK: - Lines

    func indent(_ number: Int) -> Int {
        self.lines[number].prefix(while: { $0 == " " }).count
    }

    func isBlankOrComment(_ number: Int) -> Bool {
        let line = self.lines[number]
        guard let first = line.firstIndex(where: { $0 != " " && $0 != "\t" }) else { return true }
        return line[first] == "#"
    }

    /// The next line with content at or after `self.index`.
    func nextContentLine() -> Int? {
        var number = self.index
        while number < self.lines.count {
            if !self.isBlankOrComment(number) { return number }
            number += 1
        }
        return nil
    }

    func startsSequenceItem(_ number: Int, at column: Int) -> Bool {
        let line = self.lines[number]
        return column < line.count && line[column] == "-" && (column + 1 == line.count || line[column + 1] == " ")
    }

    // MARK: - Document and blocks

    mutating func parseDocument() throws(YAMLError) -> YAMLNode {
        guard let first = self.nextContentLine() else { return YAMLNode(.scalar("", .plain), line: 1, column: 1) }
        let root = try self.parseValue(line: first, column: self.indent(first), parent: -1)
        if let extra = self.nextContentLine() {
            throw self.error("unexpected content after the document (check the indentation)", line: extra, column: self.indent(extra))
        }
        return root
    }

    /// Parses the node that starts at `column` of line `number`; `parent` is the indentation of
    /// the enclosing collection (block scalars and continuation lines must be deeper).
    mutating func parseValue(line number: Int, column: Int, parent: Int) throws(YAMLError) -> YAMLNode {
        self.depth += 1
        defer { self.depth -= 1 }
        guard self.depth <= YAMLReader.maxDepth else { throw self.error("nesting deeper than \(YAMLReader.maxDepth) levels", line: number, column: column) }
        if self.startsSequenceItem(number, at: column) { return try self.parseSequence(indent: column) }
        let first = self.lines[number][column]
        if first != "[", first != "{", self.mappingColon(number, from: column) != nil {
            return try self.parseMapping(indent: column)
        }
        self.index = number + 1
        return try self.parseInlineValue(line: number, column: column, parent: parent)
    }

    mutating func parseMapping(indent: Int) throws(YAMLError) -> YAMLNode {
        var pairs: [YAMLNode.Pair] = []
        var keys: Set<String> = []
        var start: (Int, Int)?
        while let number = self.nextContentLine() {
            let lineIndent = self.indent(number)
            if lineIndent < indent { break }
            if lineIndent > indent { throw self.error("unexpected indentation (multi-line plain scalars are not supported; use | or >)", line: number, column: lineIndent) }
            if self.startsSequenceItem(number, at: indent) {
                throw self.error("a sequence item where a mapping key was expected", line: number, column: indent)
            }
            guard let colon = self.mappingColon(number, from: indent) else {
                throw self.error("expected `key: value`", line: number, column: indent)
            }
            let key = try self.parseKey(line: number, from: indent, to: colon)
            guard keys.insert(key.scalarText ?? "").inserted else {
                throw self.error("duplicate key '\(key.scalarText ?? "")'", line: number, column: indent)
            }
            if start == nil { start = (number, indent) }
            self.index = number + 1
            let value = try self.parseInlineValue(line: number, column: colon + 1, parent: indent, allowSameIndentSequence: true)
            pairs.append(YAMLNode.Pair(key: key, value: value))
        }
        let (line, column) = start ?? (self.index, indent)
        return YAMLNode(.mapping(pairs), line: line + 1, column: column + 1)
    }

    mutating func parseSequence(indent: Int) throws(YAMLError) -> YAMLNode {
        var items: [YAMLNode] = []
        var start: Int?
        while let number = self.nextContentLine() {
            let lineIndent = self.indent(number)
            if lineIndent < indent { break }
            guard lineIndent == indent, self.startsSequenceItem(number, at: indent) else {
                if lineIndent > indent { throw self.error("unexpected indentation", line: number, column: lineIndent) }
                break
            }
            if start == nil { start = number }
            var contentStart = indent + 1
            while contentStart < self.lines[number].count, self.lines[number][contentStart] == " " { contentStart += 1 }
            let rest = self.lines[number][contentStart...]
            if rest.isEmpty || rest.first == "#" {
                self.index = number + 1
                if let next = self.nextContentLine(), self.indent(next) > indent {
                    items.append(try self.parseValue(line: next, column: self.indent(next), parent: indent))
                } else {
                    items.append(YAMLNode(.scalar("", .plain), line: number + 1, column: contentStart + 1))
                }
                continue
            }
            // `- key: value` and `- - x`: the item is a block that starts at `contentStart`, so the
            // line is re-read with the dash turned into indentation.
            for column in indent..<contentStart { self.lines[number][column] = " " }
            items.append(try self.parseValue(line: number, column: contentStart, parent: indent))
        }
        return YAMLNode(.sequence(items), line: (start ?? self.index) + 1, column: indent + 1)
    }

    /// The value after `key:` (or a whole line): inline scalar or flow node, block scalar, or a
    /// block on the following lines.
    mutating func parseInlineValue(line number: Int, column: Int, parent: Int, allowSameIndentSequence: Bool = false) throws(YAMLError) -> YAMLNode {
        let line = self.lines[number]
        var start = column
        while start < line.count, line[start] == " " { start += 1 }
        if start >= line.count || line[start] == "#" {
            if let next = self.nextContentLine() {
                let nextIndent = self.indent(next)
                if nextIndent > parent, !(nextIndent == parent) {
                    return try self.parseValue(line: next, column: nextIndent, parent: parent)
                }
                if allowSameIndentSequence, nextIndent == parent, self.startsSequenceItem(next, at: nextIndent) {
                    return try self.parseSequence(indent: nextIndent)
                }
            }
            return YAMLNode(.scalar("", .plain), line: number + 1, column: start + 1)
        }
        switch line[start] {
        case "|", ">": return try self.parseBlockScalar(line: number, column: start, parent: parent)
        case "[", "{": return try self.parseFlow(line: number, column: start)
        case "&", "*": throw self.error("anchors and aliases are not supported", line: number, column: start)
        case "!": throw self.error("tags are not supported", line: number, column: start)
        case "?": throw self.error("complex keys (?) are not supported", line: number, column: start)
        default: break
        }
        let (node, end) = try self.parseScalar(line: number, from: start, flow: false)
        var rest = end
        while rest < line.count, line[rest] == " " { rest += 1 }
        if rest < line.count, line[rest] != "#" {
            throw self.error("unexpected text after the value", line: number, column: rest)
        }
        return node
    }

    // MARK: - Keys and scalars

    /// Where the `:` of `key: value` is on line `number`, or nil when the line is not a mapping entry.
    func mappingColon(_ number: Int, from column: Int) -> Int? {
        let line = self.lines[number]
        var position = column
        if position < line.count, line[position] == "\"" || line[position] == "'" {
            let quote = line[position]
            position += 1
            while position < line.count {
                if line[position] == "\\", quote == "\"" {
                    position += 2
                    continue
                }
                if line[position] == quote {
                    if quote == "'", position + 1 < line.count, line[position + 1] == "'" {
                        position += 2
                        continue
                    }
                    break
                }
                position += 1
            }
            position += 1
            while position < line.count, line[position] == " " { position += 1 }
            guard position < line.count, line[position] == ":", position + 1 == line.count || line[position + 1] == " " else { return nil }
            return position
        }
        while position < line.count {
            let character = line[position]
            if character == "#", position > column, line[position - 1] == " " { return nil }
            if character == ":", position + 1 == line.count || line[position + 1] == " " { return position }
            position += 1
        }
        return nil
    }

    func parseKey(line number: Int, from start: Int, to colon: Int) throws(YAMLError) -> YAMLNode {
        let line = self.lines[number]
        switch line[start] {
        case "[", "{": throw self.error("flow collections as keys are not supported", line: number, column: start)
        case "?": throw self.error("complex keys (?) are not supported", line: number, column: start)
        case "&", "*": throw self.error("anchors and aliases are not supported", line: number, column: start)
        case "!": throw self.error("tags are not supported", line: number, column: start)
        case "\"", "'":
            let (node, _) = try self.parseScalar(line: number, from: start, flow: false)
            return node
        default:
            var end = colon
            while end > start, line[end - 1] == " " { end -= 1 }
            return YAMLNode(.scalar(String(line[start..<end]), .plain), line: number + 1, column: start + 1)
        }
    }

    /// Parses a quoted or plain scalar starting at `start`; returns it and the column after it.
    func parseScalar(line number: Int, from start: Int, flow: Bool) throws(YAMLError) -> (YAMLNode, Int) {
        let line = self.lines[number]
        let (text, style, end) = try self.scanScalar(line, number: number, from: start, flow: flow)
        return (YAMLNode(.scalar(text, style), line: number + 1, column: start + 1), end)
    }

    func scanScalar(_ line: [Character], number: Int, from start: Int, flow: Bool) throws(YAMLError) -> (String, YAMLNode.ScalarStyle, Int) {
        let first = line[start]
        if first == "\"" { return try self.scanDoubleQuoted(line, number: number, from: start) }
        if first == "'" {
            var text = ""
            var position = start + 1
            while position < line.count {
                if line[position] == "'" {
                    if position + 1 < line.count, line[position + 1] == "'" {
                        text.append("'")
                        position += 2
                        continue
                    }
                    return (text, .singleQuoted, position + 1)
                }
                text.append(line[position])
                position += 1
            }
            throw self.error("unterminated single-quoted scalar (multi-line quoted scalars are not supported)", line: number, column: start)
        }
        if "@`%".contains(first) { throw self.error("a plain scalar cannot start with '\(first)'", line: number, column: start) }
        if first == "-" || first == ":", start + 1 < line.count, line[start + 1] == " " {
            throw self.error("'\(first)' followed by a space cannot start a value here", line: number, column: start)
        }
        var position = start
        while position < line.count {
            let character = line[position]
            if character == "#", position > start, line[position - 1] == " " { break }
            if character == ":", position + 1 == line.count || line[position + 1] == " " || (flow && ",]}".contains(line[position + 1])) {
                if flow { break }
                throw self.error("mapping values are not allowed here (quote the value if ': ' belongs to it)", line: number, column: position)
            }
            if flow, ",[]{}".contains(character) { break }
            position += 1
        }
        var end = position
        while end > start, line[end - 1] == " " { end -= 1 }
        return (String(line[start..<end]), .plain, end)
    }

    func scanDoubleQuoted(_ line: [Character], number: Int, from start: Int) throws(YAMLError) -> (String, YAMLNode.ScalarStyle, Int) {
        var text = ""
        var position = start + 1
        while position < line.count {
            let character = line[position]
            if character == "\"" { return (text, .doubleQuoted, position + 1) }
            guard character == "\\" else {
                text.append(character)
                position += 1
                continue
            }
            guard position + 1 < line.count else { break }
            let escape = line[position + 1]
            position += 2
            switch escape {
            case "0": text.append("\0")
            case "a": text.append("\u{07}")
            case "b": text.append("\u{08}")
            case "t", "\t": text.append("\t")
            case "n": text.append("\n")
            case "v": text.append("\u{0B}")
            case "f": text.append("\u{0C}")
            case "r": text.append("\r")
            case "e": text.append("\u{1B}")
            case " ": text.append(" ")
            case "\"": text.append("\"")
            case "/": text.append("/")
            case "\\": text.append("\\")
            case "N": text.append("\u{85}")
            case "_": text.append("\u{A0}")
            case "L": text.append("\u{2028}")
            case "P": text.append("\u{2029}")
            case "x", "u", "U":
                let width = escape == "x" ? 2 : escape == "u" ? 4 : 8
                guard position + width <= line.count, let value = UInt32(String(line[position..<(position + width)]), radix: 16),
                    let scalar = Unicode.Scalar(value)
                else { throw self.error("invalid \\\(escape) escape", line: number, column: position - 2) }
                text.unicodeScalars.append(scalar)
                position += width
            default:
                throw self.error("unknown escape \\\(escape)", line: number, column: position - 2)
            }
        }
        throw self.error("unterminated double-quoted scalar (multi-line quoted scalars are not supported)", line: number, column: start)
    }
}
