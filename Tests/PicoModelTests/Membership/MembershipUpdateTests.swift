@testable import PicoModel
import Testing

@Suite("Membership: updates, refutation, tombstones, identity")
struct MembershipUpdateTests {
    let peer = Fixture.info(2)

    @Test func test_datagramFromAStranger_startsOneFullStateSync_perProbeInterval() {
        var membership = Fixture.running(peers: 2)
        let stranger = Fixture.info(9)
        let first = membership.receive([.ping(sequence: 1, target: Fixture.me.uid)], from: 9, now: .seconds(1))
        #expect(first.contains(.exchangeState(with: stranger.gossipAddress, purpose: .pushPull)))
        let again = membership.receive([.ping(sequence: 2, target: Fixture.me.uid)], from: 9, now: .milliseconds(1_500))
        #expect(!again.contains { if case .exchangeState = $0 { true } else { false } }, "at most one per probe interval")
        let known = membership.receive([.ping(sequence: 3, target: Fixture.me.uid)], from: 2, now: .seconds(3))
        #expect(!known.contains { if case .exchangeState = $0 { true } else { false } }, "a member is no stranger")
        let introduced = membership.receive([.alive(info: Fixture.info(8), incarnation: 0, draining: false)], from: 8, now: .seconds(5))
        #expect(!introduced.contains { if case .exchangeState = $0 { true } else { false } }, "it introduced itself")
        _ = membership.receive([.dead(subject: Fixture.info(7).uid, incarnation: 0, accuser: Fixture.info(2).uid)], from: 2, now: .seconds(6))
        let tombstoned = membership.receive([.ping(sequence: 4, target: Fixture.me.uid)], from: 7, now: .seconds(8))
        #expect(!tombstoned.contains { if case .exchangeState = $0 { true } else { false } }, "a dead UID is told so instead")
    }

    @Test func test_suspicionOfATombstonedUID_isAnsweredWithTheTombstone_atTheSuspectersIncarnation() {
        var membership = Fixture.running(peers: 3)
        let (gone, left) = (Fixture.info(2).uid, Fixture.info(3).uid)
        _ = membership.receive([.dead(subject: gone, incarnation: 0, accuser: Fixture.info(4).uid)], from: 4, now: .seconds(1))
        _ = membership.receive([.left(subject: left, incarnation: 2)], from: 3, now: .seconds(1))
        // Peer 4 missed both and, having seen a refutation we never saw, suspects them at incarnation 1.
        let echoed = membership.receive(
            [.suspect(subject: gone, incarnation: 1, accuser: Fixture.info(4).uid), .suspect(subject: left, incarnation: 1, accuser: Fixture.info(4).uid)],
            from: 4, now: .seconds(2))
        #expect(echoed.broadcasts == [.dead(subject: gone, incarnation: 1, accuser: Fixture.me.uid), .left(subject: left, incarnation: 2)])
        #expect(membership.tombstone(gone)?.status == .dead && membership.tombstone(left)?.status == .left)
        // Gossip may miss the suspecter (seed 2911): the echo also goes straight to it.
        let direct = echoed.sends.filter { $0.to == Fixture.info(4).gossipAddress }.flatMap(\.messages)
        #expect(direct == [.dead(subject: gone, incarnation: 1, accuser: Fixture.me.uid), .left(subject: left, incarnation: 2)])
    }

    @Test func test_aliveAboveATombstonesIncarnation_isAnsweredWithTheTombstone_butAnOlderOneIsNot() {
        // seed 2911: a refutation held on the wire reached a node cut off when the death was
        // announced; it took the UID for alive again and gossiped it.
        var membership = Fixture.running(peers: 3)
        let gone = Fixture.info(2)
        _ = membership.receive([.dead(subject: gone.uid, incarnation: 0, accuser: Fixture.info(4).uid)], from: 4, now: .seconds(1))
        let stale = membership.receive([.alive(info: gone, incarnation: 0, draining: false)], from: 3, now: .seconds(2))
        #expect(stale.broadcasts == [], "nobody takes alive(0) over dead(0): nothing to answer")
        let news = membership.receive([.alive(info: gone, incarnation: 1, draining: false)], from: 3, now: .seconds(3))
        #expect(news.broadcasts == [.dead(subject: gone.uid, incarnation: 1, accuser: Fixture.me.uid)])
        #expect(membership.member(gone.uid)?.state.status != .alive && membership.tombstone(gone.uid)?.status == .dead)
    }

