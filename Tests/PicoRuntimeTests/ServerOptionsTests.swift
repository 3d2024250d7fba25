import PicoModel
@testable import PicoRuntime
import Testing

@Suite("Server options")
struct ServerOptionsTests {
    @Test func test_yamlThenFlags_flagsWin_andEnvironmentExpands() throws {
        let yaml = "proxy:\n  bind_addr: ${HOST:0.0.0.0}:9000\n  timeout: 5s\ncluster:\n  node_id_prefix: $POD-\n"
        let settings = try ServerOptions.load(yaml: yaml, file: "s.yaml", expandEnvironment: true, environment: ["POD": "pico-0"], flags: [("--proxy.timeout", "7s")])
        #expect(settings.proxyBind == HostPort(host: "0.0.0.0", port: 9000))
        #expect(settings.proxyTimeout == .seconds(7))
        #expect(settings.nodeIDPrefix == "pico-0-")
        #expect(settings.adminBind == HostPort(host: "", port: 8002))
    }

    @Test func test_unknownKeysAndBadValues_nameTheKeyAndLine() {
        #expect(throws: ConfigError("s.yaml:3: unknown key proxy.nope")) {
            try ServerOptions.load(yaml: "proxy:\n  timeout: 1s\n  nope: 1\n", file: "s.yaml", expandEnvironment: false, environment: [:], flags: [])
        }
        #expect(throws: ConfigError("s.yaml:1: grace_period: expected a positive duration")) {
            try ServerOptions.load(yaml: "grace_period: 0s\n", file: "s.yaml", expandEnvironment: false, environment: [:], flags: [])
        }
        #expect(throws: ConfigError("--upstream.bind-addr: expected host:port")) {
            try ServerOptions.load(yaml: nil, file: "", expandEnvironment: false, environment: [:], flags: [("--upstream.bind-addr", "nope")])
        }
        #expect(throws: ConfigError("unknown flag --nope")) {
            try ServerOptions.load(yaml: nil, file: "", expandEnvironment: false, environment: [:], flags: [("--nope", "1")])
        }
    }
}
