import Testing
@testable import PicoModel

/// One tenant per endpoint, cluster-wide, driven through one `ClusterNode` and the codec.
@Suite struct EndpointTenancyTests {
    /// A node that knows peer 2 as alive.
    static func nodeWithPeer() -> (ClusterNode, NodeInfo) {
        var node = ClusterNodeTests.node()
        let peer = Fixture.info(2)
        _ = node.handle(.datagramReceived(GossipCodec.datagram(sender: peer.uid, messages: [.alive(info: peer, incarnation: 0, draining: false)]), from: peer.gossipAddress), now: .zero)
        return (node, peer)
    }

    /// Peer `peer` gossips its entry for `endpoint` (`count` tunnels under `claim`) at `version`.
    static func peerEntry(_ peer: NodeInfo, _ endpoint: String, count: UInt32 = 1, version: UInt64, claim: EndpointClaim, into node: inout ClusterNode, at now: Instant) -> [ClusterDirective] {
        let delta = EndpointDelta(owner: peer.uid, base: version - 1, entries: [.init(endpoint: endpoint, count: count, version: version, claim: claim)])
        return node.handle(.datagramReceived(GossipCodec.datagram(sender: peer.uid, messages: [.endpointDelta(delta)]), from: peer.gossipAddress), now: now)
    }