    @Test func test_probeRequestForATombstonedUID_isAnsweredWithTheTombstone_notRelayed() {
        var membership = Fixture.running(peers: 3)
        let gone = Fixture.info(2)
        _ = membership.receive([.dead(subject: gone.uid, incarnation: 3, accuser: Fixture.info(4).uid)], from: 4, now: .seconds(1))
        let answer = membership.receive(
            [.pingRequest(sequence: 7, target: gone.uid, targetAddress: gone.gossipAddress)], from: 3, now: .seconds(2))
        #expect(answer.sends.filter { $0.to == gone.gossipAddress }.isEmpty, "no ping to a UID known gone")
        #expect(answer.sends.filter { $0.to == Fixture.info(3).gossipAddress }.flatMap(\.messages) == [.dead(subject: gone.uid, incarnation: 3, accuser: Fixture.me.uid)])
    }

    @Test func test_manyAccusationsInOneDatagram_refuteEach_butTellEveryMemberDirectlyOnce() {
        var membership = Fixture.running(peers: 2)
        let flood = (0..<UInt64(20)).map { GossipMessage.suspect(subject: Fixture.me.uid, incarnation: $0, accuser: self.peer.uid) }
        let answered = membership.receive(flood, from: 2, now: .seconds(1))
        #expect(membership.incarnation == 20)
        #expect(answered.sends.count == 2, "one direct copy per member, not one per accusation: \(answered.sends.count)")
        let later = membership.receive([.suspect(subject: Fixture.me.uid, incarnation: 20, accuser: self.peer.uid)], from: 2, now: .seconds(2))
        #expect(later.sends.count == 2, "a probe interval later, the next refutation goes directly again")
    }

    @Test func test_aliveAtTheSameIncarnation_turnsDrainingOn_evenAfterAnAckCarriedThatIncarnation() {
        var membership = Fixture.running(peers: 3)
        _ = membership.receive([.suspect(subject: self.peer.uid, incarnation: 0, accuser: Fixture.info(3).uid)], from: 3, now: .seconds(1))
        // An ack (no draining flag) brings incarnation 1 first; the drain's own `alive` comes after.
        _ = membership.receive([.ack(sequence: 77, target: self.peer.uid, incarnation: 1)], from: 2, now: .seconds(2))
        #expect(membership.member(self.peer.uid)?.state == MemberState(.alive, 1))
        #expect(membership.member(self.peer.uid)?.draining == false)
        let drain = membership.receive([.alive(info: self.peer, incarnation: 1, draining: true)], from: 2, now: .seconds(3))
        #expect(membership.member(self.peer.uid)?.draining == true)
        #expect(drain.events.contains(.memberDraining(uid: self.peer.uid, name: self.peer.name)))
        let undo = membership.receive([.alive(info: self.peer, incarnation: 1, draining: false)], from: 2, now: .seconds(4))
        #expect(undo.events.isEmpty && membership.member(self.peer.uid)?.draining == true, "never back off within an incarnation")
    }

    @Test func test_suspectAboutMe_shouldRefute_withIncarnationPastTheAccusers() {
        var membership = Fixture.running(peers: 2)
        let first = membership.receive([.suspect(subject: Fixture.me.uid, incarnation: 0, accuser: self.peer.uid)], from: 2, now: .seconds(1))
        #expect(membership.incarnation == 1)
        #expect(first.broadcasts == [.alive(info: Fixture.me, incarnation: 1, draining: false)])
        #expect(first.events == [.refuted(incarnation: 1)])
        #expect(membership.localHealth == 1)
        // Told to every member directly too: each heard the accusation and runs its own timer.
        let told = first.sends.filter { $0.messages == [.alive(info: Fixture.me, incarnation: 1, draining: false)] }.map(\.to)
        #expect(Set(told) == [Fixture.info(2).gossipAddress, Fixture.info(3).gossipAddress])
        #expect(told.count == 2)
        _ = membership.receive([.suspect(subject: Fixture.me.uid, incarnation: 1, accuser: self.peer.uid)], from: 2, now: .seconds(2))
        #expect(membership.incarnation == 2)
        let stale = membership.receive([.suspect(subject: Fixture.me.uid, incarnation: 0, accuser: self.peer.uid)], from: 2, now: .seconds(3))
        #expect(stale.broadcasts == [] && membership.incarnation == 2, "an older accusation needs no refutation")
    }

    @Test func test_aliveWithHigherIncarnation_shouldClearSuspicion_butEqualShouldNot() {
        var membership = Fixture.running(peers: 3)
        _ = membership.receive([.suspect(subject: self.peer.uid, incarnation: 0, accuser: Fixture.info(3).uid)], from: 3, now: .seconds(1))
        _ = membership.receive([.alive(info: self.peer, incarnation: 0, draining: false)], from: 4, now: .seconds(2))
        #expect(membership.member(self.peer.uid)?.state == MemberState(.suspect, 0))
        let refuted = membership.receive([.alive(info: self.peer, incarnation: 1, draining: false)], from: 2, now: .seconds(3))
        #expect(membership.member(self.peer.uid)?.state == MemberState(.alive, 1))
        #expect(refuted.broadcasts == [.alive(info: self.peer, incarnation: 1, draining: false)])
        #expect(membership.onSuspicionTimer(self.peer.uid, now: .seconds(60)).broadcasts == [], "the old timer is stale")
    }

