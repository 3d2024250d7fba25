@testable import PicoModel
import Testing

@Suite("ClusterNode")
struct ClusterNodeTests {
    static func node(join: [String] = [], configure: (inout ClusterConfiguration) -> Void = { _ in }) -> ClusterNode {
        var configuration = Fixture.configuration(0, seed: 11, join: join)
        configure(&configuration)
        var node = try! ClusterNode(configuration: configuration)
        _ = node.handle(.start, now: .zero)
        return node
    }

    /// A datagram from `sender` carrying `messages`, as the shell would feed it.
    static func datagram(from sender: NodeInfo, _ messages: [GossipMessage]) -> ClusterInput {
        .datagramReceived(GossipCodec.datagram(sender: sender.uid, endpointVersion: 0, encodedMessages: messages.map { GossipCodec.encode($0) }), from: sender.gossipAddress)
    }

    /// The addresses of the state exchanges `directives` open for `purpose`.
    static func exchanges(_ directives: [ClusterDirective], _ purpose: StateExchange.Purpose) -> [Address] {
        directives.compactMap { directive in
            guard case .openStateExchange(_, let address, let bytes) = directive,
                  (try? GossipCodec.decodeStateExchange(bytes))?.purpose == purpose else { return nil }
            return address
        }
    }

    @Test func test_aRequestWaitingForAHolder_makesTheNodeTryTheDeadAtOnce_atMostEveryHalfSecond() {
        func dials(_ directives: [ClusterDirective]) -> [Address] { Self.exchanges(directives, .reconnect) }
        var node = Self.node()
        let peer = Fixture.info(2)
        let witness = Fixture.info(3)
        _ = node.handle(Self.datagram(from: peer, [.alive(info: peer, incarnation: 0, draining: false)]), now: .seconds(1))
        _ = node.handle(Self.datagram(from: witness, [.alive(info: witness, incarnation: 0, draining: false)]), now: .seconds(1))
        #expect(dials(node.handle(.holderWanted, now: .seconds(2))).isEmpty, "nobody is dead: nobody to try")
        _ = node.handle(Self.datagram(from: witness, [.dead(subject: peer.uid, incarnation: 0, accuser: witness.uid)]), now: .seconds(3))
        #expect(dials(node.handle(.holderWanted, now: .seconds(4))) == [peer.gossipAddress], "a partition may have healed: try the dead now")
        #expect(dials(node.handle(.holderWanted, now: .seconds(4) + .milliseconds(499))).isEmpty, "a flood of waiting requests costs one dial per interval")
        #expect(dials(node.handle(.holderWanted, now: .seconds(4) + .milliseconds(500))) == [peer.gossipAddress])
    }

    @Test func test_aRequestWaitingForAHolder_makesTheNodeSyncWithALiveMember_atMostEveryFiveSeconds() {
        // hostile-gossip.yaml: a node missed the holder's entry during a forgery flood, and no
        // lost route marked it (the entry never arrived); requests failed until a push/pull.
        var node = Self.node()
        let peers = [Fixture.info(2), Fixture.info(3)]
        for peer in peers { _ = node.handle(Self.datagram(from: peer, [.alive(info: peer, incarnation: 0, draining: false)]), now: .seconds(1)) }
        func syncs(at seconds: Int64) -> Int { Self.exchanges(node.handle(.holderWanted, now: .seconds(seconds)), .pushPull).count }
        let first = Self.exchanges(node.handle(.holderWanted, now: .seconds(2)), .pushPull)
        #expect(first.count == 1 && peers.map(\.gossipAddress).contains(first[0]), "one sync, with a live member")
        // Requests that keep waiting (an endpoint nobody holds, or random names) back off:
        // 5 s, then 10, 20, and at most the push/pull period (30 s here).
        #expect(syncs(at: 6) == 0 && syncs(at: 7) == 0, "a flood of waiting requests costs one sync per interval")
        #expect(syncs(at: 11) == 0 && syncs(at: 12) == 1)
        #expect(syncs(at: 30) == 0 && syncs(at: 32) == 1)
        #expect(syncs(at: 60) == 0 && syncs(at: 62) == 1)
        #expect(syncs(at: 91) == 0 && syncs(at: 92) == 1, "never more often than anti-entropy")
        // A push/pull period with no waiting request: it starts over.
        #expect(syncs(at: 130) == 1)
        #expect(syncs(at: 139) == 0 && syncs(at: 140) == 1)
    }

