// ==== ---- Block scalars and flow collections ------------------------------------------------------

extension YAMLParser {
    /// `|` or `>` with optional chomping (`-`, `+`) and indentation (1-9) indicators; content is
    /// every following line indented deeper than `parent` (blank lines included).
    mutating func parseBlockScalar(line number: Int, column: Int, parent: Int) throws(YAMLError) -> YAMLNode {
        let line = self.lines[number]
        let literal = line[column] == "|"
        var chomping: Character = " "
        var explicitIndent: Int?
        var position = column + 1
        while position < line.count, line[position] != " " {
            let character = line[position]
            if (character == "-" || character == "+"), chomping == " " {
                chomping = character
            } else if let digit = character.wholeNumberValue, (1...9).contains(digit), explicitIndent == nil {
                explicitIndent = digit
            } else {
                throw self.error("invalid block scalar header", line: number, column: position)
            }
            position += 1
        }
        while position < line.count, line[position] == " " { position += 1 }
        if position < line.count, line[position] != "#" {
            throw self.error("unexpected text after the block scalar header", line: number, column: position)
        }
        let base = max(parent, 0)
        var blockIndent = explicitIndent.map { (parent < 0 ? 0 : base) + $0 }
        var content: [String] = []
        var cursor = number + 1
        while cursor < self.lines.count {
            let current = self.lines[cursor]
            let isBlank = current.allSatisfy { $0 == " " }
            if isBlank {
                content.append(String(current.dropFirst(min(current.count, blockIndent ?? current.count))))
                cursor += 1
                continue
            }
            let indent = self.indent(cursor)
            if blockIndent == nil {
                guard indent > parent else { break }
                blockIndent = indent
            }
            guard let required = blockIndent, indent >= required else { break }
            content.append(String(current[required...]))
            cursor += 1
        }
        // Trailing blank lines belong to the scalar only for chomping; lines after it are not ours.
        var trailingBlank = 0
        while let last = content.last, last.allSatisfy({ $0 == " " }) {
            content.removeLast()
            trailingBlank += 1
        }
        self.index = cursor
        let body = literal ? content.joined(separator: "\n") : Self.fold(content)
        var text = body
        switch chomping {
        case "-": break
        case "+": text += content.isEmpty ? String(repeating: "\n", count: trailingBlank) : String(repeating: "\n", count: 1 + trailingBlank)
        default: if !content.isEmpty { text += "\n" }
        }
        return YAMLNode(.scalar(text, literal ? .literal : .folded), line: number + 1, column: column + 1)
    }

    /// Folds `>` content: a break between two normal lines becomes a space, a run of k empty lines
    /// between them becomes k newlines, and breaks around more-indented lines are kept.
    static func fold(_ lines: [String]) -> String {
        var result = ""
        var previousNormal: Bool?
        var empties = 0
        for line in lines {
            if line.isEmpty || line.allSatisfy({ $0 == " " }) {
                empties += 1
                continue
            }
            let normal = !(line.first == " " || line.first == "\t")
            if let previous = previousNormal {
                if previous && normal {
                    result += empties == 0 ? " " : String(repeating: "\n", count: empties)
                } else {
                    result += String(repeating: "\n", count: empties + 1)
                }
            } else {
                result += String(repeating: "\n", count: empties)
            }
            result += line
            previousNormal = normal
            empties = 0
        }
        return result
    }

    /// A flow collection starting at `column` of line `number`, possibly spanning lines.
    mutating func parseFlow(line number: Int, column: Int) throws(YAMLError) -> YAMLNode {
        var buffer: [Character] = []
        var positions: [(Int, Int)] = []
        var depthCount = 0
        var quote: Character?
        var cursor = number
        var position = column
        var finished: (line: Int, column: Int)?
        while cursor < self.lines.count, finished == nil {
            let line = self.lines[cursor]
            while position < line.count {
                let character = line[position]
                if let open = quote {
                    if character == "\\", open == "\"", position + 1 < line.count {
                        buffer.append(character)
                        positions.append((cursor, position))
                        position += 1
                        buffer.append(line[position])
                        positions.append((cursor, position))
                        position += 1
                        continue
                    }
                    if character == open { quote = nil }
                } else {
                    if character == "#", position == 0 || line[position - 1] == " " { break }
                    if character == "\"" || character == "'" { quote = character }
                    if character == "[" || character == "{" { depthCount += 1 }
                    if character == "]" || character == "}" {
                        depthCount -= 1
                        if depthCount == 0 {
                            buffer.append(character)
                            positions.append((cursor, position))
                            finished = (cursor, position + 1)
                            break
                        }
                    }
                }
                buffer.append(character)
                positions.append((cursor, position))
                position += 1
            }
            if finished == nil {
                if quote != nil { throw self.error("quoted scalars cannot span lines", line: cursor, column: position) }
                buffer.append(" ")
                positions.append((cursor, position))
                cursor += 1
                position = 0
            }
        }
        guard let end = finished else { throw self.error("unterminated flow collection", line: number, column: column) }
        var rest = end.column
        let endLine = self.lines[end.line]
        while rest < endLine.count, endLine[rest] == " " { rest += 1 }
        if rest < endLine.count, endLine[rest] != "#" { throw self.error("unexpected text after the flow collection", line: end.line, column: rest) }
        self.index = end.line + 1
        var flow = FlowParser(characters: buffer, positions: positions, parser: self)
        let node = try flow.parseValue()
        flow.skipSpaces()
        if flow.position < buffer.count {
            let (line, column) = positions[flow.position]
            throw self.error("unexpected text in flow collection", line: line, column: column)
        }
        return node
    }
}

