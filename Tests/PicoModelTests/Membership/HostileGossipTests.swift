@testable import PicoModel
import Testing

/// Gossip from a hostile network: forged claims about the node itself, and extreme values in every
/// numeric field of every message kind, fed through the real decoder into a running `ClusterNode`.
@Suite("Membership: hostile gossip")
struct HostileGossipTests {
    // MARK: - Forged claims about ourselves

    @Test func test_suspectAboutMe_aboveMyIncarnation_isDroppedAsForged_notRefuted_andANewIdentityTakesOver() {
        var membership = Fixture.running(peers: 2)
        let peer = Fixture.info(2).uid
        let old = membership.me.uid
        // A genuine accusation (at the incarnation we published) is refuted, by one step.
        let genuine = membership.receive([.suspect(subject: old, incarnation: 0, accuser: peer)], from: 2, now: .seconds(1))
        #expect(membership.incarnation == 1 && genuine.events == [.refuted(incarnation: 1)])
        let forged = membership.receive([.suspect(subject: old, incarnation: UInt64.max, accuser: peer)], from: 2, now: .seconds(2))
        #expect(forged.events.first == .forgedClaimDropped(.suspect, claimedIncarnation: UInt64.max, ownIncarnation: 1))
        #expect(!forged.events.contains { if case .refuted = $0 { true } else { false } }, "never refuted past a forged number")
        // Peers may believe it and ignore us from now on: a new UID, which nobody was told lies about.
        #expect(membership.me.uid != old && membership.incarnation == 0)
        #expect(forged.events.contains(.reborn(old: old, new: membership.me.uid)))
        #expect(forged.broadcasts.contains(membership.aliveMessage()))
    }

    @Test func test_forgedClaims_causeAtMostOneNewIdentityPerInterval() {
        var membership = Fixture.running(peers: 2)
        let first = membership.me.uid
        _ = membership.receive([.alive(info: membership.me, incarnation: UInt64.max, draining: false)], from: 2, now: .seconds(1))
        let second = membership.me.uid
        #expect(second != first)
        // The forger learns the new UID at once and tries again: dropped, counted, no new churn.
        var info = membership.me
        for incarnation in [UInt64.max, UInt64.max - 1, 1] {
            info.uid = second
            let again = membership.receive([.alive(info: info, incarnation: incarnation, draining: false)], from: 2, now: .milliseconds(1_200))
            #expect(again.events == [.forgedClaimDropped(.alive, claimedIncarnation: incarnation, ownIncarnation: 0)])
        }
        #expect(membership.me.uid == second && membership.incarnation == 0, "two datagrams cannot pin the maximum")
        // But peers may have believed it: the new identity is owed, and taken once the interval allows.
        _ = membership.onGossipTick(hasBroadcasts: false, now: .seconds(10))
        #expect(membership.me.uid == second)
        let owed = membership.onGossipTick(hasBroadcasts: false, now: .milliseconds(11_100))
        let third = membership.me.uid
        #expect(third != second && owed.events.contains(.reborn(old: second, new: third)))
        _ = membership.onGossipTick(hasBroadcasts: false, now: .seconds(12))
        #expect(membership.me.uid == third, "owed once, taken once")
        _ = membership.receive([.suspect(subject: third, incarnation: 7, accuser: Fixture.info(2).uid)], from: 2, now: .seconds(22))
        #expect(membership.me.uid != third, "after forgeryRebirthInterval a forgery moves us again at once")
        // A stale alive of ours that disagrees on draining is refuted at our own incarnation.
        let stale = membership.receive([.alive(info: membership.me, incarnation: 0, draining: true)], from: 2, now: .seconds(12))
        #expect(stale.events == [.refuted(incarnation: 1)] && membership.incarnation == 1)
    }

    @Test func test_forgedClaimsInAStateExchange_areDroppedToo() {
        var membership = Fixture.running(peers: 2)
        let directives = membership.mergeState(
            members: [StateExchange.MemberRecord(info: Fixture.me, state: MemberState(.suspect, UInt64.max), draining: false)],
            tombstones: [], sender: Fixture.info(2).uid, now: .seconds(1))
        #expect(membership.incarnation == 0)
        #expect(directives.events.contains(.forgedClaimDropped(.alive, claimedIncarnation: UInt64.max, ownIncarnation: 0)))
        #expect(membership.checkInvariants() == [])
    }