    @Test func test_theOwnersReplyToAnExchangeWeOpened_undoesAForgedEndpointVersion_butNobodyElseCan() throws {
        var node = Self.node()
        let owner = Fixture.info(2)
        let other = Fixture.info(3)
        for peer in [owner, other] { _ = node.handle(Self.datagram(from: peer, [.alive(info: peer, incarnation: 0, draining: false)]), now: .seconds(1)) }
        let real = EndpointDelta(owner: owner.uid, base: 0, entries: [.init(endpoint: "alpha", count: 2, version: 1)])
        _ = node.handle(Self.datagram(from: owner, [.endpointDelta(real)]), now: .seconds(1))
        // A forger, in the owner's name, at a version far above the owner's.
        let forged = EndpointDelta(owner: owner.uid, base: 1, entries: [.init(endpoint: "alpha", count: 0, version: 900), .init(endpoint: "stolen", count: 1, version: 901)])
        _ = node.handle(Self.datagram(from: other, [.endpointDelta(forged)]), now: .seconds(2))
        #expect(node.endpoints.endpoints == ["stolen"])
        func state(from sender: NodeInfo, isReply: Bool) -> [UInt8] {
            GossipCodec.encode(StateExchange(
                purpose: .pushPull, isReply: isReply, sender: sender.uid,
                members: [.init(info: sender, state: MemberState(.alive, 0), draining: false)], tombstones: [],
                endpoints: [.init(owner: owner.uid, version: 1, entries: [.init(endpoint: "alpha", count: 2, version: 1)])]))
        }
        // Someone else's word for the owner, as a request or as a reply, changes nothing; nor
        // does the owner's name on a request (anyone can open one), or on a reply from an
        // address that is not the owner's.
        _ = node.handle(.stateExchangeRequested(ExchangeID(77), bytes: state(from: other, isReply: false), from: other.gossipAddress), now: .seconds(3))
        #expect(node.endpoints.endpoints == ["stolen"])
        _ = node.handle(.stateExchangeRequested(ExchangeID(78), bytes: state(from: owner, isReply: false), from: owner.gossipAddress), now: .seconds(3))
        #expect(node.endpoints.endpoints == ["stolen"], "a request in the owner's name")
        var impostor = owner
        impostor.gossipAddress = other.gossipAddress
        _ = node.handle(.holderWanted, now: .seconds(3))
        for case .openStateExchange(let id, let address, _) in node.handle(.holderWanted, now: .seconds(3)) where address == other.gossipAddress {
            _ = node.handle(.stateExchangeReplied(id, bytes: state(from: impostor, isReply: true)), now: .seconds(3) + .milliseconds(5))
        }
        #expect(node.endpoints.endpoints == ["stolen"], "a reply in the owner's name from another member's address")
        // Syncs until one goes to the owner's own address (a waiting request starts one each 5 s).
        var time = Duration.seconds(4)
        var answered = false
        while !answered, time < .seconds(200) {
            for case .openStateExchange(let id, let address, _) in node.handle(.holderWanted, now: .zero + time) {
                let from = address == owner.gossipAddress ? owner : other
                _ = node.handle(.stateExchangeReplied(id, bytes: state(from: from, isReply: true)), now: .zero + time + .milliseconds(5))
                if from == owner {
                    answered = true
                } else {
                    #expect(node.endpoints.endpoints == ["stolen"], "a reply from another member is not the owner's word")
                }
            }
            time += .seconds(5)
        }
        #expect(answered)
        #expect(node.endpoints.endpoints == ["alpha"], "the owner's own reply replaces the forged entries")
        #expect(node.endpoints.checkInvariants() == [])
    }

