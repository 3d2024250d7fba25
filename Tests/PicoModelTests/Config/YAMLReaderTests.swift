import Foundation
@testable import PicoModel
import Testing

/// Cases the reader must read exactly as PyYAML's `safe_load` does.
enum YAMLCases {
    static let accepted: [String] = [
        "a: 1\nb: two\nc: 3.5\nd: true\ne: ~\nf:\n",
        "# comment\nkey: value # trailing comment\nurl: http://example.com:8080/x#frag\n",
        "list:\n  - a\n  - b\n  - - nested\n    - deeper\n",
        "list:\n- a\n- b\nnext: 1\n",
        "items:\n  - name: x\n    count: 2\n  - name: y\n    tags: [a, b]\n",
        "flow: {a: 1, b: [x, 'y', \"z\"], c: {}}\nempty: []\n",
        "multi: [\n  one,\n  two,\n]\n",
        "quoted: 'it''s'\ndouble: \"tab\\there\\nnew \\u00e9 \\x41\"\n",
        "literal: |\n  line one\n  line two\n\n  after blank\nnext: x\n",
        "folded: >\n  folded\n  text\n\n  para two\n    indented\n  back\nk: v\n",
        "strip: |-\n  no newline\nkeep: |+\n  keep\n\n\nz: 1\n",
        "explicit: |2\n   three spaces\n  two\n",
        "bools: [yes, No, on, OFF, True, false]\nnulls: [~, null, Null]\n",
        "ints: [0, -3, +7, 1_000, 0x1F, 0b101, 017]\nfloats: [1.5, -0.25, 1.0e+3, .5, .inf, -.inf]\n",
        "strings: [1e3, 09, -.5, 1.2.3, 'true', v1.0, 10s, 1m30s, 50%]\n",
        "- top\n- level\n- {a: b}\n",
        "just a scalar\n",
        "'quoted key': 1\n\"another key\": 2\nkey with spaces: 3\n",
        "---\ndoc: with marker\n",
        "unicode: héllo wörld ✓\nemoji: \"\\U0001F600\"\n",
        "colon:in:plain: value\nweird-key_1.2: x\n",
        "nested:\n  deeper:\n    deepest: [1, [2, [3]]]\n",
        "spec:\n  timeline:\n    - at: 30s\n      rollout: {maxUnavailable: 1, maxSurge: 0}\n    - at: 2m\n      partition: {kind: halves}\n      for: 20s\n",
        "",
        "# only a comment\n",
        "crlf: yes\r\nnext: 2\r\n",
        "seq_of_seq:\n- - a\n  - b\n- - c\n",
        "trailing: value   \nspaces:    x   # c\n",
        "percent: 25%\nat: '@home'\nbacktick: '`x`'\n",
        "key: 'a # not a comment'\nb: \"x\" # comment\n",
        "- a # c\n- b\n",
        "a:    # comment\n  b: 1\n",
        "a:\n  - b: 1\n    c: 2\n\n  - d\n",
        "k: [a, {b: c}, [d], 'e, f']\n",
        "key: |\n  text\n# comment at column 0\nnext: 1\n",
        "a: x:y\nb: [x:y]\n",
        "  a: 1\n  b: 2\n",
        "a: - b\n".replacingOccurrences(of: "- b", with: "'- b'"),
        "a: >\n\n  leading blank\n",
        "list:\n  -   spaced\n  -\n    nested: after empty dash\n",
    ]

    /// Documents outside the subset (or malformed), with the line and column of the error.
    static let rejected: [(String, Int, Int, String)] = [
        ("a: &anchor 1\n", 1, 4, "anchors"),
        ("a: *alias\n", 1, 4, "aliases"),
        ("a: !!str 1\n", 1, 4, "tags"),
        ("a: 1\n---\nb: 2\n", 2, 1, "multiple documents"),
        ("%YAML 1.2\na: 1\n", 1, 1, "directives"),
        ("a: 1\na: 2\n", 2, 1, "duplicate key 'a'"),
        ("a:\n\t- x\n", 2, 1, "tab"),
        ("a: b: c\n", 1, 5, "mapping values"),
        ("a: 'open\n", 1, 4, "unterminated"),
        ("a: [1, 2\n", 1, 4, "unterminated flow"),
        ("a: {x: 1, x: 2}\n", 1, 11, "duplicate key 'x'"),
        ("a:\n  b: 1\n    c: 2\n", 3, 5, "unexpected indentation"),
        ("a: plain\n  continued\n", 2, 3, "multi-line plain"),
        ("? complex\n: key\n", 1, 1, "complex keys"),
        ("a: \"bad \\q escape\"\n", 1, 9, "unknown escape"),
        ("a: 1\n b: 2\n", 2, 2, "unexpected indentation"),
        ("- a\nb: 1\n", 2, 1, "unexpected content"),
        ("a: [1, 2] extra\n", 1, 11, "unexpected text"),
        ("a: @x\n", 1, 4, "cannot start"),
    ]
}

