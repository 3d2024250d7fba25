@testable import PicoModel
import Testing

@Suite("Endpoint table")
struct EndpointTableTests {
    let local = NodeUID(1)
    let remote = NodeUID(2)

    func delta(base: UInt64, _ entries: [(String, UInt32, UInt64)]) -> EndpointDelta {
        EndpointDelta(owner: self.remote, base: base, entries: entries.map { .init(endpoint: $0.0, count: $0.1, version: $0.2) })
    }

    @Test func test_setLocalCount_versionsEachChange_andSkipsNoOps() {
        var table = EndpointTable(localOwner: self.local)
        let first = table.setLocalCount(2, for: "svc")
        #expect(first == EndpointDelta(owner: self.local, base: 0, entries: [.init(endpoint: "svc", count: 2, version: 1)]))
        #expect(table.setLocalCount(2, for: "svc") == nil)
        let removed = table.setLocalCount(0, for: "svc")
        #expect(removed?.entries == [.init(endpoint: "svc", count: 0, version: 2)])
        #expect(table.localEntries.isEmpty)
        #expect(table.owners(of: "svc").isEmpty)
        #expect(table.checkInvariants() == [])
    }

    @Test func test_entriesAcrossOwners_stayWithinTheTableBound_whateverDeltasAndSnapshotsClaim() {
        var table = EndpointTable(localOwner: self.local, maxEntries: 10)
        _ = table.setLocalCount(1, for: "mine")
        for owner in 2...5 {
            let entries = (1...6).map { EndpointDelta.Entry(endpoint: "e\($0)", count: 1, version: UInt64($0)) }
            _ = table.apply(EndpointDelta(owner: NodeUID(UInt64(owner)), base: 0, entries: entries))
            #expect(table.checkInvariants() == [])
        }
        #expect(table.entryCount == 10, "9 remote entries fit beside our own; the rest are ignored")
        // A snapshot cannot grow an owner past the bound either, but updates of known entries apply.
        let snapshot = StateExchange.EndpointSnapshot(owner: NodeUID(5), version: 40, entries: (1...30).map { .init(endpoint: "s\($0)", count: 2, version: UInt64($0)) })
        _ = table.apply(snapshot)
        #expect(table.entryCount <= 10 && table.checkInvariants() == [])
        _ = table.apply(EndpointDelta(owner: NodeUID(2), base: 6, entries: [.init(endpoint: "e1", count: 7, version: 7)]))
        #expect(table.owners(of: "e1").contains { $0.owner == NodeUID(2) && $0.count == 7 })
        // Room frees up when an owner goes.
        _ = table.removeOwner(NodeUID(2))
        _ = table.apply(EndpointDelta(owner: NodeUID(3), base: 6, entries: [.init(endpoint: "late", count: 1, version: 7)]))
        #expect(table.owners(of: "late").count == 1 && table.checkInvariants() == [])
    }

    @Test func test_applyingTheSameDeltaTwice_isHarmless() {
        var table = EndpointTable(localOwner: self.local)
        let update = self.delta(base: 0, [("svc", 3, 1)])
        #expect(table.apply(update).count == 1)
        #expect(table.apply(update).isEmpty)
        #expect(table.owners(of: "svc").map(\.count) == [3])
        #expect(table.owners[self.remote]?.knownVersion == 1)
    }

    @Test func test_outOfOrderDeltas_endWithTheNewestValue_andNoGapIsClaimed() {
        var table = EndpointTable(localOwner: self.local)
        let v1 = self.delta(base: 0, [("svc", 1, 1)])
        let v2 = self.delta(base: 1, [("svc", 2, 2)])
        let v3 = self.delta(base: 2, [("svc", 0, 3)])
        _ = table.apply(v3)
        #expect(table.owners[self.remote]?.knownVersion == 0, "v1 and v2 are missing: no contiguous knowledge yet")
        _ = table.apply(v1)
        #expect(table.owners(of: "svc").isEmpty, "the removal at v3 wins over the older add")
        _ = table.apply(v2)
        #expect(table.owners(of: "svc").isEmpty)
        #expect(table.owners[self.remote]?.knownVersion == 2)
        #expect(table.checkInvariants() == [])
    }