    @Test func test_aRebornNode_tellsEveryAliveMemberItsNewIdentityAndEndpoints_directly() throws {
        var node = Self.node()
        let peers = [Fixture.info(2), Fixture.info(3)]
        for peer in peers { _ = node.handle(Self.datagram(from: peer, [.alive(info: peer, incarnation: 0, draining: false)]), now: .seconds(1)) }
        _ = node.handle(.tunnelOpened(TunnelID(1), endpoint: "svc"), now: .seconds(1))
        let old = node.me.uid
        // A peer tells us we were declared dead (a partition that outlasted detection healed).
        let reborn = node.handle(Self.datagram(from: peers[0], [.dead(subject: old, incarnation: 0, accuser: peers[0].uid)]), now: .seconds(2))
        let new = node.me.uid
        #expect(new != old)
        var told: [Address] = []
        for case .sendDatagram(let bytes, let address) in reborn {
            let datagram = try GossipCodec.decodeDatagram(bytes)
            guard datagram.messages.contains(where: { if case .alive(let info, _, _) = $0 { info.uid == new } else { false } }) else { continue }
            let entries = datagram.messages.flatMap { message -> [EndpointDelta.Entry] in
                if case .endpointDelta(let delta) = message, delta.owner == new { return delta.entries }
                return []
            }
            #expect(entries.map(\.endpoint) == ["svc"], "every peer dropped our entries with the old UID: they come along")
            told.append(address)
        }
        #expect(Set(told) == Set(peers.map(\.gossipAddress)))
        // A flood of `dead` about us (anyone may send one) makes us reborn each time, but tells
        // every member directly at most once per forgeryRebirthInterval.
        let again = node.handle(Self.datagram(from: peers[0], [.dead(subject: new, incarnation: 0, accuser: peers[0].uid)]), now: .seconds(3))
        #expect(node.me.uid != new)
        #expect(again.allSatisfy { if case .sendDatagram = $0 { false } else { true } })
    }

    @Test func test_invalidConfiguration_namesTheKey() {
        var configuration = Fixture.configuration(0, seed: 1, join: [])
        configuration.gracePeriod = .seconds(2)
        configuration.membership.probeTimeout = .seconds(5)
        configuration.nodeName = ""
        do {
            _ = try ClusterNode(configuration: configuration)
            Issue.record("expected a SettingsError")
        } catch {
            #expect(error.messages.contains { $0.hasPrefix("grace_period") })
            #expect(error.messages.contains { $0.hasPrefix("cluster.gossip: probeTimeout") })
            #expect(error.messages.contains { $0.hasPrefix("cluster.node_id") })
        }
    }

    @Test func test_start_withoutSeeds_isReadyAtOnce_withSeeds_asksForResolution() {
        var alone = try! ClusterNode(configuration: Fixture.configuration(0, seed: 1, join: []))
        let directives = alone.handle(.start, now: .zero)
        #expect(directives.contains(.setReadiness(true)))
        #expect(alone.isReady)
        var joining = try! ClusterNode(configuration: Fixture.configuration(0, seed: 1, join: ["pico", "10.0.0.9"]))
        let asked = joining.handle(.start, now: .zero)
        #expect(asked.contains(.resolveSeeds(["pico", "10.0.0.9"])))
        #expect(!joining.isReady)
    }

    @Test func test_joinExchangeWithoutAnswer_failsAfterTheTimeout_andTheJoinRetries() {
        var node = Self.node(join: ["pico"])
        let seed = Address(host: "10.0.0.9", port: 8003)
        let opened = node.handle(.seedsResolved([seed]), now: .seconds(1))
        #expect(opened.contains { if case .openStateExchange(_, seed, _) = $0 { true } else { false } })
        #expect(opened.contains(.schedule(.stateExchangeDeadline, at: .seconds(11))))
        // The seed accepted the connection and crashed: no reply and no failure ever arrive.
        let early = node.handle(.timerFired(.stateExchangeDeadline), now: .seconds(5))
        #expect(!early.contains { if case .event(.stateExchangeFailed) = $0 { true } else { false } }, "not overdue yet")
        let overdue = node.handle(.timerFired(.stateExchangeDeadline), now: .seconds(11))
        #expect(overdue.contains(.event(.stateExchangeFailed(to: seed, reason: "no answer within 10.0 seconds"))))
        #expect(overdue.contains(.schedule(.seedResolution, at: .seconds(12))), "the join round failed: resolve again after the backoff")
        #expect(node.membership.phase == .joining)
    }