    @Test func test_deadWithOlderIncarnation_isIgnored_andDeadIsTerminal() {
        var membership = Fixture.running(peers: 3)
        _ = membership.receive([.alive(info: self.peer, incarnation: 4, draining: false)], from: 2, now: .seconds(1))
        _ = membership.receive([.dead(subject: self.peer.uid, incarnation: 3, accuser: Fixture.info(3).uid)], from: 3, now: .seconds(2))
        #expect(membership.member(self.peer.uid)?.state.status == .alive)
        let dead = membership.receive([.dead(subject: self.peer.uid, incarnation: 4, accuser: Fixture.info(3).uid)], from: 3, now: .seconds(3))
        #expect(dead.broadcasts == [.dead(subject: self.peer.uid, incarnation: 4, accuser: Fixture.info(3).uid)])
        _ = membership.receive([.alive(info: self.peer, incarnation: 99, draining: false)], from: 4, now: .seconds(4))
        #expect(membership.member(self.peer.uid)?.state.status == .dead, "no incarnation brings a dead UID back")
    }

    @Test func test_tombstonedUID_isNeverReAdded_untilItsTombstoneExpires() {
        var settings = MembershipSettings()
        settings.tombstoneTimeToLive = .seconds(600)
        var membership = Fixture.running(peers: 3, settings: settings)
        _ = membership.receive([.dead(subject: self.peer.uid, incarnation: 0, accuser: Fixture.info(3).uid)], from: 3, now: .seconds(1))
        _ = membership.onProbeTick(now: .seconds(40))
        #expect(membership.member(self.peer.uid) == nil, "dropped from the list after gossipToTheDeadTime")
        #expect(membership.tombstone(self.peer.uid) != nil)
        let joined = membership.receive([.alive(info: self.peer, incarnation: 0, draining: false)], from: 3, now: .seconds(300))
        #expect(!joined.events.contains(.memberJoined(self.peer)))
        #expect(membership.member(self.peer.uid) == nil)
        _ = membership.onProbeTick(now: .seconds(602))
        #expect(membership.tombstone(self.peer.uid) == nil, "expired after its time to live")
    }

    @Test func test_deadAboutUnknownUID_isRemembered_soALateAliveCannotAddIt() {
        var membership = Fixture.running(peers: 1)
        let stranger = Fixture.info(9)
        _ = membership.receive([.dead(subject: stranger.uid, incarnation: 0, accuser: self.peer.uid)], from: 2, now: .seconds(1))
        _ = membership.receive([.alive(info: stranger, incarnation: 0, draining: false)], from: 2, now: .seconds(2))
        #expect(membership.member(stranger.uid) == nil)
    }

    @Test func test_newUIDOnKnownAddress_confirmsTheOldDeadAtOnce_butAnOlderOneIsIgnored() {
        var membership = Fixture.running(peers: 2)
        let restarted = NodeInfo(
            uid: NodeUID(0xBEEF), name: "node-2-new", gossipAddress: self.peer.gossipAddress,
            proxyAddress: self.peer.proxyAddress, adminAddress: self.peer.adminAddress, epoch: 5)
        let directives = membership.receive([.alive(info: restarted, incarnation: 0, draining: false)], from: 2, now: .seconds(1))
        #expect(membership.tombstone(self.peer.uid)?.status == .dead)
        #expect(membership.member(restarted.uid)?.state.status == .alive)
        #expect(directives.broadcasts.contains(.dead(subject: self.peer.uid, incarnation: 0, accuser: Fixture.me.uid)))
        // A late rumour of an even earlier process at that address does not displace the new one.
        var ancient = restarted
        ancient.uid = NodeUID(0xABCD)
        ancient.epoch = 1
        _ = membership.receive([.alive(info: ancient, incarnation: 7, draining: false)], from: 3, now: .seconds(2))
        #expect(membership.member(restarted.uid)?.state.status == .alive)
        #expect(membership.member(ancient.uid) == nil)
    }

    @Test func test_deadAboutMe_shouldRebirthWithANewUID() {
        var membership = Fixture.running(peers: 2)
        let directives = membership.receive([.dead(subject: Fixture.me.uid, incarnation: 0, accuser: self.peer.uid)], from: 2, now: .seconds(1))
        #expect(membership.me.uid != Fixture.me.uid)
        #expect(membership.me.name == Fixture.me.name)
        #expect(membership.me.epoch == Fixture.me.epoch + 1)
        #expect(membership.incarnation == 0)
        #expect(directives.events == [.reborn(old: Fixture.me.uid, new: membership.me.uid)])
        #expect(directives.broadcasts == [membership.aliveMessage()])
        #expect(membership.tombstone(Fixture.me.uid)?.status == .dead)
    }