    @Test func test_snapshot_replacesOlderEntries_butKeepsNewerOnes() {
        var table = EndpointTable(localOwner: self.local)
        _ = table.apply(self.delta(base: 0, [("old", 1, 1)]))
        _ = table.apply(self.delta(base: 9, [("newer", 4, 10)]))
        let changes = table.apply(StateExchange.EndpointSnapshot(owner: self.remote, version: 8, entries: [.init(endpoint: "kept", count: 2, version: 7)]))
        #expect(Set(changes.map(\.endpoint)) == ["old", "kept"])
        #expect(table.endpoints == ["kept", "newer"])
        #expect(table.owners[self.remote]?.knownVersion == 8)
        #expect(table.apply(StateExchange.EndpointSnapshot(owner: self.remote, version: 8, entries: [])).isEmpty, "not newer: ignored")
        #expect(table.checkInvariants() == [])
    }

    @Test func test_theOwnersOwnSnapshot_replacesAForgedHigherVersion_whileAnyoneElsesIsIgnored() {
        // hostile-gossip.yaml: a forged delta in the owner's name at a version above its real
        // one hid the owner's real entries from this node for the rest of the run.
        var table = EndpointTable(localOwner: self.local)
        _ = table.apply(self.delta(base: 0, [("alpha", 2, 1)]))
        _ = table.apply(self.delta(base: 1, [("alpha", 0, 1_000), ("beta", 1, 1_001)]))
        #expect(table.endpoints == ["beta"] && table.owners[self.remote]?.knownVersion == 1_001)
        let real = StateExchange.EndpointSnapshot(owner: self.remote, version: 3, entries: [.init(endpoint: "alpha", count: 2, version: 1), .init(endpoint: "gamma", count: 1, version: 3)])
        #expect(table.apply(real).isEmpty, "from anyone else, a lower version is old news")
        let (changes, wentBack) = table.applyFromOwner(real)
        #expect(wentBack)
        #expect(Set(changes.map(\.endpoint)) == ["alpha", "beta", "gamma"])
        #expect(table.endpoints == ["alpha", "gamma"], "the forged entry goes, the real ones come back")
        #expect(table.owners[self.remote]?.knownVersion == 3)
        #expect(table.checkInvariants() == [])
        // Its later deltas apply again, and the same word from the owner changes nothing.
        _ = table.apply(self.delta(base: 3, [("gamma", 0, 4)]))
        #expect(table.endpoints == ["alpha"])
        #expect(table.checkInvariants() == [])
        let again = table.applyFromOwner(StateExchange.EndpointSnapshot(owner: self.remote, version: 4, entries: [.init(endpoint: "alpha", count: 2, version: 1)]))
        #expect(again.changes.isEmpty && !again.wentBack)
        // A change of the owner's that overtook its reply (a gap: version 6 after 4) is dropped
        // with it, and reported so the caller asks again.
        _ = table.apply(self.delta(base: 5, [("delta", 1, 6)]))
        #expect(table.endpoints == ["alpha", "delta"])
        let overtaken = table.applyFromOwner(StateExchange.EndpointSnapshot(owner: self.remote, version: 5, entries: [.init(endpoint: "alpha", count: 2, version: 1)]))
        #expect(overtaken.wentBack && table.endpoints == ["alpha"])
        #expect(table.checkInvariants() == [])
    }

    @Test func test_removedOwner_entriesDisappear_andLaterUpdatesAreIgnored() {
        var table = EndpointTable(localOwner: self.local)
        _ = table.apply(self.delta(base: 0, [("svc", 1, 1), ("api", 2, 2)]))
        let changes = table.removeOwner(self.remote)
        #expect(changes.map(\.count) == [0, 0])
        #expect(table.endpoints.isEmpty)
        #expect(table.apply(self.delta(base: 2, [("svc", 5, 3)])).isEmpty)
        #expect(table.apply(StateExchange.EndpointSnapshot(owner: self.remote, version: 9, entries: [.init(endpoint: "svc", count: 1, version: 9)])).isEmpty)
        #expect(table.endpoints.isEmpty)
    }