    @Test func test_losingTheLastRouteOfAnEndpoint_syncsWithAnAliveMember_oncePerProbeInterval() {
        var node = Self.node()
        let (holder, other) = (Fixture.info(2), Fixture.info(3))
        let alive = [holder, other].map { GossipMessage.alive(info: $0, incarnation: 0, draining: false) }
        let added = EndpointDelta(owner: holder.uid, base: 0, entries: [.init(endpoint: "e0", count: 1, version: 1)])
        _ = node.handle(Self.datagram(from: holder, alive + [.endpointDelta(added)]), now: .seconds(1))
        #expect(node.remoteUpstreams(for: "e0").count == 1)
        // The holder leaves; we never heard of the endpoint's replacement.
        let left = node.handle(Self.datagram(from: holder, [.left(subject: holder.uid, incarnation: 0)]), now: .seconds(2))
        #expect(left.contains(.event(.routeRepairSync(with: other.gossipAddress))))
        #expect(left.contains { if case .openStateExchange(_, other.gossipAddress, _) = $0 { true } else { false } })
        // A second loss within the probe interval waits for it.
        let again = EndpointDelta(owner: other.uid, base: 0, entries: [.init(endpoint: "e1", count: 1, version: 1)])
        let gone = EndpointDelta(owner: other.uid, base: 1, entries: [.init(endpoint: "e1", count: 0, version: 2)])
        _ = node.handle(Self.datagram(from: other, [.endpointDelta(again)]), now: .milliseconds(2_100))
        let soon = node.handle(Self.datagram(from: other, [.endpointDelta(gone)]), now: .milliseconds(2_200))
        #expect(!soon.contains { if case .event(.routeRepairSync) = $0 { true } else { false } })
        let later = node.handle(.timerFired(.gossip), now: .seconds(3))
        #expect(later.contains(.event(.routeRepairSync(with: other.gossipAddress))))
    }

    @Test func test_forwardingToADrainingHolder_startsARepairSync() {
        var node = Self.node()
        let (holder, other) = (Fixture.info(2), Fixture.info(3))
        let added = EndpointDelta(owner: holder.uid, base: 0, entries: [.init(endpoint: "e0", count: 1, version: 1)])
        _ = node.handle(Self.datagram(from: holder, [.alive(info: holder, incarnation: 0, draining: false), .alive(info: other, incarnation: 0, draining: false), .endpointDelta(added)]), now: .seconds(1))
        let toHolder = RouteDecision.forward(uid: holder.uid, name: holder.name, proxyAddress: holder.proxyAddress)
        var router = Fixture.loopRouter(of: node, endpoints: ["e0"])
        #expect(router.decide(endpoint: "e0", forwarded: false) == toHolder)
        let healthy = node.handle(.routedByLoop(toHolder), now: .seconds(2))
        #expect(!healthy.contains { if case .event(.routeRepairSync) = $0 { true } else { false } })
        _ = node.handle(Self.datagram(from: holder, [.alive(info: holder, incarnation: 1, draining: true)]), now: .seconds(3))
        #expect(node.remoteUpstreams(for: "e0").map(\.draining) == [true])
        router = Fixture.loopRouter(of: node, endpoints: ["e0"])
        #expect(router.decide(endpoint: "e0", forwarded: false) == toHolder, "still the only holder")
        let draining = node.handle(.routedByLoop(toHolder), now: .seconds(4))
        #expect(draining.contains(.event(.routeRepairSync(with: other.gossipAddress))), "maybe we missed its replacement")
    }

    @Test func test_malformedDatagram_isReportedAndDropped_andTheNodeKeepsWorking() {
        var node = Self.node()
        let directives = node.handle(.datagramReceived([0xB7, 1, 0, 0], from: Fixture.address(5)), now: .seconds(1))
        #expect(directives.contains { if case .event(.malformedMessage(let from, let error)) = $0 { return from == Fixture.address(5) && error.code == .truncated } else { return false } })
        let garbage = node.handle(.stateExchangeRequested(ExchangeID(1), bytes: [1, 2, 3], from: Fixture.address(5)), now: .seconds(1))
        #expect(!garbage.contains { if case .replyStateExchange = $0 { return true } else { return false } })
        let peer = Fixture.info(2)
        _ = node.handle(.datagramReceived(GossipCodec.datagram(sender: peer.uid, messages: [.alive(info: peer, incarnation: 0, draining: false)]), from: peer.gossipAddress), now: .seconds(2))
        #expect(node.membership.member(peer.uid)?.state.status == .alive)
        #expect(node.checkInvariants() == [])
    }