    @Test func test_rebirth_doesNotTurnOurOwnSuspicionIntoAConfirmation() {
        var membership = Fixture.running(peers: 4)
        let subject = Fixture.info(3).uid
        _ = membership.receive([.suspect(subject: subject, incarnation: 0, accuser: Fixture.me.uid)], from: 2, now: .seconds(1))
        _ = membership.receive([.dead(subject: Fixture.me.uid, incarnation: 0, accuser: self.peer.uid)], from: 2, now: .seconds(2))
        let again = membership.receive([.suspect(subject: subject, incarnation: 0, accuser: membership.me.uid)], from: 2, now: .seconds(3))
        #expect(again.scheduled(.suspicion(subject)) == nil, "the same node under a new UID is not an independent confirmation")
        let echoed = membership.receive([.suspect(subject: subject, incarnation: 0, accuser: Fixture.me.uid)], from: 4, now: .seconds(4))
        #expect(echoed.scheduled(.suspicion(subject)) == nil, "our old accusation echoed back by gossip is not a confirmation either")
    }

    @Test func test_messageFromATombstonedSender_isAnsweredWithItsDeath() {
        var membership = Fixture.running(peers: 2)
        _ = membership.receive([.dead(subject: self.peer.uid, incarnation: 0, accuser: Fixture.info(3).uid)], from: 3, now: .seconds(1))
        let told = membership.receive([.ping(sequence: 1, target: Fixture.me.uid)], from: 2, now: .seconds(2))
        #expect(told.sends.map(\.messages) == [[.dead(subject: self.peer.uid, incarnation: 0, accuser: Fixture.me.uid)]])
        let again = membership.receive([.ping(sequence: 2, target: Fixture.me.uid)], from: 2, now: .milliseconds(2_050))
        #expect(again.sends.isEmpty, "rate-limited to once per gossip interval, and no ack for the dead")
    }

    @Test func test_leftSupersedesDead_andIsAcknowledgedToTheLeaver() {
        var membership = Fixture.running(peers: 2)
        _ = membership.receive([.dead(subject: self.peer.uid, incarnation: 0, accuser: Fixture.info(3).uid)], from: 3, now: .seconds(1))
        let directives = membership.receive([.left(subject: self.peer.uid, incarnation: 0)], from: 2, now: .seconds(2))
        #expect(membership.tombstone(self.peer.uid)?.status == .left)
        #expect(membership.member(self.peer.uid)?.state.status == .left)
        #expect(directives.sends.first?.messages == [.leaveAck(subject: self.peer.uid)])
        _ = membership.receive([.dead(subject: self.peer.uid, incarnation: 0, accuser: Fixture.info(3).uid)], from: 3, now: .seconds(3))
        #expect(membership.member(self.peer.uid)?.state.status == .left)
    }

    @Test func test_drainingAnnouncement_raisesIncarnationAndIsSeenByPeers() {
        var membership = Fixture.running(peers: 1)
        let directives = membership.startDraining(now: .seconds(1))
        #expect(membership.incarnation == 1 && membership.isDraining)
        #expect(directives.broadcasts == [.alive(info: Fixture.me, incarnation: 1, draining: true)])
        var observer = try! Membership(me: self.peer, seeds: [], settings: MembershipSettings(), rng: SplitMix64(seed: 3))
        _ = observer.start(now: .zero)
        let seen = observer.onDatagram(sender: Fixture.me.uid, from: Fixture.me.gossipAddress, messages: [.alive(info: Fixture.me, incarnation: 0, draining: false)], now: .zero)
        #expect(seen.events.contains(.memberJoined(Fixture.me)))
        let draining = observer.onDatagram(sender: Fixture.me.uid, from: Fixture.me.gossipAddress, messages: directives.broadcasts, now: .seconds(1))
        #expect(observer.member(Fixture.me.uid)?.draining == true)
        #expect(draining.events.contains(.memberDraining(uid: Fixture.me.uid, name: Fixture.me.name)))
    }

    @Test func test_drainingAnnouncement_isAlsoSentDirectlyToEveryAliveMember_upToTheLimit() {
        var membership = Fixture.running(peers: 4)
        _ = membership.receive([.suspect(subject: Fixture.info(5).uid, incarnation: 0, accuser: Fixture.info(2).uid)], from: 2, now: .milliseconds(500))
        let directives = membership.startDraining(now: .seconds(1))
        let announcement = GossipMessage.alive(info: Fixture.me, incarnation: 1, draining: true)
        #expect(Set(directives.sends.map(\.to)) == Set([2, 3, 4].map { Fixture.info($0).gossipAddress }), "every alive member, not the suspect")
        #expect(directives.sends.allSatisfy { $0.messages == [announcement] })
        var settings = MembershipSettings()
        settings.directAnnouncementLimit = 1
        var limited = Fixture.running(peers: 4, settings: settings)
        #expect(limited.startDraining(now: .seconds(1)).sends.count == 1)
    }
}