    @Test func test_leftAboutMe_whileRunning_takesANewIdentity_soPeersThatBelievedItListUsAgain() {
        // Peers holding a forged `left` about us answer our datagrams with it and never list us
        // again; ignoring it (as before) left us outside the cluster for good.
        var membership = Fixture.running(peers: 2)
        let old = membership.me.uid
        let directives = membership.receive([.left(subject: old, incarnation: 0)], from: 2, now: .seconds(1))
        #expect(membership.me.uid != old && directives.events.contains(.reborn(old: old, new: membership.me.uid)))
        // Our own `left`, echoed back while we leave, changes nothing.
        _ = membership.startLeave(now: .seconds(2))
        let me = membership.me.uid
        _ = membership.receive([.left(subject: me, incarnation: 0)], from: 2, now: .seconds(3))
        #expect(membership.me.uid == me)
    }

    @Test func test_deadAboutMe_isObeyed_atAnyIncarnation_soPeersThatBelievedAForgeryTakeUsBack() {
        // A peer that took a forged suspect@max for news declares us dead at max; dropping that
        // would leave us outside the cluster for good. A new UID rejoins instead.
        var membership = Fixture.running(peers: 2)
        let old = membership.me.uid
        let directives = membership.receive([.dead(subject: old, incarnation: UInt64.max, accuser: Fixture.info(2).uid)], from: 2, now: .seconds(1))
        #expect(membership.me.uid != old && membership.incarnation == 0)
        #expect(directives.events.contains(.reborn(old: old, new: membership.me.uid)))
    }

    @Test func test_drainingAtTheMaximumIncarnation_takesANewIdentity_insteadOfTrapping() {
        var membership = Fixture.running(peers: 2)
        membership.incarnation = UInt64.max
        let old = membership.me.uid
        let directives = membership.startDraining(now: .seconds(1))
        #expect(membership.me.uid != old && membership.isDraining)
        #expect(directives.broadcasts.contains(membership.aliveMessage()))
        membership.incarnation = UInt64.max
        let refutation = membership.receive([.suspect(subject: membership.me.uid, incarnation: UInt64.max, accuser: Fixture.info(2).uid)], from: 2, now: .seconds(2))
        #expect(membership.incarnation == 0 && refutation.events.contains { if case .reborn = $0 { true } else { false } })
    }

    @Test func test_aForgedVersionOfOurOwnEndpoints_isDropped_andANewIdentityRepublishesThem() {
        // A forged delta about a real owner at a version near 2^64 made every peer ignore the
        // owner's real updates for as long as its UID lived (the nemesis's forged-endpoints).
        var (node, peers) = Self.runningNode()
        _ = node.handle(.tunnelOpened(TunnelID(1), endpoint: "mine"), now: .seconds(2))
        let old = node.me.uid
        let echo = GossipMessage.endpointDelta(EndpointDelta(owner: old, base: 0, entries: [.init(endpoint: "mine", count: 1, version: 1)]))
        _ = node.handle(Self.datagram(from: peers[0].uid, [echo], at: peers[0].gossipAddress), now: .seconds(3))
        #expect(node.me.uid == old, "our own delta, echoed, is no forgery")
        let forged = GossipMessage.endpointDelta(EndpointDelta(owner: old, base: 0, entries: [.init(endpoint: "mine", count: 9, version: UInt64.max - 1)]))
        let directives = node.handle(Self.datagram(from: peers[0].uid, [forged], at: peers[0].gossipAddress), now: .seconds(4))
        #expect(directives.contains(.event(.membership(.forgedClaimDropped(.endpointVersion, claimedIncarnation: UInt64.max - 1, ownIncarnation: 1)))))
        #expect(node.me.uid != old)
        #expect(node.endpointView.contains { $0.endpoint == "mine" && $0.owners.map(\.owner) == [node.me.uid] }, "republished under the new UID")
        #expect(node.checkInvariants() == [])
    }

    // MARK: - Bounded tables under a flood

    @Test func test_floodOfDeadAboutMadeUpUIDs_keepsTombstonesBounded_evictingTheOldestFirst() {
        var settings = MembershipSettings()
        settings.maxTombstones = 100
        var membership = Fixture.running(peers: 2, settings: settings)
        for batch in 0..<40 {
            let messages = (0..<25).map { GossipMessage.dead(subject: NodeUID(UInt64(1_000_000 + batch * 25 + $0)), incarnation: 0, accuser: Fixture.info(2).uid) }
            _ = membership.receive(messages, from: 2, now: .seconds(Int64(1 + batch)))
        }
        #expect(membership.tombstoneList.count == 100)
        #expect(membership.tombstone(NodeUID(1_000_000)) == nil, "the first recorded went first")
        #expect(membership.tombstone(NodeUID(1_000_999)) != nil)
        #expect(membership.tombstoneQueue.storedCount <= 2 * 100 + 64)
    }