/// Recursive descent over a flow collection gathered into one buffer (with original positions).
struct FlowParser {
    let characters: [Character]
    let positions: [(Int, Int)]
    let parser: YAMLParser
    var position = 0
    var depth = 0

    init(characters: [Character], positions: [(Int, Int)], parser: YAMLParser) {
        self.characters = characters
        self.positions = positions
        self.parser = parser
    }

    func error(_ message: String) -> YAMLError {
        let (line, column) = self.position < self.positions.count ? self.positions[self.position] : self.positions.last ?? (0, 0)
        return self.parser.error(message, line: line, column: column)
    }

    mutating func skipSpaces() {
        while self.position < self.characters.count, self.characters[self.position] == " " { self.position += 1 }
    }

    var current: Character? { self.position < self.characters.count ? self.characters[self.position] : nil }

    mutating func parseValue() throws(YAMLError) -> YAMLNode {
        self.skipSpaces()
        guard let character = self.current else { throw self.error("expected a value") }
        self.depth += 1
        defer { self.depth -= 1 }
        guard self.depth <= YAMLReader.maxDepth else { throw self.error("nesting deeper than \(YAMLReader.maxDepth) levels") }
        let (line, column) = self.positions[self.position]
        switch character {
        case "[":
            self.position += 1
            var items: [YAMLNode] = []
            while true {
                self.skipSpaces()
                if self.current == "]" {
                    self.position += 1
                    break
                }
                items.append(try self.parseValue())
                self.skipSpaces()
                if self.current == ":" { throw self.error("single-pair mappings inside flow sequences are not supported") }
                if self.current == "," {
                    self.position += 1
                } else if self.current != "]" {
                    throw self.error("expected ',' or ']'")
                }
            }
            return YAMLNode(.sequence(items), line: line + 1, column: column + 1)
        case "{":
            self.position += 1
            var pairs: [YAMLNode.Pair] = []
            var keys: Set<String> = []
            while true {
                self.skipSpaces()
                if self.current == "}" {
                    self.position += 1
                    break
                }
                guard let first = self.current, first != "[", first != "{" else { throw self.error("flow collections as keys are not supported") }
                let keyStart = self.position
                let key = try self.parseScalar()
                guard keys.insert(key.scalarText ?? "").inserted else {
                    self.position = keyStart
                    throw self.error("duplicate key '\(key.scalarText ?? "")'")
                }
                self.skipSpaces()
                guard self.current == ":" else { throw self.error("expected ':' after the key '\(key.scalarText ?? "")'") }
                self.position += 1
                self.skipSpaces()
                let value: YAMLNode
                if self.current == "," || self.current == "}" {
                    let (valueLine, valueColumn) = self.positions[self.position]
                    value = YAMLNode(.scalar("", .plain), line: valueLine + 1, column: valueColumn + 1)
                } else {
                    value = try self.parseValue()
                }
                pairs.append(YAMLNode.Pair(key: key, value: value))
                self.skipSpaces()
                if self.current == "," {
                    self.position += 1
                } else if self.current != "}" {
                    throw self.error("expected ',' or '}'")
                }
            }
            return YAMLNode(.mapping(pairs), line: line + 1, column: column + 1)
        case "&", "*": throw self.error("anchors and aliases are not supported")
        case "!": throw self.error("tags are not supported")
        case "]", "}", ",": throw self.error("expected a value")
        default:
            return try self.parseScalar()
        }
    }

    mutating func parseScalar() throws(YAMLError) -> YAMLNode {
        let (line, column) = self.positions[self.position]
        do {
            let (text, style, end) = try self.parser.scanScalar(self.characters, number: line, from: self.position, flow: true)
            self.position = end
            return YAMLNode(.scalar(text, style), line: line + 1, column: column + 1)
        } catch {
            // scanScalar counted columns in the gathered buffer: map back to the file.
            var mapped = error
            let index = min(max(0, error.column - 1), self.positions.count - 1)
            mapped.line = self.positions[index].0 + 1
            mapped.column = self.positions[index].1 + 1
            throw mapped
        }
    }
}
