import Foundation
import PicoModel
@testable import PicoRuntime
import Testing

@Suite("Configuration reference")
struct ConfigurationReferenceTests {
    static let documentPath = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("docs/configuration.md").path

    @Test func test_docsConfigurationMd_isWhatTheCodeGenerates() throws {
        let document = try String(contentsOfFile: Self.documentPath, encoding: .utf8)
        #expect(document == ConfigurationReference.markdown(),
                "docs/configuration.md differs from the settings tables: run `swift run pico help configuration > docs/configuration.md`")
    }

    @Test func test_everyServerSetting_hasARow_withItsFlagDefaultAndHelp() {
        let document = ConfigurationReference.markdown()
        for option in ServerOptions.all {
            #expect(document.contains("| `\(option.key)` | `\(option.flag)` | \(option.defaultText) |"), "\(option.key)")
        }
        for flag in AgentOptions.flags {
            #expect(document.contains("| `\(flag.name)` | \(flag.defaultText) |"), "\(flag.name)")
        }
    }

    @Test func test_theAgentsExampleFile_isAValidConfig_withEveryKeySet() throws {
        let settings = try AgentOptions.load(yaml: AgentOptions.exampleFile, file: "example.yaml", expandEnvironment: false,
                                             environment: [:], flags: [], listener: nil)
        #expect(settings.connect == Address(host: "pico", port: 8001))
        #expect(settings.connectTLS == TLSClientSettings(rootCAsPath: "/etc/pico/ca.crt", certificatePath: "/etc/pico/agent.crt", keyPath: "/etc/pico/agent.key"))
        #expect(settings.connectTimeout == .seconds(30))
        #expect(settings.listeners.map(\.endpoint) == ["my-app", "my-db"])
        #expect(settings.listeners.map(\.serviceProtocol) == [.http, .tcp])
        #expect(settings.listeners.first?.timeout == .seconds(10))
        #expect(settings.gracePeriod == .seconds(60))
        #expect(settings.eventLoops == 2)
    }

    @Test func test_pipesInHelpText_doNotBreakTheTable() {
        #expect(ConfigurationReference.cell("a | b") == "a \\| b")
    }
}