    @Test func test_membersMadeUpAndKilledFasterThanTheyAreReaped_stayWithinTheBounds() {
        var settings = MembershipSettings()
        settings.maxMembers = 8
        var membership = Fixture.running(peers: 2, settings: settings)
        for round in 0..<50 {
            let infos = (0..<6).map { Fixture.info(UInt64(100 + round * 6 + $0)) }
            _ = membership.receive(infos.map { .alive(info: $0, incarnation: 0, draining: false) }, from: 2, now: .seconds(Int64(1 + round)))
            _ = membership.receive(infos.map { .dead(subject: $0.uid, incarnation: 0, accuser: Fixture.info(2).uid) }, from: 2, now: .seconds(Int64(1 + round)))
            #expect(membership.memberList.count <= 2 * 8)
            #expect(membership.probeOrder.count <= 2 * 8)
        }
        #expect(membership.isLive(Fixture.info(2).uid) && membership.isLive(Fixture.info(3).uid), "real members stay")
    }

    // MARK: - Extreme values in every field, through the decoder and the whole node

    static let wide: [UInt64] = [0, 1, UInt64.max - 1, UInt64.max]
    static let narrow: [UInt32] = [0, 1, UInt32.max - 1, UInt32.max]
    static let ports: [UInt16] = [0, 1, UInt16.max - 1, UInt16.max]

    /// A running node that knows three peers, one of which published an endpoint.
    static func runningNode() -> (node: ClusterNode, peers: [NodeInfo]) {
        var node = try! ClusterNode(configuration: Fixture.configuration(0, seed: 5, join: []))
        _ = node.handle(.start, now: .zero)
        let peers = (1...3).map { index in
            NodeInfo(
                uid: NodeUID(UInt64(index) * 0x1_0001), name: "peer-\(index)", gossipAddress: Fixture.address(index),
                proxyAddress: Fixture.address(index, port: 8000), adminAddress: Fixture.address(index, port: 8002), epoch: 0)
        }
        let alive = peers.map { GossipMessage.alive(info: $0, incarnation: 0, draining: false) }
        let delta = GossipMessage.endpointDelta(EndpointDelta(owner: peers[0].uid, base: 0, entries: [.init(endpoint: "api", count: 2, version: 1)]))
        _ = node.handle(Self.datagram(from: peers[0].uid, endpointVersion: 1, alive + [delta], at: peers[0].gossipAddress), now: .seconds(1))
        #expect(node.memberViews.count == 4 && node.endpointView.count == 1)
        return (node, peers)
    }

    /// A UID the node has never heard of, at an address nobody else uses.
    static let stranger = NodeInfo(
        uid: NodeUID(0xBAD), name: "x", gossipAddress: Fixture.address(40), proxyAddress: Fixture.address(40, port: 8000),
        adminAddress: Fixture.address(40, port: 8002), epoch: 0)

    static func datagram(from sender: NodeUID, endpointVersion: UInt64 = 0, _ messages: [GossipMessage], at address: Address) -> ClusterInput {
        .datagramReceived(GossipCodec.datagram(sender: sender, endpointVersion: endpointVersion, encodedMessages: messages.map { GossipCodec.encode($0) }), from: address)
    }

    /// Every message kind, with every numeric field at 0, 1, max−1 and max, about `subject`.
    static func extremeMessages(about subject: NodeInfo, accuser: NodeUID) -> [GossipMessage] {
        var messages: [GossipMessage] = []
        for sequence in Self.narrow {
            messages.append(.ping(sequence: sequence, target: subject.uid))
            messages.append(.nack(sequence: sequence, target: subject.uid))
            for port in Self.ports {
                messages.append(.pingRequest(sequence: sequence, target: subject.uid, targetAddress: Address(host: subject.gossipAddress.host, port: port)))
            }
            for incarnation in Self.wide { messages.append(.ack(sequence: sequence, target: subject.uid, incarnation: incarnation)) }
        }
        for incarnation in Self.wide {
            for epoch in Self.wide {
                var info = subject
                info.epoch = epoch
                messages.append(.alive(info: info, incarnation: incarnation, draining: false))
                messages.append(.alive(info: info, incarnation: incarnation, draining: true))
            }
            messages.append(.suspect(subject: subject.uid, incarnation: incarnation, accuser: accuser))
            messages.append(.dead(subject: subject.uid, incarnation: incarnation, accuser: accuser))
            messages.append(.left(subject: subject.uid, incarnation: incarnation))
        }
        messages.append(.leaveAck(subject: subject.uid))
        for base in Self.wide {
            for count in Self.narrow {
                // The highest version a delta can carry above `base` (one step, or none at the top).
                let entries: [EndpointDelta.Entry] = base == UInt64.max ? [] : [.init(endpoint: "api", count: count, version: UInt64.max)]
                messages.append(.endpointDelta(EndpointDelta(owner: subject.uid, base: base, entries: entries)))
                if base < UInt64.max - 1 {
                    messages.append(.endpointDelta(EndpointDelta(owner: subject.uid, base: base, entries: [.init(endpoint: "web", count: count, version: base + 1)])))
                }
            }
        }
        return messages
    }