    @Test func test_holder_isTheOldestClaim_tenantIDBreaksTies_andUntenantedAlwaysHolds() {
        let a = EndpointClaim(tenant: "a", since: 200)
        let b = EndpointClaim(tenant: "b", since: 100)
        let c = EndpointClaim(tenant: "c", since: 100)
        #expect(EndpointClaim.holder(of: [a, b, c]) == b)
        #expect(EndpointClaim.holder(of: [c, b]) == b)
        #expect(EndpointClaim.holder(of: [a, .untenanted]) == .untenanted)
        #expect(EndpointClaim.holder(of: [EndpointClaim]()) == nil)
        #expect(EndpointClaim(tenant: "", since: 99).since == 0, "no tenant, no age")
        #expect(EndpointClaim.isValidTenant("team-a_1.prod"))
        for bad in ["", "a b", "a/b", "ä", String(repeating: "x", count: 65)] { #expect(!EndpointClaim.isValidTenant(bad), "\(bad)") }
    }

    @Test func test_anotherTenantsRegistration_isRefused_whileATenantHoldsTheEndpointAnywhere() {
        var (node, peer) = Self.nodeWithPeer()
        _ = Self.peerEntry(peer, "svc", version: 1, claim: EndpointClaim(tenant: "blue", since: 1_000), into: &node, at: .seconds(1))
        let refused = node.handle(.tunnelOpened(TunnelID(1), endpoint: "svc", tenant: "red", wallMilliseconds: 500), now: .seconds(2))
        #expect(refused.contains(.closeTunnel(TunnelID(1))), "an older wall clock does not help: the holder decides at registration")
        #expect(refused.contains(.event(.tunnelRejected(TunnelID(1), reason: "endpoint svc is held by another tenant"))))
        #expect(node.endpoints.localCount(for: "svc") == 0)
        let untenanted = node.handle(.tunnelOpened(TunnelID(2), endpoint: "svc"), now: .seconds(2))
        #expect(untenanted.contains(.closeTunnel(TunnelID(2))), "no tenant is another tenant too")
        // The holding tenant registers here, and its hold continues: our claim dates from the peer's.
        let same = node.handle(.tunnelOpened(TunnelID(3), endpoint: "svc", tenant: "blue", wallMilliseconds: 9_000), now: .seconds(3))
        #expect(!same.contains(.closeTunnel(TunnelID(3))))
        #expect(node.endpoints.claim(of: node.me.uid, for: "svc") == EndpointClaim(tenant: "blue", since: 1_000))
        #expect(node.remoteUpstreams(for: "svc").map(\.uid) == [peer.uid])
        #expect(node.checkInvariants() == [])
    }

    @Test func test_anOlderClaimLearnedLater_closesOurTunnels_andRoutingSkipsTheLoser() {
        var (node, peer) = Self.nodeWithPeer()
        _ = node.handle(.tunnelOpened(TunnelID(1), endpoint: "svc", tenant: "red", wallMilliseconds: 5_000), now: .seconds(1))
        _ = node.handle(.tunnelOpened(TunnelID(2), endpoint: "svc", tenant: "red", wallMilliseconds: 6_000), now: .seconds(1))
        #expect(node.endpoints.claim(of: node.me.uid, for: "svc") == EndpointClaim(tenant: "red", since: 5_000))
        // A younger claim of another tenant (registered on the other side of a cut) loses:
        // our tunnels stay, and routing never sends to the peer's.
        let younger = Self.peerEntry(peer, "svc", version: 1, claim: EndpointClaim(tenant: "blue", since: 7_000), into: &node, at: .seconds(2))
        #expect(!younger.contains(.closeTunnel(TunnelID(1))))
        #expect(node.remoteUpstreams(for: "svc").isEmpty)
        #expect(node.endpointHolder("svc")?.tenant == "red")
        // The peer's claim turns out older (its tenant held the endpoint first): ours close.
        let older = Self.peerEntry(peer, "svc", version: 2, claim: EndpointClaim(tenant: "blue", since: 4_000), into: &node, at: .seconds(3))
        #expect(older.contains(.closeTunnel(TunnelID(1))) && older.contains(.closeTunnel(TunnelID(2))))
        #expect(older.contains(.event(.tunnelRejected(TunnelID(1), reason: "endpoint svc is held by another tenant (since 4000)"))))
        #expect(node.endpoints.localCount(for: "svc") == 0)
        #expect(node.remoteUpstreams(for: "svc").map(\.uid) == [peer.uid])
        let routing = older.compactMap { if case .routingChanged(let changes) = $0 { return changes } else { return nil } }.flatMap { $0 }
        #expect(routing.contains(.tunnelRemoved(TunnelID(1))))
        #expect(routing.contains(.remoteHolders(endpoint: "svc", node.remoteUpstreams(for: "svc"))))
        #expect(node.checkInvariants() == [])
    }

    /// Node 3 tells the node that `peer` is dead.
    static func declareDead(_ peer: NodeInfo, in node: inout ClusterNode, at now: Instant) {
        let dead = GossipMessage.dead(subject: peer.uid, incarnation: 0, accuser: Fixture.info(3).uid)
        _ = node.handle(.datagramReceived(GossipCodec.datagram(sender: Fixture.info(3).uid, messages: [dead]), from: Fixture.info(3).gossipAddress), now: now)
    }

    @Test func test_whenTheHoldersGo_theEndpointStaysReservedForItsTenant_thenIsFree() {
        var (node, peer) = Self.nodeWithPeer()
        _ = Self.peerEntry(peer, "svc", version: 1, claim: EndpointClaim(tenant: "blue", since: 1_000), into: &node, at: .seconds(1))
        Self.declareDead(peer, in: &node, at: .seconds(2))
        #expect(node.endpointHolder("svc") == EndpointClaim(tenant: "blue", since: 1_000), "reserved for blue")
        let refused = node.handle(.tunnelOpened(TunnelID(1), endpoint: "svc", tenant: "red", wallMilliseconds: 8_000), now: .seconds(3))
        #expect(refused.contains(.closeTunnel(TunnelID(1))), "red cannot take it while it is reserved")
        // The reservation ends 300 s after the holder went; then the endpoint is free.
        _ = node.handle(.timerFired(.gossip), now: .seconds(302))
        #expect(node.endpointHolder("svc") == nil)
        let opened = node.handle(.tunnelOpened(TunnelID(2), endpoint: "svc", tenant: "red", wallMilliseconds: 9_000), now: .seconds(302))
        #expect(!opened.contains(.closeTunnel(TunnelID(2))))
        #expect(node.endpoints.claim(of: node.me.uid, for: "svc") == EndpointClaim(tenant: "red", since: 9_000))
    }

    @Test func test_theReservedTenantComesBack_withItsSeniority_andTheReservationEnds() {
        var node = ClusterNodeTests.node()
        _ = node.handle(.tunnelOpened(TunnelID(1), endpoint: "svc", tenant: "blue", wallMilliseconds: 1_000), now: .seconds(1))
        let closed = node.handle(.tunnelClosed(TunnelID(1)), now: .seconds(2))
        #expect(node.reservations.claim(for: "svc") == EndpointClaim(tenant: "blue", since: 1_000), "an agent restart does not free the endpoint")
        let routing = closed.compactMap { if case .routingChanged(let changes) = $0 { return changes } else { return nil } }.flatMap { $0 }
        #expect(!routing.contains(.endpointTenant(endpoint: "svc", tenant: nil)), "loops keep refusing other tenants")
        _ = node.handle(.tunnelOpened(TunnelID(2), endpoint: "svc", tenant: "blue", wallMilliseconds: 5_000), now: .seconds(3))
        #expect(node.endpoints.claim(of: node.me.uid, for: "svc") == EndpointClaim(tenant: "blue", since: 1_000))
        #expect(node.reservations.count == 0)
    }

    @Test func test_aYoungerClaimElsewhere_whileTheEndpointIsReserved_takesNoRequest() {
        var (node, peer) = Self.nodeWithPeer()
        _ = node.handle(.tunnelOpened(TunnelID(1), endpoint: "svc", tenant: "blue", wallMilliseconds: 1_000), now: .seconds(1))
        _ = node.handle(.tunnelClosed(TunnelID(1)), now: .seconds(2))
        // Red registered svc on a node that never saw blue (a restarted node, the far side of a
        // partition): its entry arrives, and routing here still sends nothing to it.
        let arrived = Self.peerEntry(peer, "svc", version: 1, claim: EndpointClaim(tenant: "red", since: 3_000), into: &node, at: .seconds(3))
        #expect(node.endpointHolder("svc")?.tenant == "blue")
        #expect(node.remoteUpstreams(for: "svc").isEmpty)
        var router = Fixture.loopRouter(of: node, endpoints: ["svc"])
        #expect(router.decide(endpoint: "svc", forwarded: false) == .reject(.noAvailableUpstreams))
        let routing = arrived.compactMap { if case .routingChanged(let changes) = $0 { return changes } else { return nil } }.flatMap { $0 }
        #expect(!routing.contains { if case .remoteHolders(_, let holders) = $0 { return !holders.isEmpty } else { return false } })
        #expect(node.checkInvariants() == [])
    }

    @Test func test_theHolderDyingAsAnotherTenantsEntryArrives_stillReservesForTheOlder() {
        var (node, peer) = Self.nodeWithPeer()
        let other = Fixture.info(4)
        _ = node.handle(.datagramReceived(GossipCodec.datagram(sender: other.uid, messages: [.alive(info: other, incarnation: 0, draining: false)]), from: other.gossipAddress), now: .zero)
        _ = Self.peerEntry(peer, "svc", version: 1, claim: EndpointClaim(tenant: "blue", since: 1_000), into: &node, at: .seconds(1))
        // One datagram: the holder is dead, and red's younger entry for svc.
        let delta = EndpointDelta(owner: other.uid, base: 0, entries: [.init(endpoint: "svc", count: 1, version: 1, claim: EndpointClaim(tenant: "red", since: 5_000))])
        let dead = GossipMessage.dead(subject: peer.uid, incarnation: 0, accuser: other.uid)
        _ = node.handle(.datagramReceived(GossipCodec.datagram(sender: other.uid, messages: [dead, .endpointDelta(delta)]), from: other.gossipAddress), now: .seconds(2))
        #expect(node.endpointHolder("svc") == EndpointClaim(tenant: "blue", since: 1_000))
        #expect(node.remoteUpstreams(for: "svc").isEmpty)
    }

    @Test func test_quotas_refuseTheTunnelBeyondThem_andOnlyForTheirTenant() {
        var node = ClusterNodeTests.node { configuration in
            configuration.tenantQuotas["blue"] = TenantQuota(maxEndpoints: 2, maxTunnels: 3)
            configuration.maxEndpointsPerMember = 4
        }
        var next: UInt64 = 1
        func open(_ endpoint: String, _ tenant: String) -> Bool {
            defer { next += 1 }
            return !node.handle(.tunnelOpened(TunnelID(next), endpoint: endpoint, tenant: tenant, wallMilliseconds: 1), now: .seconds(1)).contains(.closeTunnel(TunnelID(next)))
        }
        #expect(open("a", "blue") && open("b", "blue"))
        #expect(!open("c", "blue"), "a third endpoint for blue")
        #expect(open("a", "blue"), "a second tunnel of an endpoint it serves")
        let refused = node.handle(.tunnelOpened(TunnelID(99), endpoint: "b", tenant: "blue"), now: .seconds(1))
        #expect(refused.contains(.event(.tunnelRejected(TunnelID(99), reason: "tenant blue has 3 tunnels on this node, its max_tunnels"))))
        #expect(open("c", "red") && open("d", "red"), "red has no quota")
        let full = node.handle(.tunnelOpened(TunnelID(100), endpoint: "e", tenant: "red"), now: .seconds(1))
        #expect(full.contains(.event(.tunnelRejected(TunnelID(100), reason: "this node serves 4 endpoints, the most one member may gossip (cluster.max_endpoints_per_member)"))))
        #expect(open("d", "red"), "an endpoint it serves already is not one more")
        #expect(node.checkInvariants() == [])
    }

    @Test func test_aMembersEntriesBeyondTheConfiguredBound_areIgnored() {
        var node = ClusterNodeTests.node { $0.maxEndpointsPerMember = 2 }
        let peer = Fixture.info(2)
        _ = node.handle(.datagramReceived(GossipCodec.datagram(sender: peer.uid, messages: [.alive(info: peer, incarnation: 0, draining: false)]), from: peer.gossipAddress), now: .zero)
        let delta = EndpointDelta(owner: peer.uid, base: 0, entries: (1...3).map { .init(endpoint: "e\($0)", count: 1, version: UInt64($0)) })
        _ = node.handle(.datagramReceived(GossipCodec.datagram(sender: peer.uid, messages: [.endpointDelta(delta)]), from: peer.gossipAddress), now: .seconds(1))
        #expect(node.endpoints.endpoints == ["e1", "e2"])
        #expect(node.tableSizes.first { $0.name == "endpoints.entriesOfOneOwner" }?.bound == 2)
    }

    @Test func test_aNodeWithTenants_neverCountsAClaimWithoutOne_norTakesATunnelWithoutOne() {
        var node = ClusterNodeTests.node { $0.tenants = ["blue"] }
        let peer = Fixture.info(2)
        _ = node.handle(.datagramReceived(GossipCodec.datagram(sender: peer.uid, messages: [.alive(info: peer, incarnation: 0, draining: false)]), from: peer.gossipAddress), now: .zero)
        _ = node.handle(.tunnelOpened(TunnelID(1), endpoint: "pay", tenant: "blue", wallMilliseconds: 5_000), now: .seconds(1))
        // A member without tenants (misconfigured) serves pay without one: here it holds nothing.
        let arrived = Self.peerEntry(peer, "pay", version: 1, claim: .untenanted, into: &node, at: .seconds(2))
        #expect(!arrived.contains(.closeTunnel(TunnelID(1))), "blue's tunnel stays")
        #expect(node.endpointHolder("pay")?.tenant == "blue")
        #expect(node.remoteUpstreams(for: "pay").isEmpty, "nothing is forwarded to it")
        let refused = node.handle(.tunnelOpened(TunnelID(2), endpoint: "other"), now: .seconds(3))
        #expect(refused.contains(.event(.tunnelRejected(TunnelID(2), reason: "this node has tenants: a tunnel must name its tenant"))))
        // Without tenants, a node still takes tunnels without one, and they hold what they serve.
        var plain = ClusterNodeTests.node()
        #expect(!plain.handle(.tunnelOpened(TunnelID(1), endpoint: "pay"), now: .seconds(1)).contains(.closeTunnel(TunnelID(1))))
    }

    @Test func test_aNewTunnel_takesItsTenantsOldestClaim() {
        var (node, peer) = Self.nodeWithPeer()
        _ = node.handle(.tunnelOpened(TunnelID(1), endpoint: "pay", tenant: "blue", wallMilliseconds: 5_000), now: .seconds(1))
        // The sides of a partition meet: blue held pay on the peer's side first.
        _ = Self.peerEntry(peer, "pay", version: 1, claim: EndpointClaim(tenant: "blue", since: 1_000), into: &node, at: .seconds(2))
        _ = node.handle(.tunnelOpened(TunnelID(2), endpoint: "pay", tenant: "blue", wallMilliseconds: 9_000), now: .seconds(3))
        #expect(node.endpoints.claim(of: node.me.uid, for: "pay") == EndpointClaim(tenant: "blue", since: 1_000))
    }

    @Test func test_reservations_oneTenantChurningEndpoints_neverEvictsAnothers() {
        var reservations = TenantReservations()
        let far = Instant.zero + .seconds(3_600)
        let kept = reservations.reserve("pay", for: EndpointClaim(tenant: "blue", since: 1), until: .zero + .seconds(60))
        #expect(kept)
        for index in 0..<(TenantReservations.maxPerTenant + 10) {
            _ = reservations.reserve("red-\(index)", for: EndpointClaim(tenant: "red", since: 2), until: far + .seconds(Int64(index)))
        }
        #expect(reservations.claim(for: "pay")?.tenant == "blue", "blue's reservation ends first, and stays")
        #expect(reservations.count == TenantReservations.maxPerTenant + 1)
        #expect(reservations.claim(for: "red-0") != nil && reservations.claim(for: "red-\(TenantReservations.maxPerTenant)") == nil, "red's beyond its bound are not made")
        let untenanted = reservations.reserve("x", for: .untenanted, until: far)
        #expect(!untenanted, "nothing is kept without a tenant")
        // Renewing one moves its end; the old end is skipped when it passes.
        let renewed = reservations.reserve("red-0", for: EndpointClaim(tenant: "red", since: 2), until: .zero + .seconds(30))
        #expect(renewed)
        #expect(reservations.expire(now: .zero + .seconds(30)) == ["red-0"])
        #expect(reservations.expire(now: .zero + .seconds(59)).isEmpty)
        #expect(reservations.expire(now: .zero + .seconds(60)) == ["pay"])
        #expect(reservations.claim(for: "pay") == nil)
    }

    @Test func test_aNodeThatJoinsLater_keepsTheClustersReservations() throws {
        var keeper = ClusterNodeTests.node()
        _ = keeper.handle(.tunnelOpened(TunnelID(1), endpoint: "pay", tenant: "blue", wallMilliseconds: 1_000), now: .seconds(1))
        _ = keeper.handle(.tunnelClosed(TunnelID(1)), now: .seconds(2))
        let state = keeper.makeStateExchange(purpose: .pushPull, isReply: false, now: .seconds(62))
        #expect(state.reservations == [StateExchange.ReservationRecord(endpoint: "pay", claim: EndpointClaim(tenant: "blue", since: 1_000), remainingMilliseconds: 240_000)])
        let bytes = GossipCodec.encode(state)
        #expect(try GossipCodec.decodeStateExchange(bytes) == state)
        // A restarted node, where red registered pay before it heard from anyone, learns the
        // reservation: red's younger claim gives way, and red is refused from then on.
        var restarted = ClusterNodeTests.node { $0.randomSeed = 99; $0.tenants = ["blue", "red"] }
        _ = restarted.handle(.tunnelOpened(TunnelID(7), endpoint: "pay", tenant: "red", wallMilliseconds: 70_000), now: .seconds(5))
        let merged = restarted.handle(.stateExchangeRequested(ExchangeID(1), bytes: bytes, from: Fixture.address(0)), now: .seconds(6))
        #expect(merged.contains(.closeTunnel(TunnelID(7))))
        #expect(restarted.endpointHolder("pay") == EndpointClaim(tenant: "blue", since: 1_000))
        #expect(restarted.handle(.tunnelOpened(TunnelID(8), endpoint: "pay", tenant: "red", wallMilliseconds: 71_000), now: .seconds(7)).contains(.closeTunnel(TunnelID(8))))
        // It lasts what is left of it there (240 s), not a fresh term.
        _ = restarted.handle(.timerFired(.gossip), now: .seconds(6) + .seconds(240))
        #expect(restarted.endpointHolder("pay") == nil)
    }

    @Test func test_aMembersReservation_isAdoptedOnlyForOurTenants_withTimeLeft_andNeverInPlaceOfOurs() {
        var node = ClusterNodeTests.node { $0.tenants = ["blue"] }
        let records: [StateExchange.ReservationRecord] = [
            .init(endpoint: "a", claim: EndpointClaim(tenant: "stranger", since: 0), remainingMilliseconds: 60_000),
            .init(endpoint: "b", claim: EndpointClaim(tenant: "blue", since: 0), remainingMilliseconds: 999),
            .init(endpoint: "c", claim: EndpointClaim(tenant: "blue", since: 0), remainingMilliseconds: 60_000),
        ]
        let state = StateExchange(purpose: .pushPull, isReply: false, sender: NodeUID(77), members: [], tombstones: [], endpoints: [], reservations: records)
        _ = node.handle(.stateExchangeRequested(ExchangeID(1), bytes: GossipCodec.encode(state), from: Fixture.address(3)), now: .seconds(1))
        #expect(node.reservations.sorted.map(\.endpoint) == ["c"])
    }

    @Test func test_aYoungerLiveClaimUnderAReservation_neverReplacesIt_whenItGoes() {
        // Alpha's tunnel went (pay is reserved for alpha); bravo registered pay elsewhere (a
        // node that had not heard yet), then gave way there: alpha's reservation stays as it was.
        var (node, peer) = Self.nodeWithPeer()
        _ = node.handle(.tunnelOpened(TunnelID(1), endpoint: "pay", tenant: "alpha", wallMilliseconds: 1_000), now: .seconds(1))
        _ = node.handle(.tunnelClosed(TunnelID(1)), now: .seconds(2))
        let before = node.reservations.sorted
        _ = Self.peerEntry(peer, "pay", version: 1, claim: EndpointClaim(tenant: "bravo", since: 5_000), into: &node, at: .seconds(3))
        #expect(node.endpointHolder("pay")?.tenant == "alpha")
        _ = Self.peerEntry(peer, "pay", count: 0, version: 2, claim: .untenanted, into: &node, at: .seconds(4))
        #expect(node.reservations.sorted.map(\.reservation) == before.map(\.reservation), "alpha's, with its end unchanged")
    }

    @Test func test_anExchangesReservations_areSharedFairlyBetweenTenants() {
        var node = ClusterNodeTests.node()
        var reservations = TenantReservations()
        for tenant in ["a", "b", "c"] {
            for index in 0..<TenantReservations.maxPerTenant {
                reservations.reserve("\(tenant)-\(index)", for: EndpointClaim(tenant: tenant, since: 1), until: .zero + .seconds(60))
            }
        }
        node.reservations = reservations
        let records = node.reservationRecords(now: .zero + .seconds(1))
        #expect(records.count == StateExchange.maxReservations)
        let counts = Dictionary(grouping: records, by: \.claim.tenant).mapValues(\.count)
        #expect(counts.values.allSatisfy { abs($0 - StateExchange.maxReservations / 3) <= 1 }, "\(counts)")
        #expect(records.first?.remainingMilliseconds == 59_000)
        #expect(records.map(\.endpoint) == records.map(\.endpoint).sorted())
    }

    @Test func test_reservationRecords_fromTheWire_areChecked() {
        func exchange(tenant: String, remaining: UInt64) -> [UInt8] {
            var bytes = GossipCodec.encode(StateExchange(purpose: .pushPull, isReply: false, sender: NodeUID(7), members: [], tombstones: [], endpoints: [],
                                                         reservations: [.init(endpoint: "pay", claim: EndpointClaim(tenant: "blue", since: 5), remainingMilliseconds: 1)]))
            // Rewrite the record's tail: tenant, since, remaining.
            let tail = bytes.count - (1 + 4 + 1 + 1)
            bytes.removeLast(bytes.count - tail)
            var writer = ByteWriter(capacity: 32)
            writer.writeString(tenant)
            if !tenant.isEmpty { writer.writeVarint(5) }
            writer.writeVarint(remaining)
            return bytes + writer.bytes
        }
        #expect((try? GossipCodec.decodeStateExchange(exchange(tenant: "blue", remaining: 1_000)))?.reservations.first?.remainingMilliseconds == 1_000)
        for (tenant, remaining, field) in [("", UInt64(1), "state.reservation.claim.tenant"), ("blue", 86_400_001, "state.reservation.remaining"), ("b c", 1, "state.reservation.claim.tenant")] {
            do {
                _ = try GossipCodec.decodeStateExchange(exchange(tenant: tenant, remaining: remaining))
                Issue.record("accepted \(tenant) \(remaining)")
            } catch {
                #expect(error.field == field)
            }
        }
    }

    @Test func test_claims_crossTheWire_inDeltasAndStateExchanges_andPlainEntriesKeepTheOldKinds() throws {
        let claimed = EndpointDelta(owner: NodeUID(7), base: 0, entries: [
            .init(endpoint: "a", count: 1, version: 1, claim: EndpointClaim(tenant: "blue", since: 1_234_567)),
            .init(endpoint: "b", count: 0, version: 2),
        ])
        let encoded = GossipCodec.encode(.endpointDelta(claimed))
        #expect(encoded.first == 11)
        let datagram = try GossipCodec.decodeDatagram(GossipCodec.datagram(sender: NodeUID(7), encodedMessages: [encoded]))
        #expect(datagram.messages == [.endpointDelta(claimed)])
        let plain = EndpointDelta(owner: NodeUID(7), base: 0, entries: [.init(endpoint: "a", count: 1, version: 1)])
        #expect(GossipCodec.encode(.endpointDelta(plain)).first == 10, "a cluster without tenants speaks what older nodes read")

        let state = StateExchange(purpose: .pushPull, isReply: false, sender: NodeUID(7), members: [], tombstones: [],
                                  endpoints: [.init(owner: NodeUID(7), version: 2, entries: [.init(endpoint: "a", count: 2, version: 2, claim: EndpointClaim(tenant: "t", since: 9))])])
        let bytes = GossipCodec.encode(state)
        #expect(bytes[2] == 0x21)
        #expect(try GossipCodec.decodeStateExchange(bytes) == state)
    }

    @Test func test_hostileClaims_areRefusedWithTheField() {
        // A tenant with a byte outside the allowed set, in an otherwise valid delta.
        var writer = ByteWriter(capacity: 64)
        writer.writeByte(11)
        writer.writeUInt64(7)
        writer.writeVarint(0)
        writer.writeVarint(1)
        writer.writeString("a")
        writer.writeVarint(1)
        writer.writeVarint(1)
        writer.writeString("bad tenant")
        writer.writeVarint(5)
        let bytes = GossipCodec.datagram(sender: NodeUID(7), encodedMessages: [writer.bytes])
        #expect(throws: WireDecodeError.self) { try GossipCodec.decodeDatagram(bytes) }
        do {
            _ = try GossipCodec.decodeDatagram(bytes)
        } catch {
            #expect(error.field == "endpointDelta.entry.claim.tenant")
        }
        // A tenant longer than the bound.
        var long = ByteWriter(capacity: 128)
        long.writeByte(11); long.writeUInt64(7); long.writeVarint(0); long.writeVarint(1)
        long.writeString("a"); long.writeVarint(1); long.writeVarint(1)
        long.writeString(String(repeating: "t", count: 65)); long.writeVarint(5)
        #expect(throws: WireDecodeError.self) { try GossipCodec.decodeDatagram(GossipCodec.datagram(sender: NodeUID(7), encodedMessages: [long.bytes])) }
    }
}