    @Test func test_tunnels_publishCounts_idempotently_andRejectBadEndpointIDs() {
        var node = Self.node()
        let opened = node.handle(.tunnelOpened(TunnelID(1), endpoint: "svc"), now: .seconds(1))
        #expect(opened.contains(.event(.endpointChanged(endpoint: "svc", owner: node.me.uid, count: 1))))
        _ = node.handle(.tunnelOpened(TunnelID(1), endpoint: "svc"), now: .seconds(1))
        _ = node.handle(.tunnelOpened(TunnelID(2), endpoint: "svc"), now: .seconds(1))
        #expect(node.endpoints.localCount(for: "svc") == 2)
        _ = node.handle(.tunnelClosed(TunnelID(1)), now: .seconds(2))
        _ = node.handle(.tunnelClosed(TunnelID(1)), now: .seconds(2))
        #expect(node.endpoints.localCount(for: "svc") == 1, "closing twice decrements once")
        let rejected = node.handle(.tunnelOpened(TunnelID(3), endpoint: ""), now: .seconds(3))
        #expect(rejected.contains(.closeTunnel(TunnelID(3))))
        #expect(node.checkInvariants() == [])
        // Only tunnel 2 is left to route to; a request without an endpoint is rejected.
        #expect(node.tunnelView.map(\.id) == [TunnelID(2)])
        var router = Fixture.loopRouter(of: node, endpoints: ["svc"])
        #expect(router.decide(endpoint: "svc", forwarded: false) == .local(TunnelID(2)))
        #expect(router.decide(endpoint: nil, forwarded: false) == .reject(.missingEndpoint))
    }

    @Test func test_datagrams_neverExceedMaxPacketSize_evenWithAFullQueue() {
        var node = Self.node()
        for index in 0..<300 {
            _ = node.handle(.tunnelOpened(TunnelID(UInt64(index)), endpoint: "endpoint-with-a-long-name-\(index)"), now: .seconds(1))
        }
        for number in 2..<60 {
            let peer = Fixture.info(UInt64(number))
            _ = node.handle(.datagramReceived(GossipCodec.datagram(sender: peer.uid, messages: [.alive(info: peer, incarnation: 0, draining: false)]), from: peer.gossipAddress), now: .seconds(1))
        }
        var sizes: [Int] = []
        for tick in 0..<50 {
            for directive in node.handle(.timerFired(.gossip), now: .seconds(1) + .milliseconds(200 * Int64(tick))) {
                if case .sendDatagram(let bytes, _) = directive { sizes.append(bytes.count) }
            }
        }
        #expect(!sizes.isEmpty)
        #expect(sizes.allSatisfy { $0 <= 1_400 })
        #expect(sizes.max()! > 1_000, "datagrams are filled")
    }

    @Test func test_afterExit_everyInputIsIgnored() {
        var node = Self.node()
        let shutdown = node.handle(.shutdownRequested, now: .seconds(1))
        #expect(shutdown.contains(.setReadiness(false)))
        let exited = node.handle(.timerFired(.drainHoldEnded), now: .seconds(6))
        #expect(exited.contains(.exit(.left)))
        #expect(node.handle(.timerFired(.probe), now: .seconds(7)).isEmpty)
        #expect(node.handle(.tunnelOpened(TunnelID(1), endpoint: "x"), now: .seconds(7)).isEmpty)
        #expect(node.handle(.routedByLoop(.local(TunnelID(1))), now: .seconds(7)).isEmpty)
        #expect(node.tunnelView.isEmpty)
    }

