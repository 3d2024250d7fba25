// The YAML-subset reader (configuration and scenario files) and the scenario decoder on top.
import PicoModel
import PicoSim

/// Input: any bytes, read as UTF-8 text (invalid sequences replaced). The tree respects the depth
/// bound and every node's position lies inside the text.
enum YAMLHarness {
    static func run(_ bytes: FuzzBytes) {
        let text = String(decoding: bytes.bytes, as: UTF8.self)
        guard let root = try? YAMLReader.parse(text, file: "fuzz.yaml") else { return }
        let lines = text.utf8.reduce(1) { $0 + ($1 == 0x0A ? 1 : 0) }
        self.check(root, depth: 0, lines: lines)
    }

    static func check(_ node: YAMLNode, depth: Int, lines: Int) {
        require(depth <= YAMLReader.maxDepth + 1, "nesting \(depth) beyond the depth bound")
        require(node.line >= 1 && node.line <= lines + 1 && node.column >= 1, "node at line \(node.line), column \(node.column)")
        for pair in node.pairs ?? [] {
            self.check(pair.key, depth: depth + 1, lines: lines)
            self.check(pair.value, depth: depth + 1, lines: lines)
        }
        for item in node.items ?? [] { self.check(item, depth: depth + 1, lines: lines) }
    }

    static func seeds() -> [(name: String, bytes: [UInt8])] {
        let texts: [(String, String)] = [
            ("config", "proxy:\n  bind_addr: 0.0.0.0:8000\n  timeout: 30s\ncluster:\n  node_id_prefix: pico-0-\n  join:\n    - pico-0.pico\n    - pico-1.pico\nlog:\n  level: info\n"),
            ("flow", "a: [1, 2, {b: c, d: [e, f]}]\nq: \"quoted \\\"x\\\" \\u00e9\"\ns: 'single ''q'''\n"),
            ("block-scalars", "lit: |\n  line one\n  line two\nfold: >-\n  folded\n  text\n"),
            ("sequences", "- a\n- - b\n  - c\n- k: v\n  k2: v2\n"),
            ("comments-and-docs", "# comment\n---\nkey: value # trailing\nempty:\nnull: ~\nbool: true\n"),
            ("anchors-refused", "a: &x 1\nb: *x\n"),
            ("tabs", "a:\n\tb: c\n"),
            ("deep", String(repeating: "- ", count: 70) + "x\n"),
            ("duplicate-keys", "a: 1\na: 2\n"),
            ("multiline-key", "? complex\n: value\n"),
            ("env", "addr: ${POD_IP:127.0.0.1}:8000\n"),
        ]
        var seeds = texts.map { (name: $0.0, bytes: Array($0.1.utf8)) }
        seeds.append((name: "scenario", bytes: Array(ScenarioWriter.write(ScenarioGenerator.generate(seed: 3)).utf8)))
        return seeds
    }
}

/// Input: a scenario file. One that decodes is written back by `ScenarioWriter`; that text must
/// decode, and writing it again must give the same text (the writer and decoder agree).
enum ScenarioHarness {
    static func run(_ bytes: FuzzBytes) {
        let text = String(decoding: bytes.bytes, as: UTF8.self)
        guard let scenario = try? ScenarioDecoder.decode(text, file: "fuzz.yaml") else { return }
        let written = ScenarioWriter.write(scenario)
        let again: Scenario
        do {
            again = try ScenarioDecoder.decode(written, file: "written.yaml")
        } catch {
            require(false, "the written scenario does not decode: \(error)\n\(written)")
            return
        }
        require(ScenarioWriter.write(again) == written, "writing the scenario again differs:\n\(written)")
    }

    static func seeds() -> [(name: String, bytes: [UInt8])] {
        var seeds = (1...8).map { seed in
            (name: "generated-\(seed)", bytes: Array(ScenarioWriter.write(ScenarioGenerator.generate(seed: UInt64(seed))).utf8))
        }
        let handWritten = """
            apiVersion: pico-sim.dev/v1alpha1
            kind: Scenario
            metadata:
              name: fuzz-seed
            spec:
              seed: 7
              duration: 90s
              topology:
                pods: 3
                startup: parallel
                agents:
                  - endpoint: svc
                    count: 2
                clients:
                  - rate: 50
                    endpoints: [svc]
                    distribution: zipf
              network:
                latency: 1ms
                loss: 0.01
              kubernetes:
                terminationGracePeriod: 30s
              timeline:
                - at: 10s
                  rollingRestart: {}
                - at: 40s
                  partition:
                    groups: [[pico-0], [pico-1, pico-2]]
                  for: 10s
              checks:
                - no-failed-requests
                - membership-converged:
                    within: 20s

            """
        seeds.append((name: "hand-written", bytes: Array(handWritten.utf8)))
        return seeds
    }
}
