import PicoModel
@testable import PicoRuntime
import Testing

@Suite("pico status")
struct StatusCommandTests {
    let nodes = #"[{"id":"pico-0-a","status":"active","proxy_addr":"10.0.0.1:8000","endpoints":2,"upstreams":3},{"id":"pico-1-b","status":"draining","proxy_addr":"10.0.0.2:8000","endpoints":0,"upstreams":0}]"#

    @Test func test_json_keepsKeyOrder_escapes_andRefusesHostileInput() throws {
        let value = try JSONValue.parse(#"{"b":1,"a":[true,null,"x\"\u00e9\ud83d\ude00"],"c":{"d":-1.5e3}}"#)
        guard case .object(let pairs) = value else {
            Issue.record("expected an object")
            return
        }
        #expect(pairs.map(\.0) == ["b", "a", "c"])
        #expect(pairs[1].1 == .array([.bool(true), .null, .string("x\"é😀")]))
        #expect(try JSONValue.parse(value.prettyJSON()) == value)
        for (bad, offset) in [("{\"a\":1,}", 7), ("[1 2]", 3), ("\"\\q\"", 3), ("{\"a\" 1}", 5), ("[1]x", 3), ("\"abc", 4), ("tru", 0), ("", 0)] {
            #expect(throws: JSONValue.ParseError.self, "\(bad)") { try JSONValue.parse(bad) }
            do {
                _ = try JSONValue.parse(bad)
            } catch {
                #expect(error.offset == offset, "\(bad)")
            }
        }
        let deep = String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000)
        #expect(throws: JSONValue.ParseError(message: "nested deeper than 64", offset: 64)) { try JSONValue.parse(deep) }
    }

