import PicoModel
@testable import PicoRuntime
import Testing

@Suite("Agent options")
struct AgentOptionsTests {
    let file = """
    connect:
      url: http://${NODE:pico}:8001
      timeout: 5s
    listeners:
      - endpoint_id: web
        addr: 3000
      - endpoint_id: api
        addr: http://10.0.0.9:8080/
        protocol: http
        timeout: 2s
    log:
      level: debug
    grace_period: 20s

    """

    @Test func test_configFile_givesEveryListener_andFlagsWin() throws {
        let settings = try AgentOptions.load(yaml: self.file, file: "a.yaml", expandEnvironment: true, environment: [:],
                                             flags: [("--grace-period", "5s")], listener: nil)
        #expect(settings.connect == Address(host: "pico", port: 8001))
        #expect(settings.connectTimeout == .seconds(5))
        #expect(settings.listeners == [
            AgentSettings.Listener(endpoint: "web", backend: Address(host: "localhost", port: 3000), timeout: .seconds(10)),
            AgentSettings.Listener(endpoint: "api", backend: Address(host: "10.0.0.9", port: 8080), timeout: .seconds(2)),
        ])
        #expect(settings.logLevel == .debug)
        #expect(settings.gracePeriod == .seconds(5))
    }

    @Test func test_agentHttp_replacesTheFilesListeners_andTakesItsTimeoutFlag() throws {
        let settings = try AgentOptions.load(yaml: self.file, file: "a.yaml", expandEnvironment: true, environment: [:],
                                             flags: [("--timeout", "3s"), ("--connect.url", "http://127.0.0.1:9001")], listener: ("solo", "localhost:4000"))
        #expect(settings.listeners == [AgentSettings.Listener(endpoint: "solo", backend: Address(host: "localhost", port: 4000), timeout: .seconds(3))])
        #expect(settings.connect == Address(host: "127.0.0.1", port: 9001))
    }

    @Test func test_tcpListeners_fromTheFileOrAgentTcp() throws {
        let yaml = "listeners:\n  - endpoint_id: db\n    protocol: tcp\n    addr: localhost:5432\n    timeout: 2s\n  - endpoint_id: web\n    addr: 3000\n"
        let settings = try AgentOptions.load(yaml: yaml, file: "a.yaml", expandEnvironment: false, environment: [:], flags: [], listener: nil)
        #expect(settings.listeners == [
            AgentSettings.Listener(endpoint: "db", backend: Address(host: "localhost", port: 5432), timeout: .seconds(2), serviceProtocol: .tcp),
            AgentSettings.Listener(endpoint: "web", backend: Address(host: "localhost", port: 3000), timeout: .seconds(10), serviceProtocol: .http),
        ])
        let flag = try AgentOptions.load(yaml: nil, file: "", expandEnvironment: false, environment: [:], flags: [("--timeout", "1s")],
                                         listener: ("ssh", "22"), listenerProtocol: .tcp)
        #expect(flag.listeners == [AgentSettings.Listener(endpoint: "ssh", backend: Address(host: "localhost", port: 22), timeout: .seconds(1), serviceProtocol: .tcp)])
        let proxied = try AgentOptions.load(yaml: "listeners:\n  - endpoint_id: db\n    protocol: tcp\n    addr: 1\n    proxy_protocol: true\n", file: "a.yaml",
                                            expandEnvironment: false, environment: [:], flags: [], listener: nil)
        #expect(proxied.listeners.first?.proxyProtocol == true)
        #expect(try AgentOptions.load(yaml: nil, file: "", expandEnvironment: false, environment: [:], flags: [("--proxy-protocol", "true")],
                                      listener: ("db", "1"), listenerProtocol: .tcp).listeners.first?.proxyProtocol == true)
        #expect(throws: ConfigError("a.yaml:4:21: listeners[0].proxy_protocol: applies to protocol: tcp listeners only")) {
            try AgentOptions.load(yaml: "listeners:\n  - endpoint_id: web\n    addr: 1\n    proxy_protocol: true\n", file: "a.yaml",
                                  expandEnvironment: false, environment: [:], flags: [], listener: nil)
        }
        #expect(throws: ConfigError("--proxy-protocol applies to `pico agent tcp`")) {
            try AgentOptions.load(yaml: nil, file: "", expandEnvironment: false, environment: [:], flags: [("--proxy-protocol", "true")], listener: ("web", "1"))
        }
        #expect(throws: ConfigError("invalid addr http://x:1: expected a port or host:port")) {
            try AgentOptions.load(yaml: nil, file: "", expandEnvironment: false, environment: [:], flags: [], listener: ("ssh", "http://x:1"), listenerProtocol: .tcp)
        }
    }

    @Test func test_badFiles_nameTheKeyAndLine() {
        func load(_ yaml: String?, flags: [(String, String)] = [], listener: (endpoint: String, addr: String)? = nil) throws {
            _ = try AgentOptions.load(yaml: yaml, file: "a.yaml", expandEnvironment: false, environment: [:], flags: flags, listener: listener)
        }
        #expect(throws: ConfigError("a.yaml:2:5: listeners[0].endpoint_id: is required")) {
            try load("listeners:\n  - addr: 3000\n    timeout: 1s\n")
        }
        #expect(throws: ConfigError("a.yaml:3:15: listeners[0].protocol: expected http or tcp, got udp")) {
            try load("listeners:\n  - endpoint_id: a\n    protocol: udp\n    addr: 1\n")
        }
        #expect(throws: ConfigError("a.yaml:4:11: listeners[0].addr: expected a port or host:port, got http://db:5432")) {
            try load("listeners:\n  - endpoint_id: a\n    protocol: tcp\n    addr: http://db:5432\n")
        }
        #expect(throws: ConfigError("a.yaml:2:11: listeners[0].addr: expected a port, host:port or http:// URL, got nope")) {
            try load("listeners:\n  - addr: nope\n    endpoint_id: a\n")
        }
        #expect(throws: ConfigError("a.yaml: listeners: at least one listener is required")) {
            try load("log:\n  level: info\n")
        }
        #expect(throws: ConfigError("invalid endpoint a/b: it must be non-empty, at most 255 bytes, without '/', '?', '#', '%', spaces or control characters")) {
            try load(nil, listener: ("a/b", "3000"))
        }
        #expect(throws: ConfigError("unknown flag --nope")) {
            try load(nil, flags: [("--nope", "1")], listener: ("a", "3000"))
        }
        #expect(throws: ConfigError("--timeout applies to `pico agent http` and `pico agent tcp`; set listeners[].timeout in the config file")) {
            try load("listeners:\n  - endpoint_id: a\n    addr: 1\n", flags: [("--timeout", "1s")])
        }
    }

    @Test func test_eventLoops_fromFileOrFlag_boundedOneTo64_andDefaultCapped() throws {
        func load(_ yaml: String, flags: [(String, String)] = []) throws -> AgentSettings {
            try AgentOptions.load(yaml: yaml, file: "a.yaml", expandEnvironment: false, environment: [:], flags: flags, listener: nil)
        }
        let listeners = "listeners:\n  - endpoint_id: a\n    addr: 1\n"
        #expect(try load(listeners).eventLoops == nil)
        #expect(try load(listeners + "event_loops: 3\n").eventLoops == 3)
        #expect(try load(listeners + "event_loops: 3\n", flags: [("--event-loops", "1")]).eventLoops == 1)
        #expect(throws: ConfigError("--event-loops: expected 1 to 64, got 0")) { try load(listeners, flags: [("--event-loops", "0")]) }
        #expect(throws: (any Error).self) { try load(listeners + "event_loops: 65\n") }
        #expect(AgentSettings().loopCount(processors: 2) == 2)
        #expect(AgentSettings().loopCount(processors: 64) == AgentSettings.defaultLoopLimit)
        var set = AgentSettings()
        set.eventLoops = 8
        #expect(set.loopCount(processors: 2) == 8)
    }

    @Test func test_aTokenComesFromTheFileOrAFlag_oneSourceAtATime_andNeverWithALineBreak() throws {
        let listener = (endpoint: "web", addr: "3000")
        let fromFile = try AgentOptions.load(yaml: "connect:\n  token_file: /run/token\n", file: "a.yaml", expandEnvironment: false, environment: [:],
                                             flags: [], listener: listener)
        #expect(fromFile.connectToken == .file("/run/token"))
        let flagWins = try AgentOptions.load(yaml: "connect:\n  token_file: /run/token\n", file: "a.yaml", expandEnvironment: false, environment: [:],
                                             flags: [("--connect.token", "a.b.c")], listener: listener)
        #expect(flagWins.connectToken == .value("a.b.c"))
        #expect(throws: ConfigError.self) {
            try AgentOptions.load(yaml: nil, file: "", expandEnvironment: false, environment: [:], flags: [("--connect.token", "a.b.c"), ("--connect.token-file", "/t")], listener: listener)
        }
        #expect(throws: ConfigError.self) {
            try AgentOptions.load(yaml: nil, file: "", expandEnvironment: false, environment: [:], flags: [("--connect.token", "a.b\r\nX-Evil: 1")], listener: listener)
        }
        #expect(throws: ConfigError.self) {
            try AgentOptions.load(yaml: "connect:\n  token: a\n  token_file: /t\n", file: "a.yaml", expandEnvironment: false, environment: [:], flags: [], listener: listener)
        }
        #expect(try StatusCommand.parse(["cluster", "nodes", "--server.token", "x.y.z"]).token == .value("x.y.z"))
        #expect(throws: ConfigError.self) { try StatusCommand.parse(["cluster", "nodes", "--server.token", "x", "--server.token-file", "/t"]) }
        #expect(" tok\n".trimmingCharacters(in: " \t\r\n") == "tok" && "\r\ntok\r\n".trimmingCharacters(in: " \r\n") == "tok")
    }

    @Test func test_unknownKeys_areErrors() {
        #expect(throws: ConfigError("a.yaml:4:5: unknown key 'listeners[0].tiemout'")) {
            _ = try AgentOptions.load(yaml: "listeners:\n  - endpoint_id: a\n    addr: 1\n    tiemout: 1s\n", file: "a.yaml", expandEnvironment: false, environment: [:], flags: [], listener: nil)
        }
    }
}