@Suite("YAML reader")
struct YAMLReaderTests {
    @Test(arguments: YAMLCases.rejected.indices)
    func test_outsideTheSubset_isAnErrorWithLineAndColumn(index: Int) {
        let (document, line, column, fragment) = YAMLCases.rejected[index]
        do {
            let node = try YAMLReader.parse(document, file: "case.yaml")
            Issue.record("accepted \(document.debugDescription) as \(node.resolved)")
        } catch {
            #expect(error.file == "case.yaml")
            #expect(error.message.contains(fragment), "\(error)")
            #expect((error.line, error.column) == (line, column), "\(error)")
        }
    }

    @Test func test_positions_pointAtTheNodes() throws {
        let node = try YAMLReader.parse("spec:\n  pods: 3\n  list:\n    - x\n    - {a: b}\n")
        #expect(node["spec"]?["pods"].map { ($0.line, $0.column) } ?? (0, 0) == (2, 9))
        let list = node["spec"]?["list"]?.items ?? []
        #expect(list.map(\.line) == [4, 5])
        #expect(list[1].column == 7)
        #expect(list[1]["a"]?.column == 11, "the value b")
    }

    @Test func test_blockScalars_andFolding() throws {
        #expect(try YAMLReader.parse("a: |\n  x\n  y\n")["a"]?.scalarText == "x\ny\n")
        #expect(try YAMLReader.parse("a: >-\n  x\n  y\n\n  z\n")["a"]?.scalarText == "x y\nz")
        #expect(try YAMLReader.parse("a: |+\n  x\n\n")["a"]?.scalarText == "x\n\n")
    }

    @Test func test_resolution_followsYAML11ForPlainScalarsOnly() throws {
        let node = try YAMLReader.parse("a: yes\nb: 'yes'\nc: 0x10\nd: 1e3\n")
        #expect(node["a"]?.resolved == .bool(true))
        #expect(node["b"]?.resolved == .string("yes"))
        #expect(node["c"]?.resolved == .int(16))
        #expect(node["d"]?.resolved == .string("1e3"))
    }

    @Test func test_deepNesting_andHugeInput_areRefused() {
        let deep = String(repeating: "[", count: 100) + String(repeating: "]", count: 100)
        #expect(throws: YAMLError.self) { try YAMLReader.parse(deep) }
        let huge = String(repeating: "a", count: YAMLReader.maxBytes + 1)
        #expect(throws: YAMLError.self) { try YAMLReader.parse(huge) }
    }

    @Test func test_randomInput_neverTraps() {
        var rng = SplitMix64(seed: 77)
        let alphabet = Array("ab: -#'\"[]{},|>\n  \t!&*?%@`\\1.~")
        for _ in 0..<5_000 {
            let text = String((0..<rng.index(below: 60)).map { _ in alphabet[rng.index(below: alphabet.count)] })
            _ = try? YAMLReader.parse(text)
        }
        for base in YAMLCases.accepted {
            var characters = Array(base)
            guard !characters.isEmpty else { continue }
            for _ in 0..<50 {
                characters[rng.index(below: characters.count)] = alphabet[rng.index(below: alphabet.count)]
                _ = try? YAMLReader.parse(String(characters))
            }
        }
    }
}