@Suite("Membership: gossip, leave, join")
struct MembershipLifecycleTests {
    @Test func test_gossipTick_sendsOnlyWhenBroadcastsArePending_andAlwaysReschedules() {
        var membership = Fixture.running(peers: 5)
        let idle = membership.onGossipTick(hasBroadcasts: false, now: .seconds(1))
        #expect(idle.sends.isEmpty)
        #expect(idle.scheduled(.gossip) == .milliseconds(1_200))
        let busy = membership.onGossipTick(hasBroadcasts: true, now: .milliseconds(1_200))
        #expect(busy.sends.count == 3)
        #expect(busy.sends.allSatisfy { $0.messages.isEmpty && $0.piggyback })
        #expect(Set(busy.sends.map(\.to)).count == 3)
    }

    @Test func test_gossipTick_tellsEachRecentlyDeadMemberItsOwnDeath_untilGossipToTheDeadTime() {
        // Fuzz seed 516: a 2-pod cluster cut in two; each side declared the other dead, and once the
        // cut healed nothing crossed it for seconds (the `dead` broadcasts were spent during the
        // cut, probes of the dead stop, reconnect runs every 10 s), so requests got 502 although
        // the holder was reachable again. Every gossip round now tells the dead directly.
        var membership = Fixture.running(peers: 3)
        let gone = Fixture.info(2)
        _ = membership.receive([.dead(subject: gone.uid, incarnation: 4, accuser: Fixture.info(3).uid)], from: 3, now: .seconds(1))
        let round = membership.onGossipTick(hasBroadcasts: false, now: .milliseconds(1_200))
        #expect(round.sends.count == 1)
        #expect(round.sends.first?.to == gone.gossipAddress)
        #expect(round.sends.first?.messages == [.dead(subject: gone.uid, incarnation: 4, accuser: Fixture.me.uid)])
        #expect(round.sends.first?.piggyback == false, "broadcasts are not spent on an address that may be gone")
        let next = membership.onGossipTick(hasBroadcasts: false, now: .milliseconds(1_400))
        #expect(next.sends.map(\.to) == [gone.gossipAddress], "every round, not once")
        let late = membership.onGossipTick(hasBroadcasts: false, now: .seconds(31))
        #expect(late.sends.isEmpty, "not after gossipToTheDeadTime")
    }

    @Test func test_gossipTick_tellsAtMostGossipNodesOfTheDead_andNeverAnAddressALiveMemberHolds() {
        var membership = Fixture.running(peers: 6)
        for number in 2...6 {
            _ = membership.receive([.dead(subject: Fixture.info(UInt64(number)).uid, incarnation: 0, accuser: Fixture.info(7).uid)], from: 7, now: .seconds(1))
        }
        let round = membership.onGossipTick(hasBroadcasts: false, now: .milliseconds(1_200))
        #expect(round.sends.count == 3 && Set(round.sends.map(\.to)).count == 3)
        #expect(round.sends.allSatisfy { $0.messages.count == 1 && !$0.piggyback })
        // A new process at a dead member's address supersedes it: that address is live again.
        var single = Fixture.running(peers: 3)
        let gone = Fixture.info(2)
        _ = single.receive([.dead(subject: gone.uid, incarnation: 0, accuser: Fixture.info(3).uid)], from: 3, now: .seconds(1))
        let successor = NodeInfo(
            uid: NodeUID(0xABCD), name: gone.name, gossipAddress: gone.gossipAddress, proxyAddress: gone.proxyAddress,
            adminAddress: gone.adminAddress, epoch: 1)
        _ = single.receive([.alive(info: successor, incarnation: 0, draining: false)], from: 3, now: .seconds(2))
        #expect(single.onGossipTick(hasBroadcasts: false, now: .milliseconds(2_200)).sends.isEmpty)
    }

