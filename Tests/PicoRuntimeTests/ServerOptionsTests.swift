import PicoModel
@testable import PicoRuntime
import Testing

@Suite("Server options")
struct ServerOptionsTests {
    @Test func test_yamlThenFlags_flagsWin_andEnvironmentExpands() throws {
        let yaml = "proxy:\n  bind_addr: ${HOST:0.0.0.0}:9000\n  timeout: 5s\ncluster:\n  node_id_prefix: $POD-\n"
        let settings = try ServerOptions.load(yaml: yaml, file: "s.yaml", expandEnvironment: true, environment: ["POD": "pico-0"], flags: [("--proxy.timeout", "7s")])
        #expect(settings.proxyBind == Address(host: "0.0.0.0", port: 9000))
        #expect(settings.proxyTimeout == .seconds(7))
        #expect(settings.nodeIDPrefix == "pico-0-")
        #expect(settings.adminBind == Address(host: "", port: 8002))
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

    @Test func test_accessLogHeaderLists_filterByCaseInsensitiveName_andBothListsOnOneSideAreAnError() throws {
        let yaml = "proxy:\n  access_log:\n    level: debug\n    request_headers:\n      allow_list: [Host, X-Trace]\n    response_headers:\n      block_list:\n        - set-cookie\n"
        let settings = try ServerOptions.load(yaml: yaml, file: "s.yaml", expandEnvironment: false, environment: [:], flags: [])
        #expect(settings.accessLogLevel == .debug)
        #expect(settings.accessLogRequestHeaders.shows("host"))
        #expect(settings.accessLogRequestHeaders.shows("x-trace"))
        #expect(!settings.accessLogRequestHeaders.shows("Authorization"))
        #expect(!settings.accessLogResponseHeaders.shows("Set-Cookie"))
        #expect(settings.accessLogResponseHeaders.shows("Content-Type"))
        let headers: HTTPHeaders = ["Host": "a", "Authorization": "secret", "x-trace": "1", "X-Trace": "2"]
        guard case .object(let pairs) = settings.accessLogRequestHeaders.logValue(headers) else {
            Issue.record("expected an object")
            return
        }
        #expect(pairs.map(\.0) == ["Host", "x-trace"])
        #expect(pairs.map { "\($0.1.json)" } == ["\"a\"", "\"1, 2\""])
        #expect(throws: ConfigError("s.yaml:6: proxy.access_log.request_headers.block_list: cannot define both allow list and block list")) {
            try ServerOptions.load(yaml: "proxy:\n  access_log:\n    request_headers:\n      allow_list: [host]\n\n      block_list: [cookie]\n", file: "s.yaml", expandEnvironment: false, environment: [:], flags: [])
        }
        #expect(throws: ConfigError("--proxy.access-log.response-headers.allow-list: cannot define both allow list and block list")) {
            try ServerOptions.load(yaml: nil, file: "", expandEnvironment: false, environment: [:],
                                   flags: [("--proxy.access-log.response-headers.block-list", "a"), ("--proxy.access-log.response-headers.allow-list", "b,c")])
        }
    }

    @Test func test_advertiseAddress_prefersPrivateIPv4_thenAnyNonLoopback_thenGlobalIPv6_andFailsClearly() throws {
        let lo = InterfaceAddress(interface: "lo", host: "127.0.0.1", isLoopback: true, isIPv6: false)
        let public4 = InterfaceAddress(interface: "eth0", host: "192.0.2.2", isLoopback: false, isIPv6: false)
        let private4 = InterfaceAddress(interface: "eth1", host: "10.1.2.3", isLoopback: false, isIPv6: false)
        let linkLocal6 = InterfaceAddress(interface: "eth0", host: "fe80::1", isLoopback: false, isIPv6: true)
        let global6 = InterfaceAddress(interface: "eth0", host: "fd00::2", isLoopback: false, isIPv6: true)
        let wildcard = Address(host: "", port: 8000)
        func derive(_ interfaces: [InterfaceAddress], bound: Address = wildcard, explicit: Address? = nil) throws -> Address {
            try AdvertiseAddress.derive(explicit: explicit, bound: bound, interfaces: interfaces, key: "proxy.advertise_addr")
        }
        #expect(try derive([lo, public4, private4]) == Address(host: "10.1.2.3", port: 8000))
        #expect(try derive([lo, linkLocal6, global6, public4]) == Address(host: "192.0.2.2", port: 8000))
        #expect(try derive([lo, linkLocal6, global6], bound: Address(host: "0.0.0.0", port: 9)) == Address(host: "fd00::2", port: 9))
        #expect(try derive([lo], bound: Address(host: "127.0.0.1", port: 7)) == Address(host: "127.0.0.1", port: 7))
        #expect(try derive([lo], explicit: Address(host: "pico-0.pico", port: 8000)) == Address(host: "pico-0.pico", port: 8000))
        #expect(throws: ConfigError("proxy.advertise_addr: cannot derive an address to advertise from :8000: this host has no non-loopback address; set proxy.advertise_addr")) {
            try derive([lo, linkLocal6])
        }
    }

    @Test func test_httpTimeoutsAndHeadLimit_andLogSubsystems_areSettings() throws {
        let yaml = "proxy:\n  http:\n    write_timeout: 3s\n    read_timeout: 4s\n    max_header_bytes: 2048\nlog:\n  level: warn\n  subsystems: [proxy, upstream]\n"
        let settings = try ServerOptions.load(yaml: yaml, file: "s.yaml", expandEnvironment: false, environment: [:], flags: [])
        #expect(settings.writeTimeout == .seconds(3))
        #expect(settings.readTimeout == .seconds(4))
        #expect(settings.maxHeaderBytes == 2_048)
        #expect(settings.logSubsystems == ["proxy", "upstream"])
        #expect(throws: ConfigError("--proxy.http.max-header-bytes: expected an integer from 1024 to 16777216")) {
            try ServerOptions.load(yaml: nil, file: "", expandEnvironment: false, environment: [:], flags: [("--proxy.http.max-header-bytes", "10")])
        }
        let root = Logger(level: settings.logLevel, subsystem: "server", verboseSubsystems: settings.logSubsystems)
        #expect(root.level == .warn)
        #expect(root.child("proxy.access").level == .debug)
        #expect(root.child("proxy").level == .debug)
        #expect(root.child("proxyish").level == .warn)
        #expect(root.child("proxy.access").child("gossip").level == .warn)
    }

    @Test func test_clusterKeys_reachTheModelsSettings_andTheModelChecksHowTheyFit() throws {
        let yaml = "cluster:\n  join: [pico, 10.0.0.7:7946, \"[fd00::1]:8003\"]\n  join_timeout: 30s\n  abort_if_join_fails: false\n  gossip:\n    bind_addr: :9003\n    interval: 100ms\n    max_packet_size: 1200\n    probe_interval: 2s\n"
        let settings = try ServerOptions.load(yaml: yaml, file: "s.yaml", expandEnvironment: false, environment: [:], flags: [])
        #expect(settings.join == ["pico", "10.0.0.7:7946", "[fd00::1]:8003"])
        #expect(settings.membership.joinTimeout == .seconds(30))
        #expect(settings.membership.abortIfJoinFails == false)
        #expect(settings.gossipBind == Address(host: "", port: 9003))
        #expect(settings.membership.gossipInterval == .milliseconds(100))
        #expect(settings.membership.maxPacketSize == 1_200)
        #expect(settings.membership.probeInterval == .seconds(2))
        #expect(throws: ConfigError("s.yaml:2: cluster.join: a:b:c is not a host, host:port or IP address")) {
            try ServerOptions.load(yaml: "cluster:\n  join: [a:b:c]\n", file: "s.yaml", expandEnvironment: false, environment: [:], flags: [])
        }
        do {
            _ = try ServerOptions.load(yaml: nil, file: "", expandEnvironment: false, environment: [:], flags: [("--cluster.gossip.probe-timeout", "5s")])
            Issue.record("a probe timeout above the probe interval must be refused")
        } catch {
            #expect(error.message.contains("probeTimeout"), "\(error)")
        }
    }

    @Test func test_rebalanceKeys_reachTheModel_withPikosNames_andBadValuesNameTheirKey() throws {
        let yaml = "upstream:\n  rebalance:\n    threshold: 0.5\n    shed_rate: 0.1\n    min_conns: 50\n    hold: 20s\n    cooldown: 1m\n"
        let settings = try ServerOptions.load(yaml: yaml, file: "s.yaml", expandEnvironment: false, environment: [:], flags: [("--upstream.rebalance.threshold", "0")])
        #expect(settings.rebalance.threshold == 0, "the flag wins: Piko's way to turn it off")
        #expect(settings.rebalance.shedRate == 0.1)
        #expect(settings.rebalance.minConns == 50)
        #expect(settings.rebalance.hold == .seconds(20))
        #expect(settings.rebalance.cooldown == .seconds(60))
        let configuration = settings.clusterConfiguration(gossipAddress: Address(host: "10.0.0.1", port: 8003), proxyAddress: Address(host: "10.0.0.1", port: 8000),
                                                          adminAddress: Address(host: "10.0.0.1", port: 8002), randomSeed: 1)
        #expect(configuration.rebalance == settings.rebalance)
        #expect(try ServerOptions.load(yaml: nil, file: "", expandEnvironment: false, environment: [:], flags: []).rebalance == Rebalancer.Settings(), "on by default")
        for (flag, value, message) in [
            ("--upstream.rebalance.threshold", "-1", "expected a number from 0 to 100"), ("--upstream.rebalance.threshold", "nan", "expected a number from 0 to 100"),
            ("--upstream.rebalance.shed-rate", "0", "expected a number above 0 and at most 1"), ("--upstream.rebalance.shed-rate", "2", "expected a number above 0 and at most 1"),
            ("--upstream.rebalance.min-conns", "ten", "expected a whole number from 0 to 1000000"), ("--upstream.rebalance.hold", "2h", "expected a duration from 0s to 1h"),
            ("--upstream.rebalance.cooldown", "-1s", "expected a duration from 0s to 1h"),
        ] {
            #expect(throws: ConfigError("\(flag): \(message)")) {
                try ServerOptions.load(yaml: nil, file: "", expandEnvironment: false, environment: [:], flags: [(flag, value)])
            }
        }
        #expect(throws: ConfigError("s.yaml:3: upstream.rebalance.shed_rate: expected a number above 0 and at most 1")) {
            try ServerOptions.load(yaml: "upstream:\n  rebalance:\n    shed_rate: 5\n", file: "s.yaml", expandEnvironment: false, environment: [:], flags: [])
        }
    }

    @Test func test_seedEntries_getTheGossipPortWhenTheyNameNone() {
        #expect(SeedResolver.parse("pico", defaultPort: 8003) == Address(host: "pico", port: 8003))
        #expect(SeedResolver.parse("pico:7946", defaultPort: 8003) == Address(host: "pico", port: 7946))
        #expect(SeedResolver.parse("10.0.0.1", defaultPort: 8003) == Address(host: "10.0.0.1", port: 8003))
        #expect(SeedResolver.parse("fd00::1", defaultPort: 8003) == Address(host: "fd00::1", port: 8003))
        #expect(SeedResolver.parse("[fd00::1]:9", defaultPort: 8003) == Address(host: "fd00::1", port: 9))
        #expect(SeedResolver.parse("[fd00::1]", defaultPort: 8003) == Address(host: "fd00::1", port: 8003))
        #expect(SeedResolver.parse("a:b:c", defaultPort: 8003) == nil)
        #expect(SeedResolver.parse(" ", defaultPort: 8003) == nil)
        let resolved = try? SeedResolver.resolve(["127.0.0.1", "localhost:9"], defaultPort: 8003).get()
        #expect(resolved?.contains(Address(host: "127.0.0.1", port: 8003)) == true)
        #expect(resolved?.contains(Address(host: "127.0.0.1", port: 9)) == true)
        guard case .failure(let failure) = SeedResolver.resolve(["a:b:c"], defaultPort: 8003) else {
            Issue.record("nothing resolvable must fail")
            return
        }
        #expect(failure.description == "a:b:c: not a host, host:port or IP address")
    }

    @Test func test_adminAndForwardTLS_andTheReloadInterval_areReadAndCheckedTogether() throws {
        let yaml = """
        proxy:
          tls:
            cert: /tls/tls.crt
            key: /tls/tls.key
            client:
              root_cas: /tls/ca.crt
              cert: /tls/tls.crt
              key: /tls/tls.key
              server_name: pico.default.svc.cluster.local.
        admin:
          tls:
            cert: /tls/tls.crt
            key: /tls/tls.key
            client_cas: /tls/ca.crt
        tls:
          reload_interval: 0s
        """
        let settings = try ServerOptions.load(yaml: yaml, file: "s.yaml", expandEnvironment: false, environment: [:], flags: [])
        #expect(settings.forwardTLS.rootCAsPath == "/tls/ca.crt")
        #expect(settings.forwardTLS.serverName == "pico.default.svc.cluster.local")
        #expect(settings.tlsReloadInterval == .zero)
        let admin = try #require(try settings.adminTLS.serverSettings(port: "admin", requireClientCertificate: false))
        #expect(admin.clientCAsPath == "/tls/ca.crt" && !admin.requireClientCertificate)
        func load(_ flags: [(String, String)]) throws(ConfigError) {
            _ = try ServerOptions.load(yaml: nil, file: "", expandEnvironment: false, environment: [:], flags: flags)
        }
        #expect(throws: ConfigError("proxy.tls.client.* is set, but neither proxy.tls nor admin.tls is: nodes dial each other in plain text")) {
            try load([("--proxy.tls.client.root-cas", "/ca.crt")])
        }
        #expect(throws: ConfigError("proxy.tls.client.cert is set without proxy.tls.client.key")) {
            try load([("--admin.tls.cert", "/a"), ("--admin.tls.key", "/b"), ("--proxy.tls.client.cert", "/c")])
        }
        #expect(throws: ConfigError("--proxy.tls.client.server-name: expected a DNS name, got 10.0.0.1")) {
            try load([("--proxy.tls.client.server-name", "10.0.0.1")])
        }
        #expect(throws: ConfigError("admin.tls.client_cas needs admin.tls.cert and admin.tls.key")) {
            try load([("--admin.tls.client-cas", "/ca.crt")])
        }
        #expect(throws: ConfigError("--tls.reload-interval: expected 0 or a duration of at least 100ms")) {
            try load([("--tls.reload-interval", "soon")])
        }
        #expect(throws: ConfigError("--tls.reload-interval: expected 0 or a duration of at least 100ms")) {
            try load([("--tls.reload-interval", "1us")])
        }
        // A port that requires client certificates needs every node to present one.
        #expect(throws: ConfigError("admin.tls.client_cas needs proxy.tls.client.cert and proxy.tls.client.key: other nodes present them when they forward to this port")) {
            try load([("--admin.tls.cert", "/a"), ("--admin.tls.key", "/b"), ("--admin.tls.client-cas", "/ca")])
        }
        #expect(throws: ConfigError("proxy.tls.client_cas needs proxy.tls.client.cert and proxy.tls.client.key: other nodes present them when they forward to this port")) {
            try load([("--proxy.tls.cert", "/a"), ("--proxy.tls.key", "/b"), ("--proxy.tls.client-cas", "/ca")])
        }
        try load([("--proxy.tls.cert", "/a"), ("--proxy.tls.key", "/b"), ("--proxy.tls.client-cas", "/ca"),
                  ("--proxy.tls.client.cert", "/a"), ("--proxy.tls.client.key", "/b")])
    }
}
