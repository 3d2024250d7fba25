@testable import PicoModel
import Testing

/// The yes-or-no invariant checks (`isConsistent(cleanAt:)`, `ClusterNode.checkInvariants(cleanAt:)`)
/// say yes only when the whole check finds nothing, and a write to anything a check reads moves
/// the stamp, so a remembered clean stamp never hides a new problem.
@Suite("Invariants: fast path and stamps")
struct InvariantFastPathTests {
    /// Four alive peers, peer 3 suspect, peer 4 dead: every table the checks read holds something.
    static func busyMembership() -> Membership {
        var membership = Fixture.running(peers: 4)
        _ = membership.receive([.suspect(subject: Fixture.info(3).uid, incarnation: 0, accuser: Fixture.info(2).uid)], from: 2, now: .seconds(1))
        _ = membership.receive([.dead(subject: Fixture.info(4).uid, incarnation: 0, accuser: Fixture.info(2).uid)], from: 2, now: .seconds(1))
        return membership
    }

    /// Ways to break a membership, each a single write to one of its tables.
    static var membershipBreakages: [(String, (inout Membership) -> Void)] {
        [
            ("self listed", { $0.members[$0.me.uid] = $0.members[Fixture.info(2).uid] }),
            ("self tombstoned", { $0.tombstones[$0.me.uid] = $0.tombstones[Fixture.info(4).uid] }),
            ("member keyed wrongly", { $0.members[Fixture.info(2).uid]?.info = Fixture.info(9) }),
            ("live member tombstoned", { $0.tombstones[Fixture.info(2).uid] = $0.tombstones[Fixture.info(4).uid] }),
            ("dead member without tombstone", { $0.tombstones[Fixture.info(4).uid] = nil }),
            ("suspect without suspicion", { $0.suspicions[Fixture.info(3).uid] = nil }),
            ("suspicion of an alive member", { $0.suspicions[Fixture.info(2).uid] = $0.suspicions[Fixture.info(3).uid] }),
            ("live member missing from the index", { $0.addressIndex[Fixture.info(2).gossipAddress] = nil }),
            ("index names another member", { $0.addressIndex[Fixture.info(2).gossipAddress] = Fixture.info(5).uid }),
            ("index names a dead member", { $0.addressIndex[Fixture.info(4).gossipAddress] = Fixture.info(4).uid }),
            ("live member moved", { $0.members[Fixture.info(2).uid]?.info.gossipAddress = Address(host: "10.9.9.9", port: 8003) }),
            ("dead member alive again", { $0.members[Fixture.info(4).uid]?.state = MemberState(.alive, 5) }),
            ("suspect member alive again", { $0.members[Fixture.info(3).uid]?.state = MemberState(.alive, 1) }),
            ("our UID changed to a member's", { $0.me.uid = Fixture.info(2).uid }),
            ("health out of range", { $0.localHealth = $0.settings.awarenessMaxMultiplier }),
            ("violation recorded", { $0.invariantViolations.append("test") }),
        ]
    }

    @Test func test_membershipFastPath_saysNoToEveryBreakage_andTheStampMovesWithEveryTableWrite() {
        let clean = Self.busyMembership()
        #expect(clean.checkInvariants() == [])
        #expect(clean.isConsistent(cleanAt: nil))
        #expect(clean.isConsistent(cleanAt: clean.invariantStamp))
        for (name, breakIt) in Self.membershipBreakages {
            var broken = clean
            breakIt(&broken)
            #expect(broken.checkInvariants() != [], "\(name)")
            #expect(!broken.isConsistent(cleanAt: nil), "\(name)")
            #expect(!broken.isConsistent(cleanAt: clean.invariantStamp), "\(name): a remembered clean stamp must not hide it")
        }
    }