    @Test func test_deathOfAnEarlierIdentity_isAnsweredWithOurCurrentAlive() {
        // Fuzz seed 338: a one-way cut let our death in and nothing out; our new identity's
        // broadcasts were spent while cut off, so after the heal nobody learned it (or our
        // endpoint) until a Lifeguard-stretched probe 3.8 s later. Peers that still tell the old
        // identity it is dead are told the new one.
        var membership = Fixture.running(peers: 3)
        let old = membership.me.uid
        _ = membership.receive([.dead(subject: old, incarnation: 0, accuser: Fixture.info(2).uid)], from: 2, now: .seconds(1))
        #expect(membership.me.uid != old)
        let answer = membership.receive([.dead(subject: old, incarnation: 0, accuser: Fixture.info(3).uid)], from: 3, now: .seconds(2))
        #expect(answer.sends.map(\.to) == [Fixture.info(3).gossipAddress])
        #expect(answer.sends.first?.messages == [membership.aliveMessage()])
        #expect(answer.events.isEmpty, "no second rebirth")
        // A sender we hold dead is told so instead (it will announce itself, then learn us).
        _ = membership.receive([.dead(subject: Fixture.info(4).uid, incarnation: 0, accuser: Fixture.info(2).uid)], from: 2, now: .seconds(3))
        let fromTheDead = membership.receive([.dead(subject: old, incarnation: 0, accuser: Fixture.info(4).uid)], from: 4, now: .seconds(4))
        #expect(fromTheDead.sends.flatMap(\.messages) == [.dead(subject: Fixture.info(4).uid, incarnation: 0, accuser: membership.me.uid)])
    }

    @Test func test_retransmitLimit_growsWithLog10OfClusterSize() {
        #expect(Fixture.running(peers: 1).retransmitLimit == 4)
        #expect(Fixture.running(peers: 8).retransmitLimit == 4)
        #expect(Fixture.running(peers: 9).retransmitLimit == 8)
        #expect(Fixture.running(peers: 120).retransmitLimit == 12)
    }

    @Test func test_leave_isRetransmittedUntilAcknowledged_thenCompletes() {
        var membership = Fixture.running(peers: 4)
        let start = membership.startLeave(now: .seconds(1))
        let targets = Array(membership.leave?.targets.values ?? [:].values)
        #expect(targets.count == 3, "three must acknowledge")
        #expect(start.sends.count == 4, "every alive member hears it at once")
        #expect(start.sends.allSatisfy { $0.messages == [.left(subject: Fixture.me.uid, incarnation: 0)] })
        #expect(start.broadcasts == [.left(subject: Fixture.me.uid, incarnation: 0)])
        #expect(start.scheduled(.leaveDeadline) == .seconds(6))
        #expect(membership.onProbeTick(now: .seconds(2)).sends.isEmpty, "a leaving node stops probing")
        let retransmit = membership.onGossipTick(hasBroadcasts: false, now: .milliseconds(1_200))
        #expect(retransmit.sends.count == 3)
        let ackers = [2, 3, 4, 5].map { Fixture.info(UInt64($0)) }.filter { targets.contains($0.gossipAddress) }
        let first = membership.onDatagram(sender: ackers[0].uid, from: ackers[0].gossipAddress, messages: [.leaveAck(subject: Fixture.me.uid)], now: .milliseconds(1_300))
        #expect(first.events.isEmpty)
        #expect(membership.onGossipTick(hasBroadcasts: false, now: .milliseconds(1_400)).sends.count == 2)
        let second = membership.onDatagram(sender: ackers[1].uid, from: ackers[1].gossipAddress, messages: [.leaveAck(subject: Fixture.me.uid)], now: .milliseconds(1_500))
        #expect(second.events == [.leaveCompleted(acknowledgements: 2)])
        #expect(membership.phase == .finished)
    }

    @Test func test_leave_withoutAcknowledgement_completesAtTheDeadline_andAloneAtOnce() {
        var membership = Fixture.running(peers: 2)
        _ = membership.startLeave(now: .seconds(1))
        #expect(membership.onLeaveDeadline(now: .seconds(6)).events == [.leaveCompleted(acknowledgements: 0)])
        var alone = Fixture.running(peers: 0)
        #expect(alone.startLeave(now: .seconds(1)).events == [.leaveCompleted(acknowledgements: 0)])
    }

    @Test func test_join_contactsAtMostJoinFanoutSeeds_andEndsOnFirstSuccess() {
        var membership = Fixture.membership(seeds: ["pico"])
        let start = membership.start(now: .zero)
        #expect(start.contains(.resolveSeeds))
        #expect(start.scheduled(.joinDeadline) == .seconds(60))
        #expect(membership.phase == .joining)
        let addresses = (1...6).map { Fixture.info(UInt64($0)).gossipAddress }
        let resolved = membership.onSeedsResolved(addresses, now: .milliseconds(5))
        let contacted = resolved.compactMap { if case .exchangeState(let address, .join) = $0 { return address } else { return nil } }
        #expect(contacted.count == 3)
        #expect(!contacted.contains(Fixture.me.gossipAddress))
        #expect(membership.onStateExchangeFinished(purpose: .join, succeeded: false, now: .milliseconds(10)).events.isEmpty)
        _ = membership.receive([.alive(info: Fixture.info(2), incarnation: 0, draining: false)], from: 2, now: .milliseconds(11))
        let joined = membership.onStateExchangeFinished(purpose: .join, succeeded: true, now: .milliseconds(11))
        #expect(joined.events == [.joined(alone: false)])
        #expect(joined.scheduled(.seedResolution) == .milliseconds(30_011))
    }

