import Foundation
import PicoModel
@testable import PicoSim
import Testing

/// Bad scenario input answered as clearly as the YAML reader answers: every value from a file is
/// hostile, refused with its file, line, key and the bound it broke.
@Suite("Scenario input")
struct ScenarioInputTests {
    /// A valid file with one agent serving `alpha` and one client calling it.
    static let served = """
        apiVersion: pico-sim.dev/v1alpha1
        kind: Scenario
        metadata: {name: t}
        spec:
          duration: 1m
          topology:
            pods: 3
            agents: [{endpoint: alpha}]
            clients: [{rate: 200, endpoints: [alpha]}]

        """

    static func error(_ text: String) -> String { ScenarioTests.error(text) }

    static func replacing(_ old: String, with new: String) -> String {
        let text = Self.served.replacingOccurrences(of: old, with: new)
        precondition(text != Self.served, "the fixture has no '\(old)'")
        return text
    }

    @Test func test_outOfRangeValues_sayMustBe_notIsRequired() {
        #expect(Self.error(Self.served) == "no error")
        #expect(Self.error(Self.replacing("rate: 200", with: "rate: -200"))
            == "bad.yaml:9:22: spec.topology.clients[0].rate: must be from 0.001 to 100000 requests per second, got -200")
        #expect(Self.error(Self.replacing("duration: 1m", with: "duration: 0s")) == "bad.yaml:5:13: spec.duration: must be from 1ns to 24h, got 0s")
        #expect(Self.error(Self.replacing("duration: 1m", with: "duration: 25h")) == "bad.yaml:5:13: spec.duration: must be from 1ns to 24h, got 25h")
        #expect(Self.error(Self.replacing("  duration: 1m\n", with: "")).contains("spec.duration: is required: how long the run lasts"))
        #expect(Self.error(Self.replacing("clients: [{rate: 200, ", with: "clients: [{")).contains("spec.topology.clients[0].rate: is required: requests per second"))
    }

    @Test func test_tenants_areRead_checked_andWrittenBack() throws {
        #expect(Self.error(Self.replacing("agents: [{endpoint: alpha}]", with: "agents: [{endpoint: alpha, tenant: 'a b'}]"))
            == "bad.yaml:8:40: spec.topology.agents[0].tenant: must be 1 to 64 letters, digits, '.', '_' or '-'")
        let text = Self.replacing("agents: [{endpoint: alpha}]", with: "agents: [{endpoint: alpha, tenant: blue, count: 2}]")
            + "  timeline:\n    - {at: 10s, add-agents: {endpoint: alpha, tenant: red, count: 3}}\n"
        let scenario = try ScenarioDecoder.decode(text, file: "t.yaml")
        #expect(scenario.agents.map(\.name) == ["blue-alpha-0", "blue-alpha-1"])
        #expect(scenario.agents.allSatisfy { $0.tenant == "blue" })
        guard case .addAgents(let added) = scenario.timeline.first?.action else {
            Issue.record("add-agents was not read")
            return
        }
        #expect(added.map(\.tenant) == ["red", "red", "red"])
        let again = try ScenarioDecoder.decode(ScenarioWriter.write(scenario), file: "again.yaml")
        #expect(again.agents == scenario.agents)
        #expect(again.timeline.map(\.action) == scenario.timeline.map(\.action))
    }

    @Test func test_pikoAgents_areRead_checked_andWrittenBack() throws {
        #expect(Self.error(Self.replacing("agents: [{endpoint: alpha}]", with: "agents: [{endpoint: alpha, kind: go}]"))
            == "bad.yaml:8:38: spec.topology.agents[0].kind: must be pico or piko, got 'go'")
        let text = Self.replacing("agents: [{endpoint: alpha}]", with: "agents: [{endpoint: alpha, count: 2}, {endpoint: alpha, kind: piko, tenant: blue}]")
            + "  timeline:\n    - {at: 10s, add-agents: {endpoint: alpha, kind: piko, count: 2}}\n"
        let scenario = try ScenarioDecoder.decode(text, file: "t.yaml")
        #expect(scenario.agents.map(\.name) == ["alpha-0", "alpha-1", "blue-piko-alpha-0"])
        #expect(scenario.agents.map(\.kind) == [.pico, .pico, .piko])
        guard case .addAgents(let added) = scenario.timeline.first?.action else {
            Issue.record("add-agents was not read")
            return
        }
        #expect(added.map(\.kind) == [.piko, .piko])
        let again = try ScenarioDecoder.decode(ScenarioWriter.write(scenario), file: "again.yaml")
        #expect(again.agents == scenario.agents)
        #expect(again.timeline.map(\.action) == scenario.timeline.map(\.action))
    }

    @Test func test_tcpClients_areRead_checked_andWrittenBack() throws {
        let text = Self.replacing("clients: [{rate: 200, endpoints: [alpha]}]", with: "clients: [{rate: 2, endpoints: [alpha], tcp: {minLifetime: 1s, maxLifetime: 90s}}]")
        let scenario = try ScenarioDecoder.decode(text, file: "t.yaml")
        #expect(scenario.clients.first?.streams == StreamLifetimes(shortest: .seconds(1), longest: .seconds(90)))
        let again = try ScenarioDecoder.decode(ScenarioWriter.write(scenario), file: "again.yaml")
        #expect(again.clients == scenario.clients)
        #expect(Self.error(Self.replacing("clients: [{rate: 200, endpoints: [alpha]}]", with: "clients: [{rate: 2, endpoints: [alpha], tcp: {minLifetime: 9s, maxLifetime: 2s}}]"))
            == "bad.yaml:9:81: spec.topology.clients[0].tcp.maxLifetime: must be at least minLifetime (9s), got 2s")
        #expect(Self.error(Self.replacing("clients: [{rate: 200, endpoints: [alpha]}]", with: "clients: [{rate: 2, endpoints: [alpha], tcp: {maxLifetime: 2s}}]"))
            .hasSuffix("spec.topology.clients[0].tcp.minLifetime: is required: how long the shortest connection stays open once its 101 arrived"))
        #expect(Self.error(Self.replacing("clients: [{rate: 200, endpoints: [alpha]}]", with: "clients: [{rate: 2, endpoints: [alpha], tcp: {minLifetime: 1s, life: 2s}}]"))
            .contains("spec.topology.clients[0].tcp.life"))
    }

    @Test func test_hugeAndTinyNumbers_areRefusedWithABound_neverTrap() {
        // 1/rate seconds between requests must fit in Int64 nanoseconds: 1e-300 trapped on main.
        #expect(Self.error(Self.replacing("rate: 200", with: "rate: 1e-300")).contains("rate: must be from 0.001 to 100000 requests per second, got 1e-300"))
        #expect(Self.error(Self.replacing("rate: 200", with: "rate: 1e30")).contains("rate: must be from 0.001 to 100000 requests per second, got 1e30"))
        #expect(Self.error(Self.replacing("pods: 3", with: "pods: 100000000")).contains("spec.topology.pods: must be in 1...1000, got 100000000"))
        #expect(Self.error(Self.replacing("{endpoint: alpha}", with: "{endpoint: alpha, count: -1}")).contains("count: must be in 1...1000, got -1"))
        let timeout = Self.replacing("endpoints: [alpha]}", with: "endpoints: [alpha], timeout: 2562047h}")
        #expect(Self.error(timeout).contains("spec.topology.clients[0].timeout: must be from 1ns to 24h, got 2562047h"))
        let service = Self.replacing("endpoints: [alpha]}", with: "endpoints: [alpha], serviceTime: 100000h}")
        #expect(Self.error(service).contains("spec.topology.clients[0].serviceTime: must be from 0s to 24h, got 100000h"))
        #expect(Self.error(Self.served + "  network: {latency: 1000000h}\n").contains("spec.network.latency: must be from 0s to 24h, got 1000000h"))
        #expect(Self.error(Self.served + "  kubernetes: {dnsLag: 1000000h}\n").contains("spec.kubernetes.dnsLag: must be from 0s to 24h"))
        #expect(Self.error(Self.served + "  kubernetes: {terminationGracePeriod: 5s}\n").contains("spec.kubernetes.terminationGracePeriod: must be from 10s to 24h, got 5s"))
        #expect(Self.error(Self.served + "  timeline:\n    - {at: 1s, rollout: {minReadySeconds: 1000000h}}\n").contains("minReadySeconds: must be from 0s to 24h"))
        #expect(Self.error(Self.served + "  checks: [{name: membership-converged, within: 1000000h}]\n").contains("spec.checks[0].within: must be from 0s to 24h"))
        #expect(Self.error(Self.served + "  timeline:\n    - {at: -5s, heal: {}}\n").contains("spec.timeline[0].at: must be from 0s to 24h, got -5s"))
    }

    @Test func test_metadataName_isSafeInAFileName() {
        // --trace and --html with several files write PATH.<name>: a name must not climb out of it.
        #expect(Self.error(Self.replacing("{name: t}", with: "{name: ../../etc/x}"))
            == "bad.yaml:3:18: metadata.name: must be 1 to 253 letters, digits, '-', '_' or '.', not starting with '.' (it names trace and report files), got '../../etc/x'")
        #expect(Self.error(Self.replacing("{name: t}", with: "{name: ''}")).contains("metadata.name: must be 1 to 253"))
        #expect(Self.error(Self.replacing("{name: t}", with: "{name: fuzz-11883_no.failed}")) == "no error")
    }

    @Test func test_totals_areBounded() {
        let agents = (0..<11).map { "{endpoint: e\($0), count: 1000}" }.joined(separator: ", ")
        #expect(Self.error(Self.replacing("agents: [{endpoint: alpha}]", with: "agents: [\(agents), {endpoint: alpha}]"))
            .contains("spec.topology.agents[10].count: brings the agents to 11000; all entries together must be at most 10000"))
        let clients = "clients: [{rate: 60000, endpoints: [alpha]}, {rate: 60000, endpoints: [alpha]}]"
        #expect(Self.error(Self.replacing("clients: [{rate: 200, endpoints: [alpha]}]", with: clients))
            .contains("spec.topology.clients[1].rate: brings the clients to 120000 requests per second; all clients together must send at most 100000"))
    }

    @Test func test_clientCallingAnEndpointNoAgentServes_isRefusedWhenTheFileIsRead() {
        #expect(Self.error(Self.replacing("endpoints: [alpha]", with: "endpoints: [alpha, beta]"))
            == "bad.yaml:9:46: spec.topology.clients[0].endpoints[1]: no agent serves endpoint 'beta' (agents serve alpha); every request to it would fail with 502")
        #expect(Self.error(Self.replacing("    agents: [{endpoint: alpha}]\n", with: ""))
            .contains("endpoints[0]: no agent serves endpoint 'alpha' (no agent is declared under spec.topology.agents)"))
    }

    @Test func test_fileThatIsNotUTF8_saysSo_withLineAndColumn() throws {
        let bytes = Array("apiVersion: x\nmetadata: {name: caf".utf8) + [0xE9] + Array("}\n".utf8)
        #expect(throws: YAMLError(file: "latin1.yaml", line: 2, column: 21, message: "the file is not UTF-8 text (byte 0xE9 here); save it as UTF-8")) {
            _ = try ScenarioSource.text(bytes, file: "latin1.yaml")
        }
        let text = "metadata: {name: café}\n"
        #expect(try ScenarioSource.text(Array(text.utf8), file: "utf8.yaml") == text)
        #expect(throws: YAMLError.self) { _ = try ScenarioSource.text([UInt8](repeating: 0x20, count: YAMLReader.maxBytes + 1), file: "big.yaml") }
    }

    @Test func test_reportTime_isOneFormat_secondsWithMilliseconds() {
        #expect(ReportTime.text(Instant(nanoseconds: 3_300_000_000)) == "3.300s")
        #expect(ReportTime.text(.milliseconds(512)) == "0.512s")
        #expect(ReportTime.text(.seconds(120)) == "120.000s")
        #expect(ReportTime.text(seconds: 5.1004) == "5.100s")
        #expect(ReportTime.text(Instant(nanoseconds: 999_600_000)) == "1.000s")
        #expect(ReportTime.text(Instant(nanoseconds: Int64.min)).hasPrefix("-9223372036.855"))
        #expect(ReportTime.text(seconds: .infinity) == "?")
    }

    @Test func test_summary_explainsPending_andGivesTimesInSeconds() throws {
        let path = ScenarioTests.root.appendingPathComponent("scenarios/node-crash.yaml").path
        let outcome = try PicoSimBinary.outcome([path, "--quiet"])
        #expect(outcome.status == 0)
        #expect(outcome.text.contains("pending (still waiting for an answer when the run ended; not a failure)"))
        #expect(outcome.text.contains("traffic started: at 3.500s"))
        #expect(outcome.text.contains("5 pods, 120.000s simulated"))
        #expect(outcome.text.contains("crash detection: first node 3.201s"))
        #expect(!outcome.text.contains("t+"), "no Instant description (t+3300.0ms) in the summary")
    }
}