    @Test func test_changeLocalOwner_republishesUnderTheNewUID() {
        var table = EndpointTable(localOwner: self.local)
        _ = table.setLocalCount(2, for: "a")
        _ = table.setLocalCount(1, for: "b")
        let (changes, deltas) = table.changeLocalOwner(to: NodeUID(3))
        #expect(table.owners(of: "a").map(\.owner) == [NodeUID(3)])
        #expect(deltas.map(\.base) == [0, 1])
        #expect(changes.filter { $0.owner == self.local }.allSatisfy { $0.count == 0 })
        #expect(table.checkInvariants() == [])
    }

    @Test func test_snapshots_listEveryOwnerWithLiveEntriesSortedByVersion() {
        var table = EndpointTable(localOwner: self.local)
        _ = table.setLocalCount(1, for: "z")
        _ = table.setLocalCount(1, for: "a")
        _ = table.apply(self.delta(base: 0, [("r", 1, 1)]))
        let snapshots = table.snapshots()
        #expect(snapshots.map(\.owner) == [self.local, self.remote])
        #expect(snapshots[0].entries.map(\.endpoint) == ["z", "a"])
        #expect(snapshots[0].version == 2)
    }
}

@Suite("Upstream registry")
struct UpstreamRegistryTests {
    @Test func test_addAndRemove_areIdempotent() {
        var registry = UpstreamRegistry()
        #expect(registry.add(TunnelID(1), endpoint: "svc") == .added(count: 1))
        #expect(registry.add(TunnelID(1), endpoint: "svc") == .alreadyPresent)
        #expect(registry.add(TunnelID(2), endpoint: "svc") == .added(count: 2))
        guard case .removed(_, let count) = registry.remove(TunnelID(1)) else {
            Issue.record("expected a removal")
            return
        }
        #expect(count == 1)
        #expect(registry.remove(TunnelID(1)) == .notPresent, "a second removal does not decrement again (Piko's bug)")
        #expect(registry.count(for: "svc") == 1)
        #expect(registry.checkInvariants() == [])
    }

    @Test func test_choose_roundRobinsOverNonDrainingTunnels_andFallsBackToDraining() {
        var registry = UpstreamRegistry()
        for id in 1...3 { _ = registry.add(TunnelID(UInt64(id)), endpoint: "svc") }
        let picks = (0..<6).compactMap { _ in registry.choose(for: "svc", allowDraining: false) }
        #expect(picks == [1, 2, 3, 1, 2, 3].map { TunnelID(UInt64($0)) })
        _ = registry.markDraining(TunnelID(2))
        let after = (0..<4).compactMap { _ in registry.choose(for: "svc", allowDraining: false) }
        #expect(!after.contains(TunnelID(2)))
        _ = registry.markDraining(TunnelID(1))
        _ = registry.markDraining(TunnelID(3))
        #expect(registry.choose(for: "svc", allowDraining: false) == nil)
        #expect(registry.choose(for: "svc", allowDraining: true) != nil)
        #expect(registry.choose(for: "other", allowDraining: true) == nil)
    }

    @Test func test_inFlight_countsChoicesAndNeverGoesNegative() {
        var registry = UpstreamRegistry()
        _ = registry.add(TunnelID(1), endpoint: "svc")
        _ = registry.choose(for: "svc", allowDraining: false)
        _ = registry.choose(for: "svc", allowDraining: false)
        #expect(registry.tunnel(TunnelID(1))?.inFlight == 2)
        #expect(registry.finishStream(on: TunnelID(1)) == 1)
        #expect(registry.finishStream(on: TunnelID(1)) == 0)
        #expect(registry.finishStream(on: TunnelID(1)) == 0)
        #expect(registry.finishStream(on: TunnelID(9)) == nil)
    }

    @Test func test_streams_doNotMoveTheInvariantStamp_butTunnelChangesDo() {
        var registry = UpstreamRegistry()
        _ = registry.add(TunnelID(1), endpoint: "svc")
        let stamp = registry.invariantStamp
        _ = registry.choose(for: "svc", allowDraining: false)
        let started = registry.startStream(on: TunnelID(1))
        #expect(started)
        #expect(registry.finishStream(on: TunnelID(1)) == 1)
        #expect(registry.invariantStamp == stamp, "a request is not a change the invariant check reads")
        #expect(registry.isConsistent(cleanAt: stamp))
        guard case .removed(let removed, count: 0) = registry.remove(TunnelID(1)) else {
            Issue.record("expected the tunnel removed")
            return
        }
        #expect(removed.inFlight == 1, "the removed tunnel reports what was still in flight")
        #expect(registry.invariantStamp != stamp)
        _ = registry.add(TunnelID(1), endpoint: "svc")
        #expect(registry.tunnel(TunnelID(1))?.inFlight == 0, "a new registration starts from zero")
    }
}