    @Test func test_join_whenOnlyMyselfIsListed_runsAlone_andReResolvesSoonWithBackoff() {
        var membership = Fixture.membership(seeds: ["pico"])
        _ = membership.start(now: .zero)
        let alone = membership.onSeedsResolved([Fixture.me.gossipAddress], now: .zero)
        #expect(alone.events == [.joined(alone: true)])
        var next = alone.scheduled(.seedResolution)!
        var delays: [Duration] = [next - .zero]
        for _ in 0..<6 {
            let again = membership.onSeedsResolved([Fixture.me.gossipAddress], now: next)
            let later = again.scheduled(.seedResolution)!
            delays.append(later - next)
            next = later
        }
        #expect(delays == [.seconds(1), .seconds(2), .seconds(4), .seconds(8), .seconds(16), .seconds(30), .seconds(30)])
    }

    @Test func test_join_failures_retryWithDoublingBackoff_thenAbortAtTheDeadline() {
        var membership = Fixture.membership(seeds: ["pico"])
        _ = membership.start(now: .zero)
        var delays: [Duration] = []
        var now = Instant.zero
        for _ in 0..<6 {
            _ = membership.onSeedsResolved([Fixture.info(2).gossipAddress], now: now)
            let failed = membership.onStateExchangeFinished(purpose: .join, succeeded: false, now: now)
            let retry = failed.scheduled(.seedResolution)!
            delays.append(retry - now)
            now = retry
        }
        #expect(delays == [.seconds(1), .seconds(2), .seconds(4), .seconds(8), .seconds(16), .seconds(16)])
        #expect(membership.onJoinDeadline(now: .seconds(60)).events == [.joinFailed])
        #expect(membership.phase == .finished)

        var settings = MembershipSettings()
        settings.abortIfJoinFails = false
        var lenient = Fixture.membership(seeds: ["pico"], settings: settings)
        _ = lenient.start(now: .zero)
        #expect(lenient.onJoinDeadline(now: .seconds(60)).events == [.joined(alone: true)])
    }

    @Test func test_reconnectTick_triesADeadMembersAddress_andReResolvesWhenTheViewIsSmall() {
        var membership = Fixture.membership(seeds: ["pico"])
        _ = membership.start(now: .zero)
        let seeds = (1...3).map { Fixture.info(UInt64($0)).gossipAddress }
        _ = membership.onSeedsResolved(seeds, now: .zero)
        _ = membership.onStateExchangeFinished(purpose: .join, succeeded: true, now: .zero)
        _ = membership.receive([.alive(info: Fixture.info(2), incarnation: 0, draining: false)], from: 2, now: .zero)
        _ = membership.receive([.dead(subject: Fixture.info(2).uid, incarnation: 0, accuser: Fixture.me.uid)], from: 2, now: .seconds(1))
        let tick = membership.onReconnectTick(now: .seconds(10))
        let target = tick.compactMap { if case .exchangeState(let address, .reconnect) = $0 { return address } else { return nil } }
        #expect(target.count == 1)
        #expect(target.allSatisfy { [Fixture.info(2).gossipAddress, Fixture.info(3).gossipAddress].contains($0) })
        #expect(tick.contains(.resolveSeeds), "two seeds resolved, no live member: ask DNS again")
        #expect(tick.scheduled(.reconnect) == .seconds(20))
    }

    @Test func test_mergeState_suspectRecord_startsButNeverConfirmsASuspicion() {
        var membership = Fixture.running(peers: 5)
        let subject = Fixture.info(3)
        let started = membership.receive([.suspect(subject: subject.uid, incarnation: 0, accuser: Fixture.me.uid)], from: 2, now: .seconds(1))
        let deadline = started.scheduled(.suspicion(subject.uid))
        let merged = membership.mergeState(
            members: [.init(info: subject, state: MemberState(.suspect, 0), draining: false)], tombstones: [],
            sender: Fixture.info(4).uid, now: .seconds(2))
        #expect(merged.scheduled(.suspicion(subject.uid)) == nil, "no confirmation: the deadline stays \(String(describing: deadline))")
    }