    @Test func test_table_alignsColumnsInTheServersKeyOrder() throws {
        let text = StatusOutput.table.render(try JSONValue.parse(self.nodes))
        #expect(text == """
        ID         STATUS     PROXY_ADDR      ENDPOINTS   UPSTREAMS
        pico-0-a   active     10.0.0.1:8000   2           3
        pico-1-b   draining   10.0.0.2:8000   0           0

        """)
        let endpoints = StatusOutput.table.render(try JSONValue.parse(#"{"app":2,"ws":1}"#), columns: ("ENDPOINT", "UPSTREAMS"))
        #expect(endpoints == "ENDPOINT   UPSTREAMS\napp        2\nws         1\n")
        #expect(StatusOutput.table.render(.array([])) == "(none)\n")
    }

    @Test func test_yaml_quotesWhatAReaderWouldMisread() throws {
        let value = try JSONValue.parse(#"{"id":"true","addr":"10.0.0.1:8000","count":3,"plain":"pico-0","list":[{"a":"1x","b":[]}],"empty":{}}"#)
        #expect(StatusOutput.yaml.render(value) == """
        id: "true"
        addr: "10.0.0.1:8000"
        count: 3
        plain: pico-0
        list:
          - a: "1x"
            b: []
        empty: {}

        """)
    }

    @Test func test_parse_mapsCommandsToRoutes_andRejectsMistakes() throws {
        let nodes = try StatusCommand.parse(["cluster", "nodes", "--server.url", "http://pico-0.pico:8002", "-o", "json", "--status", "active"])
        #expect(nodes.path == "/status/cluster/nodes")
        #expect(nodes.server == Address(host: "pico-0.pico", port: 8002))
        #expect(nodes.output == .json)
        #expect(try StatusCommand.parse(["cluster", "node", "a b", "--forward=pico-1"]).path == "/status/cluster/nodes/a%20b?forward=pico-1")
        #expect(try StatusCommand.parse(["upstream", "endpoints", "--output=yaml"]).output == .yaml)
        #expect(try StatusCommand.parse(["cluster", "tunnels", "--forward", "pico-2"]).path == "/status/cluster/tunnels?forward=pico-2")
        #expect(throws: ConfigError("--status applies to `cluster nodes` only")) { try StatusCommand.parse(["cluster", "tunnels", "--status", "active"]) }
        #expect(try StatusCommand.parse(["gossip", "node", "x"]).gossipNode == "x")
        #expect(throws: ConfigError("unknown command: cluster")) { try StatusCommand.parse(["cluster"]) }
        #expect(throws: ConfigError("-o: expected table, json or yaml, got xml")) { try StatusCommand.parse(["gossip", "nodes", "-o", "xml"]) }
        #expect(throws: ConfigError("--status applies to `cluster nodes` only")) { try StatusCommand.parse(["gossip", "nodes", "--status", "left"]) }
        #expect(throws: ConfigError("flag --forward needs a value")) { try StatusCommand.parse(["gossip", "nodes", "--forward"]) }
    }

    @Test func test_parse_httpsURLsAndTLSFlags() throws {
        let secure = try StatusCommand.parse(["gossip", "nodes", "--server.url", "https://pico-0.pico", "--tls.root-cas=/ca.crt",
                                              "--tls.cert", "/c.crt", "--tls.key", "/c.key"])
        #expect(secure.server == Address(host: "pico-0.pico", port: 443))
        #expect(secure.tls == TLSClientSettings(rootCAsPath: "/ca.crt", certificatePath: "/c.crt", keyPath: "/c.key"))
        #expect(try StatusCommand.parse(["gossip", "nodes", "--server.url", "https://[::1]:8002"]).tls == TLSClientSettings())
        #expect(try StatusCommand.parse(["gossip", "nodes"]).tls == nil)
        #expect(throws: ConfigError("--tls.* flags need an https:// --server.url")) { try StatusCommand.parse(["gossip", "nodes", "--tls.root-cas", "/ca.crt"]) }
        #expect(throws: ConfigError("--tls.cert and --tls.key go together")) {
            try StatusCommand.parse(["gossip", "nodes", "--server.url", "https://a:1", "--tls.key", "/k"])
        }
        #expect(throws: ConfigError("--server.url: expected an http:// or https:// URL, got ftp://a")) {
            try StatusCommand.parse(["gossip", "nodes", "--server.url", "ftp://a"])
        }
        #expect(throws: ConfigError("--tls.cert: expected a file path")) { try StatusCommand.parse(["gossip", "nodes", "--tls.cert="]) }
        #expect(throws: ConfigError("--server.url: expected an http:// or https:// URL, got https://[::1")) {
            try StatusCommand.parse(["gossip", "nodes", "--server.url", "https://[::1"])
        }
    }

    @Test func test_render_filtersByStatus_picksAGossipNode_andReportsRefusals() throws {
        var command = try StatusCommand.parse(["cluster", "nodes", "--status", "draining", "-o", "json"])
        let (text, status) = command.render(status: 200, body: self.nodes)
        #expect(status == 0)
        #expect(try JSONValue.parse(text) == .array([try JSONValue.parse(#"{"id":"pico-1-b","status":"draining","proxy_addr":"10.0.0.2:8000","endpoints":0,"upstreams":0}"#)]))
        command = try StatusCommand.parse(["gossip", "node", "missing"])
        #expect(command.render(status: 200, body: self.nodes) == ("/status/gossip/nodes: 404 node missing not found\n", 1))
        command = try StatusCommand.parse(["cluster", "node", "nope"])
        #expect(command.render(status: 404, body: #"{"error":"not found"}"#) == ("/status/cluster/nodes/nope: 404 not found\n", 1))
        #expect(command.render(status: 200, body: "<html>") == ("/status/cluster/nodes/nope: the node answered something that is not JSON\n", 1))
    }

    @Test func test_gossipKeys_asksEveryLiveMember_throughTheAskedNode_andSaysWhoCouldNotBeAsked() throws {
        let command = try StatusCommand.parse(["gossip", "keys"])
        #expect(command.asksEveryMember && command.path == "/status/cluster/nodes")
        #expect(throws: ConfigError("--forward does not apply to `gossip keys`: it asks every member")) { try StatusCommand.parse(["gossip", "keys", "--forward", "x"]) }
        let rows = #"[{"id":"pico-2-c","status":"active"},{"id":"pico-1 b","status":"suspect"},{"id":"pico-0-a","status":"active"},{"id":"pico-3-d","status":"dead"}]"#
        let paths = try #require(command.memberKeyPaths(nodesBody: rows))
        #expect(paths.map(\.id) == ["pico-2-c", "pico-0-a", "pico-1 b"], "the asked node first, the dead left out")
        #expect(paths.map(\.path) == ["/status/gossip/keys", "/status/gossip/keys?forward=pico-0-a", "/status/gossip/keys?forward=pico-1%20b"])
        #expect(command.memberKeyPaths(nodesBody: "{}") == nil)
        let answer = #"{"id":"pico-2-c","sealed":true,"keys":["aa","bb"],"verify_incoming":true,"verify_outgoing":true}"#
        let same = command.renderMemberKeys([("pico-2-c", 200, answer), ("pico-0-a", 200, answer.replacingOccurrences(of: "pico-2-c", with: "pico-0-a"))])
        #expect(same.exitStatus == 0)
        #expect(same.text.contains("aa, bb") && same.text.hasSuffix("every member that answered holds the same keys\n"))
        let split = command.renderMemberKeys([("pico-2-c", 200, answer), ("pico-0-a", 502, #"{"error":"forward failed"}"#), ("pico-1 b", 200, answer.replacingOccurrences(of: #"["aa","bb"]"#, with: #"["aa"]"#))])
        #expect(split.exitStatus == 1)
        #expect(split.text.contains("502 forward failed"))
        #expect(split.text.hasSuffix("members hold different keys (a rotation step has not reached every member)\n"))
    }
}