@Suite("Router")
struct RouterTests {
    func remote(_ number: UInt64, count: UInt32, draining: Bool = false) -> RemoteUpstream {
        let info = Fixture.info(number)
        return RemoteUpstream(uid: info.uid, name: info.name, proxyAddress: info.proxyAddress, count: count, draining: draining)
    }

    @Test func test_missingOrOversizedEndpoint_isA400() {
        var registry = UpstreamRegistry()
        var rng = SplitMix64(seed: 1)
        #expect(Router.decide(endpoint: nil, forwarded: false, local: &registry, remote: [], rng: &rng) == .reject(.missingEndpoint))
        #expect(Router.decide(endpoint: "", forwarded: false, local: &registry, remote: [], rng: &rng) == .reject(.missingEndpoint))
        let long = String(repeating: "x", count: 256)
        #expect(Router.decide(endpoint: long, forwarded: false, local: &registry, remote: [], rng: &rng) == .reject(.invalidEndpoint))
        #expect(RouteRejection.missingEndpoint.status == 400 && RouteRejection.noAvailableUpstreams.status == 502)
    }

    @Test func test_localTunnel_isPreferred_andForwardedRequestsStayLocal() {
        var registry = UpstreamRegistry()
        var rng = SplitMix64(seed: 1)
        _ = registry.add(TunnelID(1), endpoint: "svc")
        #expect(Router.decide(endpoint: "svc", forwarded: false, local: &registry, remote: [self.remote(2, count: 5)], rng: &rng) == .local(TunnelID(1)))
        #expect(Router.decide(endpoint: "api", forwarded: true, local: &registry, remote: [self.remote(2, count: 5)], rng: &rng) == .reject(.noAvailableUpstreams))
    }

    @Test func test_remoteChoice_isWeightedByListenerCount() {
        var registry = UpstreamRegistry()
        var rng = SplitMix64(seed: 42)
        var tally: [NodeUID: Int] = [:]
        let candidates = [self.remote(2, count: 1), self.remote(3, count: 3)]
        for _ in 0..<4_000 {
            guard case .forward(let uid, _, _) = Router.decide(endpoint: "svc", forwarded: false, local: &registry, remote: candidates, rng: &rng) else {
                Issue.record("expected a forward")
                return
            }
            tally[uid, default: 0] += 1
        }
        let heavy = Double(tally[Fixture.info(3).uid] ?? 0) / 4_000
        #expect(heavy > 0.70 && heavy < 0.80, "a node with 3 of 4 listeners gets about 75 % (got \(heavy))")
    }

    @Test func test_drainingHolders_areUsedOnlyWhenNothingElseCanServe() {
        var registry = UpstreamRegistry()
        var rng = SplitMix64(seed: 5)
        let draining = self.remote(2, count: 9, draining: true)
        let active = self.remote(3, count: 1)
        #expect(Router.decide(endpoint: "svc", forwarded: false, local: &registry, remote: [draining, active], rng: &rng)
            == .forward(uid: active.uid, name: active.name, proxyAddress: active.proxyAddress))
        _ = registry.add(TunnelID(7), endpoint: "svc", draining: true)
        #expect(Router.decide(endpoint: "svc", forwarded: false, local: &registry, remote: [draining, active], rng: &rng)
            == .forward(uid: active.uid, name: active.name, proxyAddress: active.proxyAddress), "an active remote beats a draining local tunnel")
        #expect(Router.decide(endpoint: "svc", forwarded: false, local: &registry, remote: [draining], rng: &rng) == .local(TunnelID(7)))
        var empty = UpstreamRegistry()
        #expect(Router.decide(endpoint: "svc", forwarded: false, local: &empty, remote: [draining], rng: &rng)
            == .forward(uid: draining.uid, name: draining.name, proxyAddress: draining.proxyAddress))
    }
}