extension AgentOptionsTests {
    @Test func test_connectURL_schemesAndDefaultPorts_andTLSFilesOnlyWithTLS() throws {
        #expect(AgentSettings.connectURL("http://pico:8001")! == (Address(host: "pico", port: 8001), false))
        #expect(AgentSettings.connectURL("ws://pico")! == (Address(host: "pico", port: 80), false))
        #expect(AgentSettings.connectURL("https://pico.example.com/")! == (Address(host: "pico.example.com", port: 443), true))
        #expect(AgentSettings.connectURL("wss://[::1]:9443")! == (Address(host: "::1", port: 9443), true))
        for bad in ["ftp://pico", "https://", "pico:8001", "https://pico:99999"] {
            #expect(AgentSettings.connectURL(bad) == nil, "\(bad)")
        }
        let file = """
        connect:
          url: https://pico:8001
          tls:
            root_cas: /ca.crt
        listeners:
          - endpoint_id: web
            addr: 3000

        """
        let settings = try AgentOptions.load(yaml: file, file: "a.yaml", expandEnvironment: false, environment: [:],
                                             flags: [("--connect.tls.cert", "/a.crt"), ("--connect.tls.key", "/a.key")], listener: nil)
        #expect(settings.connectTLS == TLSClientSettings(rootCAsPath: "/ca.crt", certificatePath: "/a.crt", keyPath: "/a.key"))
        let plain = try AgentOptions.load(yaml: nil, file: "", expandEnvironment: false, environment: [:], flags: [], listener: ("web", "3000"))
        #expect(plain.connectTLS == nil)
        #expect(throws: ConfigError("connect.tls needs an https:// or wss:// connect.url")) {
            _ = try AgentOptions.load(yaml: file, file: "a.yaml", expandEnvironment: false, environment: [:], flags: [("--connect.url", "http://pico:8001")], listener: nil)
        }
        #expect(throws: ConfigError("a.yaml:4:5: unknown key 'connect.tls.colour'")) {
            _ = try AgentOptions.load(yaml: file.replacingOccurrences(of: "root_cas", with: "colour"), file: "a.yaml", expandEnvironment: false,
                                      environment: [:], flags: [], listener: nil)
        }
    }
}