    @Test func test_nodeFastPath_matchesTheWholeCheck_stepByStep() {
        var node = ClusterNodeTests.node()
        var stamp: ClusterNode.InvariantStamp?
        func step(_ input: ClusterInput, at second: Int64) {
            _ = node.handle(input, now: .seconds(second))
            let problems = node.checkInvariants()
            #expect(node.checkInvariants(cleanAt: stamp) == problems)
            #expect(node.checkInvariants(cleanAt: nil) == problems)
            stamp = problems.isEmpty ? node.invariantStamp : nil
        }
        let (holder, other) = (Fixture.info(2), Fixture.info(3))
        let delta = EndpointDelta(owner: holder.uid, base: 0, entries: [.init(endpoint: "e0", count: 1, version: 1)])
        step(ClusterNodeTests.datagram(from: holder, [.alive(info: holder, incarnation: 0, draining: false), .alive(info: other, incarnation: 0, draining: false), .endpointDelta(delta)]), at: 1)
        step(.tunnelOpened(TunnelID(1), endpoint: "svc"), at: 2)
        step(.tunnelOpened(TunnelID(2), endpoint: "svc"), at: 2)
        step(.tunnelOpened(TunnelID(3), endpoint: "e0"), at: 2)
        step(.routedByLoop(.local(TunnelID(1))), at: 3)
        step(.streamFinished(TunnelID(1)), at: 3)
        step(.timerFired(.probe), at: 4)
        step(.timerFired(.gossip), at: 4)
        step(ClusterNodeTests.datagram(from: holder, [.dead(subject: other.uid, incarnation: 0, accuser: holder.uid)]), at: 5)
        step(.tunnelClosed(TunnelID(2)), at: 6)
        step(.shutdownRequested, at: 7)
        #expect(stamp != nil)
    }

    @Test func test_nodeFastPath_saysNoWhenMachinesDisagree() {
        var clean = ClusterNodeTests.node()
        _ = clean.handle(.tunnelOpened(TunnelID(1), endpoint: "svc"), now: .seconds(1))
        let stamp = clean.invariantStamp
        #expect(clean.checkInvariants(cleanAt: stamp) == [])
        let breakages: [(String, (inout ClusterNode) -> Void)] = [
            ("published with no tunnel", { _ = $0.endpoints.setLocalCount(1, for: "other") }),
            ("count differs from tunnels", { _ = $0.endpoints.setLocalCount(2, for: "svc") }),
            ("tunnel not published", { _ = $0.upstreams.add(TunnelID(2), endpoint: "unpublished") }),
            ("entries of an owner that is not live", {
                _ = $0.endpoints.apply(EndpointDelta(owner: Fixture.info(7).uid, base: 0, entries: [.init(endpoint: "x", count: 1, version: 1)]))
            }),
            ("membership broken", { $0.membership.localHealth = -1 }),
        ]
        for (name, breakIt) in breakages {
            var broken = clean
            breakIt(&broken)
            let problems = broken.checkInvariants()
            #expect(problems != [], "\(name)")
            #expect(broken.checkInvariants(cleanAt: stamp) == problems, "\(name)")
            #expect(broken.checkInvariants(cleanAt: nil) == problems, "\(name)")
        }
    }

    @Test func test_tablesAndRegistries_sayYesWhenConsistent_andStampsMoveOnWrites() {
        var table = EndpointTable(localOwner: NodeUID(1))
        var registry = UpstreamRegistry()
        let before = (table.invariantStamp, registry.invariantStamp)
        _ = table.setLocalCount(2, for: "svc")
        _ = table.apply(EndpointDelta(owner: NodeUID(2), base: 0, entries: [.init(endpoint: "svc", count: 1, version: 1), .init(endpoint: "b", count: 0, version: 2)]))
        _ = registry.add(TunnelID(1), endpoint: "svc")
        _ = registry.add(TunnelID(2), endpoint: "svc")
        #expect(table.checkInvariants() == [] && table.isConsistent(cleanAt: nil))
        #expect(registry.checkInvariants() == [] && registry.isConsistent(cleanAt: nil))
        #expect(table.invariantStamp != before.0 && registry.invariantStamp != before.1)
        let counted = registry.invariantStamp
        _ = registry.startStream(on: TunnelID(1))
        #expect(registry.invariantStamp == counted, "in-flight counts are kept apart: the check does not read them")
        _ = registry.markDraining(TunnelID(1))
        #expect(registry.invariantStamp != counted, "a tunnel's own record is read by the check")
        _ = table.removeOwner(NodeUID(2))
        #expect(table.checkInvariants() == [] && table.isConsistent(cleanAt: nil))
    }

    @Test func test_stampsAreNotState_equalTablesCompareEqualWhateverTheirHistory() {
        var once = EndpointTable(localOwner: NodeUID(1))
        var twice = once
        let delta = EndpointDelta(owner: NodeUID(2), base: 0, entries: [.init(endpoint: "svc", count: 1, version: 1)])
        _ = once.apply(delta)
        _ = twice.apply(delta)
        _ = twice.apply(delta)
        #expect(once.invariantStamp != twice.invariantStamp)
        #expect(once == twice)
        #expect(Set([once, twice]).count == 1)
    }
}