/// Compares the reader with PyYAML (`scripts/test` installs it) on the tricky cases and on every
/// YAML file under `scenarios/`.
@Suite("YAML reader against PyYAML")
struct YAMLAgainstPyYAMLTests {
    static var packageRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    static func scenarioFiles() -> [URL] {
        let root = self.packageRoot.appendingPathComponent("scenarios")
        guard let walker = FileManager.default.enumerator(at: root, includingPropertiesForKeys: nil) else { return [] }
        return walker.compactMap { $0 as? URL }.filter { $0.pathExtension == "yaml" || $0.pathExtension == "yml" }.sorted { $0.path < $1.path }
    }

    /// PyYAML's reading of each document, as canonical JSON, in one python3 process.
    static func pyyaml(_ documents: [String]) throws -> [String] {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("pico-yaml-\(UInt64.random(in: 0...UInt64.max))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        var paths: [String] = []
        for (index, document) in documents.enumerated() {
            let path = directory.appendingPathComponent("\(index).yaml").path
            try Data(document.utf8).write(to: URL(fileURLWithPath: path))
            paths.append(path)
        }
        let script = """
            import json, math, sys, yaml
            def canon(v):
                if isinstance(v, bool): return v
                if isinstance(v, float):
                    if math.isinf(v): return "inf" if v > 0 else "-inf"
                    if math.isnan(v): return "nan"
                    return {"float": repr(v)}
                if isinstance(v, dict): return {str(k): canon(x) for k, x in v.items()}
                if isinstance(v, list): return [canon(x) for x in v]
                return v
            for path in sys.argv[1:]:
                with open(path, newline="") as f:
                    print(json.dumps(canon(yaml.safe_load(f)), sort_keys=True, ensure_ascii=True))
            """
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", script] + paths
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw CocoaError(.fileReadUnknown) }
        return String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init)
    }

    /// The same canonical JSON from our reader.
    static func canonical(_ value: YAMLValue) -> String {
        switch value {
        case .null: return "null"
        case .bool(let value): return value ? "true" : "false"
        case .int(let value): return String(value)
        case .double(let value):
            if value.isInfinite { return value > 0 ? "\"inf\"" : "\"-inf\"" }
            if value.isNaN { return "\"nan\"" }
            return "{\"float\": \"\(Self.pythonRepr(value))\"}"
        case .string(let text): return Self.jsonString(text)
        case .sequence(let items): return "[" + items.map(Self.canonical).joined(separator: ", ") + "]"
        case .mapping(let pairs):
            return "{" + pairs.sorted { $0.0.unicodeScalars.lexicographicallyPrecedes($1.0.unicodeScalars) }
                .map { Self.jsonString($0.0) + ": " + Self.canonical($0.1) }.joined(separator: ", ") + "}"
        }
    }

    static func pythonRepr(_ value: Double) -> String {
        let text = "\(value)"
        return text.hasSuffix(".0") || text.contains("e") || text.contains(".") ? text.replacingOccurrences(of: "e+", with: "e+") : text
    }

    static func jsonString(_ text: String) -> String {
        var result = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": result += "\\\""
            case "\\": result += "\\\\"
            case "\n": result += "\\n"
            case "\r": result += "\\r"
            case "\t": result += "\\t"
            case "\u{08}": result += "\\b"
            case "\u{0C}": result += "\\f"
            default:
                if scalar.value < 0x20 || scalar.value > 0x7E {
                    if scalar.value > 0xFFFF {
                        let offset = scalar.value - 0x10000
                        result += String(format: "\\u%04x\\u%04x", 0xD800 + (offset >> 10), 0xDC00 + (offset & 0x3FF))
                    } else {
                        result += String(format: "\\u%04x", scalar.value)
                    }
                } else {
                    result.unicodeScalars.append(scalar)
                }
            }
        }
        return result + "\""
    }

    @Test func test_trickyCasesAndScenarioFiles_readAsPyYAMLReadsThem() throws {
        var documents = YAMLCases.accepted
        var names = documents.indices.map { "case \($0)" }
        for file in Self.scenarioFiles() {
            documents.append(try String(contentsOf: file, encoding: .utf8))
            names.append(file.lastPathComponent)
        }
        let expected = try Self.pyyaml(documents)
        #expect(expected.count == documents.count)
        for (index, document) in documents.enumerated() where index < expected.count {
            let ours = Self.canonical(try YAMLReader.parse(document, file: names[index]).resolved)
            #expect(ours == expected[index], "\(names[index]): \(document.debugDescription)")
        }
    }
}