    @Test func test_drain_keepsServingForTheMinimum_thenForcesTunnelsClosedAtTheDeadline() {
        var node = Self.node()
        let peer = Fixture.info(2)
        _ = node.handle(.datagramReceived(GossipCodec.datagram(sender: peer.uid, messages: [.alive(info: peer, incarnation: 0, draining: false)]), from: peer.gossipAddress), now: .zero)
        _ = node.handle(.tunnelOpened(TunnelID(1), endpoint: "svc"), now: .zero)
        let shutdown = node.handle(.shutdownRequested, now: .seconds(1))
        #expect(shutdown.contains(.tellAgentToMove(TunnelID(1))))
        #expect(shutdown.contains(.schedule(.drainDeadline, at: .seconds(56))))
        // The draining tunnel still serves: nothing else holds the endpoint.
        #expect(node.tunnelView.map(\.isDraining) == [true])
        var router = Fixture.loopRouter(of: node, endpoints: ["svc"])
        #expect(router.decide(endpoint: "svc", forwarded: false) == .local(TunnelID(1)))
        #expect(node.handle(.routedByLoop(.local(TunnelID(1))), now: .seconds(2)).isEmpty)
        #expect(node.tunnelView.map(\.inFlight) == [1])
        _ = node.handle(.streamFinished(TunnelID(1)), now: .seconds(3))
        #expect(node.handle(.timerFired(.drainHoldEnded), now: .seconds(6)).isEmpty, "no replacement yet: the tunnel stays")
        let forced = node.handle(.timerFired(.drainDeadline), now: .seconds(56))
        #expect(forced.contains(.closeTunnel(TunnelID(1))))
        #expect(forced.contains { if case .sendDatagram = $0 { return true } else { return false } }, "left is announced")
        #expect(node.lifecycle.phase == .draining)
    }

    @Test func test_drain_waitsForRelayedStreams_untilTheyEnd_orTheDeadline() {
        // A node without tunnels would leave once the drain minimum passed (5 s); a relayed
        // stream (a TCP route forwarded to its holder) keeps it until the stream ends.
        var node = Self.node()
        _ = node.handle(.relayStarted, now: .zero)
        _ = node.handle(.relayStarted, now: .zero)
        _ = node.handle(.shutdownRequested, now: .seconds(1))
        #expect(node.handle(.timerFired(.drainHoldEnded), now: .seconds(6)).isEmpty, "two relays still run")
        #expect(node.handle(.relayEnded, now: .seconds(20)).isEmpty, "one relay still runs")
        #expect(node.handle(.relayEnded, now: .seconds(30)).contains(.exit(.left)))

        // The deadline ends the wait whatever still runs; unmatched ends are ignored.
        var stuck = Self.node()
        _ = stuck.handle(.relayEnded, now: .zero)
        _ = stuck.handle(.relayStarted, now: .zero)
        _ = stuck.handle(.shutdownRequested, now: .seconds(1))
        #expect(stuck.handle(.timerFired(.drainHoldEnded), now: .seconds(6)).isEmpty)
        #expect(stuck.relays == 1)
        #expect(stuck.handle(.timerFired(.drainDeadline), now: .seconds(56)).contains(.exit(.left)))
    }
}

@Suite("ClusterNode hand-over settle")
struct ClusterNodeHandoverTests {
    @Test func test_drainingTunnel_staysForTheSettleTime_afterItsReplacementAppears() {
        var node = ClusterNodeTests.node()
        let peer = Fixture.info(2)
        _ = node.handle(.datagramReceived(GossipCodec.datagram(sender: peer.uid, messages: [.alive(info: peer, incarnation: 0, draining: false)]), from: peer.gossipAddress), now: .zero)
        _ = node.handle(.tunnelOpened(TunnelID(1), endpoint: "svc"), now: .zero)
        _ = node.handle(.shutdownRequested, now: .seconds(1))
        _ = node.handle(.timerFired(.drainHoldEnded), now: .seconds(6))
        let replacement = EndpointDelta(owner: peer.uid, base: 0, entries: [.init(endpoint: "svc", count: 1, version: 1)])
        let seen = node.handle(.datagramReceived(GossipCodec.datagram(sender: peer.uid, endpointVersion: 1, messages: [.endpointDelta(replacement)]), from: peer.gossipAddress), now: .seconds(7))
        #expect(!seen.contains(.closeTunnel(TunnelID(1))), "other nodes may not know the replacement yet")
        #expect(seen.contains(.schedule(.handoverCheck, at: .seconds(9))))
        #expect(!node.handle(.timerFired(.handoverCheck), now: .milliseconds(8_999)).contains(.closeTunnel(TunnelID(1))))
        #expect(node.handle(.timerFired(.handoverCheck), now: .seconds(9)).contains(.closeTunnel(TunnelID(1))))
    }
}
