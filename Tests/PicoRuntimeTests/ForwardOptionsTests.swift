import PicoModel
@testable import PicoRuntime
import Testing

@Suite("Forward options")
struct ForwardOptionsTests {
    static func load(_ yaml: String?, flags: [(String, String)] = [], port: (addr: String, endpoint: String)? = nil) throws -> ForwardSettings {
        try ForwardOptions.load(yaml: yaml, file: "f.yaml", expandEnvironment: false, environment: [:], flags: flags, port: port)
    }

    @Test func test_theExampleFile_isAValidConfig_withEveryKeySet() throws {
        let settings = try Self.load(ForwardOptions.exampleFile)
        #expect(settings.connection.address == Address(host: "pico", port: 8000))
        #expect(settings.connection.tls == TLSClientSettings(rootCAsPath: "/etc/pico/ca.crt", certificatePath: "/etc/pico/client.crt", keyPath: "/etc/pico/client.key"))
        #expect(settings.connection.token == .file("/var/run/secrets/pico/token"))
        #expect(settings.ports == [ForwardSettings.Port(listen: Address(host: "localhost", port: 5432), endpoint: "my-db")])
    }

    @Test func test_forwardTcp_replacesTheFilesPorts_flagsWin_andTheDefaultIsTheLocalProxyPort() throws {
        let fromFile = try Self.load("ports:\n  - addr: 0.0.0.0:3000\n    endpoint_id: a\nconnect:\n  url: http://pico:9000\n")
        #expect(fromFile.ports == [ForwardSettings.Port(listen: Address(host: "0.0.0.0", port: 3000), endpoint: "a")])
        #expect(fromFile.connection.address == Address(host: "pico", port: 9000))
        let positional = try Self.load("ports:\n  - addr: 3000\n    endpoint_id: a\n", flags: [("--connect.url", "wss://lb:443"), ("--connect.token", "t.k.n")], port: ("4000", "b"))
        #expect(positional.ports == [ForwardSettings.Port(listen: Address(host: "localhost", port: 4000), endpoint: "b")])
        #expect(positional.connection.usesTLS && positional.connection.address == Address(host: "lb", port: 443))
        #expect(positional.connection.token == .value("t.k.n"))
        #expect(try Self.load(nil, port: ("1", "x")).connection.address == Address(host: "localhost", port: 8000))
    }

    @Test func test_badConfigs_nameTheKeyLineOrFlag() {
        #expect(throws: ConfigError("f.yaml:2:11: ports[0].addr: expected a port or host:port, got http://x")) {
            try Self.load("ports:\n  - addr: http://x\n    endpoint_id: a\n")
        }
        #expect(throws: ConfigError("f.yaml:3:18: ports[0].endpoint_id: invalid endpoint a/b: it must be non-empty, at most 255 bytes, without '/', '?', '#', '%', spaces or control characters")) {
            try Self.load("ports:\n  - addr: 1\n    endpoint_id: a/b\n")
        }
        #expect(throws: ConfigError("f.yaml: ports: at least one port is required")) { try Self.load("log:\n  level: info\n") }
        #expect(throws: ConfigError("no ports: give --config.path with ports, or use `pico forward tcp <addr> <endpoint>`")) { try Self.load(nil) }
        #expect(throws: ConfigError("unknown flag --connect.tenant-id")) { try Self.load(nil, flags: [("--connect.tenant-id", "t")], port: ("1", "a")) }
        #expect(throws: ConfigError("connect.tls needs an https:// or wss:// connect.url")) {
            try Self.load(nil, flags: [("--connect.tls.root-cas", "/ca.pem")], port: ("1", "a"))
        }
        #expect(throws: ConfigError("invalid addr nope: expected a port or host:port")) { try Self.load(nil, port: ("nope", "a")) }
        #expect(throws: (any Error).self) { try Self.load("ports:\n  - addr: 1\n    endpoint_id: a\n    extra: 1\n") }
    }
}
