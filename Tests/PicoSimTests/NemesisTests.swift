import PicoModel
@testable import PicoSim
import Testing

/// The nemesis: forged and garbled gossip from outside the cluster, and the bounds checker.
@Suite("Nemesis")
struct NemesisTests {
    /// Three pods and an agent; `nemesis` is the body of an attack from 5 s for `length`.
    static func file(_ nemesis: String, length: String = "3s", duration: String = "15s", pods: Int = 3) -> String {
        """
        apiVersion: pico-sim.dev/v1alpha1
        kind: Scenario
        metadata: {name: t}
        spec:
          duration: \(duration)
          topology:
            pods: \(pods)
            startup: parallel
            agents: [{endpoint: alpha}]
          timeline:
            - at: 5s
              nemesis: \(nemesis)
              for: \(length)
          checks: [invariants-hold]

        """
    }

    static func world(_ nemesis: String, seed: UInt64? = nil) throws -> SimWorld {
        let scenario = try ScenarioDecoder.decode(Self.file(nemesis), file: "t.yaml", seed: seed)
        return ScenarioRunner.runWorld(scenario).0
    }

    @Test func test_badNemesisEntries_nameTheFileLineAndKey() {
        #expect(ScenarioTests.error(Self.file("{rate: 200}")) == "no error")
        #expect(ScenarioTests.error(Self.file("{rate: 0}")) == "bad.yaml:12:23: spec.timeline[0].nemesis.rate: must be from 0.1 to 10000 datagrams per second, got 0")
        #expect(ScenarioTests.error(Self.file("{rate: 1e9}")).contains("nemesis.rate: must be from 0.1 to 10000 datagrams per second, got 1e9"))
        #expect(ScenarioTests.error(Self.file("{kinds: [garbage]}")).contains("spec.timeline[0].nemesis.rate: is required: datagrams per second"))
        #expect(ScenarioTests.error(Self.file("{rate: 5, kinds: [garbage, bogus]}"))
            == "bad.yaml:12:43: spec.timeline[0].nemesis.kinds[1]: must be one of garbage, extreme, replay, impersonate, forged-members, forged-endpoints, forged-exchange, got 'bogus'")
        #expect(ScenarioTests.error(Self.file("{rate: 5, kinds: []}")).contains("nemesis.kinds: must name at least one kind"))
        #expect(ScenarioTests.error(Self.file("{rate: 5, pods: [3]}")).contains("nemesis.pods[0]: must be a pod ordinal from 0 to 2"))
        #expect(ScenarioTests.error(Self.file("{rate: 5, identities: 0}")).contains("nemesis.identities: must be in 1...100000, got 0"))
        #expect(ScenarioTests.error(Self.file("{rate: 5, speed: 3}")).contains("unknown key 'spec.timeline[0].nemesis.speed'"))
        let withoutEnd = Self.file("{rate: 5}").replacingOccurrences(of: "      for: 3s\n", with: "")
        #expect(ScenarioTests.error(withoutEnd).contains("spec.timeline[0].for: is required for nemesis"))
        #expect(ScenarioTests.error(Self.file("{rate: 5}", length: "1h")).contains("for: ends after the end of the run"))
    }

    @Test func test_nemesisEntry_roundTripsThroughTheWriter() throws {
        let scenario = try ScenarioDecoder.decode(Self.file("{rate: 12.5, kinds: [replay, garbage], pods: [2, 0], identities: 7}"), file: "t.yaml")
        let again = try ScenarioDecoder.decode(ScenarioWriter.write(scenario), file: "t.yaml")
        #expect(again.timeline.map(\.action) == scenario.timeline.map(\.action))
        #expect(scenario.timeline.first?.action == .nemesis(NemesisAttack(rate: 12.5, kinds: [.garbage, .replay], pods: [0, 2], identities: 7)))
    }

    @Test func test_sameSeed_sameTraceHash_otherSeed_otherHash() throws {
        let scenario = try ScenarioDecoder.decode(Self.file("{rate: 300}"), file: "t.yaml")
        let first = ScenarioRunner.run(scenario).traceHash
        #expect(ScenarioRunner.run(scenario).traceHash == first)
        var other = scenario
        other.seed += 1
        #expect(ScenarioRunner.run(other).traceHash != first)
    }

    /// Events of every pod that satisfy `test`.
    static func count(_ world: SimWorld, _ test: (ClusterEvent) -> Bool) -> Int {
        world.events.filter { test($0.2) }.count
    }

    @Test(arguments: NemesisAttack.Kind.allCases)
    func test_eachKind_reachesThePods(kind: NemesisAttack.Kind) throws {
        let world = try Self.world("{rate: 200, kinds: [\(kind.rawValue)]}")
        #expect(world.nemesis.sent(kind) >= 500, "200 per second for 3 s")
        #expect(world.nemesis.sent.reduce(0, +) == world.nemesis.sent(kind))
        #expect(world.nemesis.delivered == world.nemesis.sent(kind), "a clean network loses nothing")
        #expect(world.violations.isEmpty, "\(world.violations.prefix(3))")
        let attacker = NemesisAttack.attackerAddress
        let malformed = Self.count(world) { if case .malformedMessage(let from, _) = $0 { from == attacker } else { false } }
        let ghosts = Self.count(world) { if case .membership(.memberJoined(let info)) = $0 { info.name.hasPrefix("ghost-") } else { false } }
        switch kind {
        case .garbage:
            #expect(malformed >= 300, "most garbage is refused as malformed")
        case .extreme:
            let forged = Self.count(world) { if case .membership(.forgedClaimDropped) = $0 { true } else { false } }
            #expect(forged > 0, "claims about the target above its incarnation are dropped")
        case .replay:
            #expect(malformed == 0, "replays are well-formed datagrams")
            let quiet = try Self.world("{rate: 200, kinds: [replay], pods: [0]}", seed: 2)
            #expect(quiet.nemesis.sent(.replay) > 0)
        case .impersonate:
            let accused = Self.count(world) {
                if case .membership(.memberStatusChanged(_, _, _, let to)) = $0 { to.status != .alive } else { false }
            }
            #expect(accused > 0, "claims in real members' names move real members' status")
        case .forgedMembers:
            #expect(ghosts > 0, "made-up members are admitted (gossip is not authenticated yet)")
        case .forgedEndpoints:
            let forged = Self.count(world) { if case .endpointChanged(let endpoint, _, _) = $0 { endpoint.hasPrefix("forged-") } else { false } }
            #expect(forged > 0, "forged endpoint entries are taken")
        case .forgedExchange:
            #expect(malformed > 0, "garbage state exchanges are refused")
            #expect(ghosts > 0, "forged full states add made-up members")
        }
    }

    @Test func test_replay_sendsCapturedDatagrams_andTheRingIsBounded() throws {
        let scenario = try ScenarioDecoder.decode(Self.file("{rate: 100, kinds: [replay]}", duration: "60s"), file: "t.yaml")
        let world = ScenarioRunner.runWorld(scenario).0
        #expect(world.nemesis.sniffed.count == NemesisAttack.sniffedLimit, "a minute of gossip fills the ring, and no more")
        let sent = world.datagramsSent.reduce(0, +)
        #expect(sent > NemesisAttack.sniffedLimit)
    }

    @Test func test_withoutANemesis_nothingIsCaptured_andTheHashIsUnchanged() throws {
        let plain = try ScenarioDecoder.decode(ScenarioTests.minimal + "  checks: [invariants-hold]\n", file: "t.yaml")
        let (world, _) = ScenarioRunner.runWorld(plain)
        #expect(world.nemesis.sniffed.isEmpty && world.nemesis.windows.isEmpty)
    }

    @Test func test_boundsChecker_reportsATableAboveItsBound_oncePerPodAndTable() {
        var world = SimWorld(podCount: 1, seed: 1, settings: SimWorld.Settings(node: WorldTests.world(pods: 1).settings.node))
        world.start(0)
        let within = [TableSize(name: "membership.members", size: 2, bound: 2), TableSize(name: "t", size: 9, bound: nil)]
        world.checkTableBounds(within, pod: 0)
        #expect(world.violations.isEmpty)
        let above = [TableSize(name: "membership.members", size: 3, bound: 2), TableSize(name: "t", size: 9, bound: nil)]
        world.checkTableBounds(above, pod: 0)
        world.checkTableBounds(above, pod: 0)
        let reports = world.violations.filter { $0.2.hasPrefix("table membership.members holds") }
        #expect(reports.count == 1, "each pod and table is reported once: \(world.violations.prefix(3))")
        #expect(reports.first?.2 == "table membership.members holds 3 items, above its bound of 2")
        #expect(reports.first?.1 == "pico-0")
        #expect(world.tablePeaks.first { $0.name == "membership.members" }?.size == 3)
        #expect(!Checker.invariantsHold.check(world).passed)
    }

    @Test func test_madeUpMembersThatDie_neverPushTheMemberTablePastItsBound() {
        // Before: only live members were capped on admission, and made-up members that died
        // lingered for gossipToTheDeadTime while new ones came in (the table passed its bound).
        var settings = SimWorld.Settings(node: WorldTests.world(pods: 1).settings.node)
        settings.node.membership.maxMembers = 2
        var world = SimWorld(podCount: 1, seed: 1, settings: settings)
        world.start(0)
        world.startNemesis(NemesisAttack(rate: 100, kinds: [.forgedMembers], identities: 200), id: 0)
        world.run(until: .seconds(40))
        let peak = world.tablePeaks.first { $0.name == "membership.members" }
        #expect((peak?.size ?? 0) > 2 && peak?.bound == 4, "departed members fill their own share")
        #expect(!world.violations.contains { $0.2.hasPrefix("table ") }, "\(world.violations.prefix(3))")
    }

    @Test func test_tableSize_exceedsOnlyAStatedBound() {
        #expect(TableSize(name: "t", size: 3, bound: 2).exceedsBound)
        #expect(!TableSize(name: "t", size: 2, bound: 2).exceedsBound)
        #expect(!TableSize(name: "t", size: 1_000_000, bound: nil).exceedsBound)
    }

    @Test func test_fuzzWithNemesis_addsOneAttack_andLeavesTheRestOfTheScenarioAlone() throws {
        for seed: UInt64 in 1...20 {
            let plain = ScenarioGenerator.generate(seed: seed)
            let attacked = ScenarioGenerator.generate(seed: seed, nemesis: true)
            let attacks = attacked.timeline.filter { if case .nemesis = $0.action { true } else { false } }
            #expect(attacks.count == 1)
            let attack = try #require(attacks.first)
            #expect(attack.at >= .seconds(5) && attack.at + (attack.duration ?? .zero) <= (attacked.timeline.last?.at ?? .zero))
            if case .nemesis(let body) = attack.action { #expect(Set(body.kinds).isSubset(of: ScenarioGenerator.nemesisKinds)) }
            let others = attacked.timeline.filter { if case .nemesis = $0.action { false } else { true } }
            #expect(others.map(\.action) == plain.timeline.map(\.action))
            #expect(!attacked.checks.contains { $0.name == "no-false-deaths" || $0.name == "route-only-to-live-owners" })
            _ = try ScenarioDecoder.decode(ScenarioWriter.write(attacked), file: "fuzz.yaml")
        }
    }
}