    @Test func test_mergeState_appliesTombstonesAndMembers() {
        var membership = Fixture.running(peers: 1)
        let records: [StateExchange.MemberRecord] = [
            .init(info: Fixture.info(3), state: MemberState(.alive, 2), draining: false),
            .init(info: Fixture.info(4), state: MemberState(.suspect, 1), draining: true),
        ]
        let tombstones = [StateExchange.TombstoneRecord(uid: Fixture.info(2).uid, status: .left, incarnation: 0, address: nil)]
        _ = membership.mergeState(members: records, tombstones: tombstones, sender: Fixture.info(3).uid, now: .seconds(1))
        #expect(membership.member(Fixture.info(3).uid)?.state == MemberState(.alive, 2))
        #expect(membership.member(Fixture.info(4).uid)?.state == MemberState(.suspect, 1))
        #expect(membership.member(Fixture.info(4).uid)?.draining == true)
        #expect(membership.tombstone(Fixture.info(2).uid)?.status == .left)
        #expect(membership.checkInvariants() == [])
    }

    @Test func test_settingsValidation_rejectsImpossibleCombinations() {
        #expect(MembershipSettings().validationErrors() == [])
        var settings = MembershipSettings()
        settings.indirectProbeTimeout = .milliseconds(500)
        #expect(settings.validationErrors().contains { $0.hasPrefix("indirectProbeTimeout") })
        settings = MembershipSettings()
        settings.probeTimeout = .seconds(1)
        #expect(settings.validationErrors().contains { $0.hasPrefix("probeTimeout") })
        settings = MembershipSettings()
        settings.maxPacketSize = 100
        #expect(settings.validationErrors().contains { $0.hasPrefix("maxPacketSize") })
        #expect(throws: SettingsError.self) { try Membership(me: Fixture.me, seeds: [], settings: settings, rng: SplitMix64(seed: 1)) }
    }
}

@Suite("Membership: push/pull")
struct MembershipPushPullTests {
    @Test func test_pushPullTick_exchangesWithOneAliveMember_andReschedules() {
        var membership = Fixture.running(peers: 3)
        let tick = membership.onPushPullTick(now: .seconds(30))
        let exchanges = tick.compactMap { if case .exchangeState(let address, .pushPull) = $0 { return address } else { return nil } }
        #expect(exchanges.count == 1)
        #expect((2...4).map { Fixture.info(UInt64($0)).gossipAddress }.contains(exchanges[0]))
        #expect(tick.scheduled(.pushPull) == .seconds(60))
        var alone = Fixture.running(peers: 0)
        #expect(alone.onPushPullTick(now: .seconds(30)).compactMap { if case .exchangeState = $0 { return 1 } else { return nil } }.isEmpty)
    }

    @Test func test_pushPullPeriod_scalesAboveThirtyTwoMembers() {
        #expect(Fixture.running(peers: 31).pushPullPeriod() == .seconds(30))
        #expect(Fixture.running(peers: 63).pushPullPeriod() == .seconds(60))
        #expect(Fixture.running(peers: 99).pushPullPeriod() == .seconds(90))
    }

    @Test func test_stateRecords_listUsAndLiveMembers_andTombstones() {
        var membership = Fixture.running(peers: 2)
        _ = membership.receive([.dead(subject: Fixture.info(3).uid, incarnation: 0, accuser: Fixture.info(2).uid)], from: 2, now: .seconds(1))
        let records = membership.stateRecords()
        #expect(records.members.map(\.info.uid) == [Fixture.me.uid, Fixture.info(2).uid])
        #expect(records.tombstones.map(\.uid) == [Fixture.info(3).uid])
        #expect(records.tombstones[0].address == Fixture.info(3).gossipAddress)
        // Among more members, ours takes its place in UID order (the list comes from the cached order).
        let middle = Fixture.info(5)
        var larger = try! Membership(me: middle, seeds: [], settings: MembershipSettings(), rng: SplitMix64(seed: 7))
        _ = larger.start(now: .zero)
        let peers = [2, 3, 4, 6, 7, 8].map { GossipMessage.alive(info: Fixture.info(UInt64($0)), incarnation: 0, draining: false) }
        _ = larger.onDatagram(sender: Fixture.info(2).uid, from: Fixture.info(2).gossipAddress, messages: peers, now: .zero)
        let uids = larger.stateRecords().members.map(\.info.uid)
        #expect(uids == (2...8).map { Fixture.info(UInt64($0)).uid })
    }

    @Test func test_leave_isSentDirectlyToEveryAliveMember_andAcknowledgedByThree() {
        var membership = Fixture.running(peers: 6)
        let directives = membership.startLeave(now: .seconds(1))
        let left = GossipMessage.left(subject: Fixture.me.uid, incarnation: 0)
        #expect(Set(directives.sends.filter { $0.messages == [left] }.map(\.to)) == Set((2...7).map { Fixture.info(UInt64($0)).gossipAddress }))
        #expect(membership.leave?.targets.count == 3, "only three must acknowledge")
    }
}