    @Test(arguments: ["me", "peer", "stranger", "uid-0", "uid-max"])
    func test_extremeValues_inEveryFieldOfEveryKind_neitherTrapNorBreakInvariants_norRaiseOurIncarnationByMoreThanOne(_ who: String) {
        let (base, peers) = Self.runningNode()
        let subject: NodeInfo
        switch who {
        case "me": subject = base.me
        case "peer": subject = peers[1]
        case "stranger": subject = Self.stranger
        case "uid-0": subject = NodeInfo(uid: NodeUID(0), name: "", gossipAddress: Fixture.address(41), proxyAddress: Fixture.address(41, port: 0), adminAddress: Fixture.address(41, port: UInt16.max), epoch: UInt64.max)
        default: subject = NodeInfo(uid: NodeUID(UInt64.max), name: "max", gossipAddress: Fixture.address(42), proxyAddress: Fixture.address(42), adminAddress: Fixture.address(42), epoch: 0)
        }
        let senders = [peers[0].uid, peers[2].uid, NodeUID(0), NodeUID(UInt64.max), base.me.uid]
        var checked = 0
        for message in Self.extremeMessages(about: subject, accuser: peers[2].uid) {
            for sender in senders {
                for endpointVersion in Self.wide {
                    // Alone, then behind a genuine message from the sender (one datagram each).
                    var node = base
                    let before = node.membership.incarnation
                    _ = node.handle(Self.datagram(from: sender, endpointVersion: endpointVersion, [message], at: peers[0].gossipAddress), now: .seconds(2))
                    _ = node.handle(Self.datagram(from: sender, endpointVersion: endpointVersion, [.ping(sequence: 9, target: node.me.uid), message], at: peers[0].gossipAddress), now: .seconds(3))
                    let problems = node.checkInvariants()
                    #expect(problems == [], "\(message) from \(sender): \(problems)")
                    if node.me.uid == base.me.uid {
                        #expect(node.membership.incarnation <= before + 2, "\(message) raised our incarnation to \(node.membership.incarnation)")
                    } else {
                        #expect(node.membership.incarnation == 0, "a new identity starts at zero")
                    }
                    // The node goes on working: timers run without trapping or breaking invariants.
                    for second in 4...8 {
                        for timer in [TimerID.probe, .gossip] { _ = node.handle(.timerFired(timer), now: .seconds(Int64(second))) }
                    }
                    #expect(node.checkInvariants() == [])
                    checked += 1
                }
            }
        }
        #expect(checked > 1_000)
    }

    @Test(arguments: ["me", "peer", "stranger"])
    func test_extremeValues_inEveryFieldOfAStateExchange_neitherTrapNorBreakInvariants(_ who: String) {
        let (base, peers) = Self.runningNode()
        let subject: NodeInfo
        switch who {
        case "me": subject = base.me
        case "peer": subject = peers[1]
        default: subject = Self.stranger
        }
        var checked = 0
        for value in Self.wide {
            for status in [MemberStatus.alive, .suspect, .dead, .left] {
                for count in Self.narrow {
                    var info = subject
                    info.epoch = value
                    let state = StateExchange(
                        purpose: .pushPull, isReply: false, sender: peers[0].uid,
                        members: [StateExchange.MemberRecord(info: info, state: MemberState(status, value), draining: value % 2 == 1)],
                        tombstones: [StateExchange.TombstoneRecord(uid: subject.uid, status: status == .left ? .left : .dead, incarnation: value, address: nil)]
                            .filter { _ in status.isTerminal },
                        endpoints: [StateExchange.EndpointSnapshot(owner: subject.uid, version: value, entries: value == 0 ? [] : [.init(endpoint: "api", count: count, version: value)])])
                    var node = base
                    let before = node.membership.incarnation
                    _ = node.handle(.stateExchangeRequested(ExchangeID(1), bytes: GossipCodec.encode(state), from: peers[0].gossipAddress), now: .seconds(2))
                    #expect(node.checkInvariants() == [], "\(status) at \(value), count \(count), about \(who)")
                    if node.me.uid == base.me.uid { #expect(node.membership.incarnation <= before + 1) }
                    for second in 3...6 {
                        for timer in [TimerID.probe, .gossip, .pushPull] { _ = node.handle(.timerFired(timer), now: .seconds(Int64(second))) }
                    }
                    #expect(node.checkInvariants() == [])
                    checked += 1
                }
            }
        }
        #expect(checked == 64)
    }
}
