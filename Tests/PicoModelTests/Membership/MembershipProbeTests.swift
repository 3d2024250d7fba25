@testable import PicoModel
import Testing

@Suite("Membership: probing and failure detection")
struct MembershipProbeTests {
    /// memberlist's LAN suspicion settings (minimum 4 s up to 10 members, maximum 24 s, K = 2),
    /// which the timing figures below were worked out with; the defaults are tested on their own.
    static let timing: MembershipSettings = {
        var settings = MembershipSettings()
        settings.suspicionMultiplier = 4
        settings.suspicionConfirmations = 2
        return settings
    }()

    @Test func test_defaultMinimum_isTwoProbeIntervals_atAnySize_afterThreeConfirmations() {
        var membership = Fixture.running(peers: 150)
        let subject = Fixture.info(2).uid
        let first = membership.receive([.suspect(subject: subject, incarnation: 0, accuser: Fixture.info(3).uid)], from: 3, now: .seconds(10))
        #expect(first.scheduled(.suspicion(subject)) == .seconds(22), "maximum: 6 x 2 s, no log10 N factor")
        _ = membership.receive([.suspect(subject: subject, incarnation: 0, accuser: Fixture.info(4).uid)], from: 4, now: .milliseconds(10_200))
        _ = membership.receive([.suspect(subject: subject, incarnation: 0, accuser: Fixture.info(5).uid)], from: 5, now: .milliseconds(10_400))
        let third = membership.receive([.suspect(subject: subject, incarnation: 0, accuser: Fixture.info(6).uid)], from: 6, now: .milliseconds(10_600))
        #expect(third.scheduled(.suspicion(subject)) == .seconds(12), "three confirmations: the 2 s minimum from the start")
    }

    @Test func test_start_withoutSeeds_shouldJoinAloneAndArmEveryTimer() {
        var membership = Fixture.membership()
        let directives = membership.start(now: .zero)
        #expect(directives.events == [.joined(alone: true)])
        #expect(directives.scheduled(.probe) == .seconds(1))
        #expect(directives.scheduled(.gossip) == .milliseconds(200))
        #expect(directives.scheduled(.pushPull) == .seconds(30))
        #expect(directives.scheduled(.reconnect) == .seconds(10))
        #expect(membership.phase == .running)
    }

    @Test func test_onProbeTick_shouldProbeEveryMemberOnceBeforeRepeating() {
        var membership = Fixture.running(peers: 4, settings: Self.timing)
        var now = Instant.seconds(1)
        var rounds: [[NodeUID]] = [[], []]
        for round in 0..<2 {
            for _ in 0..<4 {
                let directives = membership.onProbeTick(now: now)
                guard let send = directives.sends.first, case .ping(let sequence, let target) = send.messages[0] else {
                    Issue.record("expected a ping, got \(directives)")
                    return
                }
                #expect(send.piggyback)
                rounds[round].append(target)
                _ = membership.receive([.ack(sequence: sequence, target: target, incarnation: 0)], from: 2, now: now + .milliseconds(10))
                #expect(directives.scheduled(.probe) == now + .seconds(1), "the next tick is always scheduled")
                now = now + .seconds(1)
            }
        }
        let expected = (2...5).map { Fixture.info(UInt64($0)).uid }.sorted()
        #expect(rounds[0].sorted() == expected)
        #expect(rounds[1].sorted() == expected)
    }

    @Test func test_onPing_forMe_shouldAck_andForAnEarlierUIDAtMyAddress_shouldIntroduceMyself() {
        var membership = Fixture.running(peers: 1, settings: Self.timing)
        let acked = membership.receive([.ping(sequence: 9, target: Fixture.me.uid)], from: 2, now: .seconds(1))
        #expect(acked.sends.first?.messages == [.ack(sequence: 9, target: Fixture.me.uid, incarnation: 0)])
        #expect(acked.sends.first?.to == Fixture.info(2).gossipAddress)
        let stale = membership.receive([.ping(sequence: 10, target: NodeUID(0xDEAD))], from: 2, now: .seconds(1))
        #expect(stale.sends.first?.messages == [membership.aliveMessage()])
    }

    @Test func test_onProbeTimeout_shouldAskUpToThreeHelpers_excludingTheTarget() {
        var membership = Fixture.running(peers: 5, settings: Self.timing)
        let tick = membership.onProbeTick(now: .seconds(1))
        let sequence = tick.probeSequence!
        let target = tick.sends[0].to
        #expect(tick.scheduled(.probeTimeout(sequence: sequence)) == .milliseconds(1_500))
        let timeout = membership.onProbeTimeout(sequence: sequence, now: .milliseconds(1_500))
        let helpers = timeout.sends.map(\.to)
        #expect(helpers.count == 3)
        #expect(!helpers.contains(target))
        #expect(Set(helpers).count == 3)
        for send in timeout.sends {
            guard case .pingRequest(let requested, _, let address) = send.messages[0] else {
                Issue.record("expected a ping-req, got \(send.messages)")
                continue
            }
            #expect(requested == sequence)
            #expect(address == target)
        }
        #expect(timeout.scheduled(.probeDeadline(sequence: sequence)) == .seconds(2))
    }

    @Test func test_probeDeadline_withoutAck_shouldSuspectAndRaiseLocalHealthByMissedNacks() {
        var membership = Fixture.running(peers: 5, settings: Self.timing)
        let tick = membership.onProbeTick(now: .seconds(1))
        let sequence = tick.probeSequence!
        guard case .ping(_, let target) = tick.sends[0].messages[0] else { return }
        _ = membership.onProbeTimeout(sequence: sequence, now: .milliseconds(1_500))
        _ = membership.receive([.nack(sequence: sequence, target: target)], from: 3, now: .milliseconds(1_900))
        let deadline = membership.onProbeDeadline(sequence: sequence, now: .seconds(2))
        #expect(membership.member(target)?.state == MemberState(.suspect, 0))
        #expect(deadline.broadcasts == [.suspect(subject: target, incarnation: 0, accuser: Fixture.me.uid)])
        #expect(deadline.scheduled(.suspicion(target)) != nil)
        #expect(membership.localHealth == 2, "three helpers, one nack: two missed nacks")
        #expect(membership.checkInvariants() == [])
        // Health scales the next probe interval.
        let next = membership.onProbeTick(now: .seconds(2))
        #expect(next.scheduled(.probe) == .seconds(5))
    }

    @Test func test_ack_shouldCompleteTheProbe_andLowerLocalHealth() {
        var membership = Fixture.running(peers: 2, settings: Self.timing)
        membership.localHealth = 3
        let tick = membership.onProbeTick(now: .seconds(1))
        guard case .ping(let sequence, let target) = tick.sends[0].messages[0] else { return }
        _ = membership.receive([.ack(sequence: sequence, target: target, incarnation: 0)], from: 2, now: .milliseconds(1_010))
        #expect(membership.localHealth == 2)
        #expect(membership.onProbeTimeout(sequence: sequence, now: .milliseconds(1_500)).sends.isEmpty)
        _ = membership.onProbeDeadline(sequence: sequence, now: .seconds(2))
        #expect(membership.member(target)?.state.status == .alive)
    }

    @Test func test_pingRequest_shouldRelayAndForwardTheAck_orNackOnTimeout() {
        var membership = Fixture.running(peers: 3, settings: Self.timing)
        let target = Fixture.info(3)
        let relayed = membership.receive([.pingRequest(sequence: 42, target: target.uid, targetAddress: target.gossipAddress)], from: 2, now: .seconds(1))
        guard let ping = relayed.sends.first, case .ping(let relaySequence, let pinged) = ping.messages[0] else {
            Issue.record("expected a relay ping, got \(relayed)")
            return
        }
        #expect(pinged == target.uid)
        #expect(ping.to == target.gossipAddress)
        #expect(relayed.scheduled(.relayTimeout(sequence: relaySequence)) == .milliseconds(1_400))
        let forwarded = membership.receive([.ack(sequence: relaySequence, target: target.uid, incarnation: 4)], from: 3, now: .milliseconds(1_100))
        #expect(forwarded.sends.first?.messages == [.ack(sequence: 42, target: target.uid, incarnation: 4)])
        #expect(forwarded.sends.first?.to == Fixture.info(2).gossipAddress)
        #expect(membership.onRelayTimeout(sequence: relaySequence, now: .milliseconds(1_400)).sends.isEmpty, "already answered")

        let second = membership.receive([.pingRequest(sequence: 43, target: target.uid, targetAddress: target.gossipAddress)], from: 2, now: .seconds(2))
        let secondSequence = second.probeSequence!
        let nack = membership.onRelayTimeout(sequence: secondSequence, now: .milliseconds(2_400))
        #expect(nack.sends.first?.messages == [.nack(sequence: 43, target: target.uid)])
    }

    @Test func test_suspicion_timeoutShrinksWithIndependentConfirmations() {
        var membership = Fixture.running(peers: 5, settings: Self.timing)
        let subject = Fixture.info(2).uid
        let first = membership.receive([.suspect(subject: subject, incarnation: 0, accuser: Fixture.info(3).uid)], from: 3, now: .seconds(10))
        // N = 6: minimum 4 s, maximum 24 s, two confirmations expected.
        #expect(first.scheduled(.suspicion(subject)) == .seconds(34))
        let repeated = membership.receive([.suspect(subject: subject, incarnation: 0, accuser: Fixture.info(3).uid)], from: 3, now: .seconds(11))
        #expect(repeated.scheduled(.suspicion(subject)) == nil, "the accuser does not confirm itself")
        let confirmed = membership.receive([.suspect(subject: subject, incarnation: 0, accuser: Fixture.info(4).uid)], from: 4, now: .seconds(11))
        let once = confirmed.scheduled(.suspicion(subject))!
        #expect(once > .seconds(21) && once < .seconds(22), "24 - 20 * log(2)/log(3) = 11.38 s after the start")
        let twice = membership.receive([.suspect(subject: subject, incarnation: 0, accuser: Fixture.info(5).uid)], from: 5, now: .seconds(12))
        #expect(twice.scheduled(.suspicion(subject)) == .seconds(14))
        #expect(membership.onSuspicionTimer(subject, now: .seconds(13)).scheduled(.suspicion(subject)) == .seconds(14))
        // We only heard of it: at the deadline we probe it ourselves, and its silence declares it.
        let check = membership.onSuspicionTimer(subject, now: .seconds(14))
        #expect(check.broadcasts == [], "no death on hearsay alone")
        #expect(check.sends.first?.to == Fixture.info(2).gossipAddress)
        #expect(check.sends.first?.messages.first == .suspect(subject: subject, incarnation: 0, accuser: Fixture.info(3).uid), "buddy system")
        let sequence = check.probeSequence!
        _ = membership.onProbeTimeout(sequence: sequence, now: .milliseconds(14_500))
        let dead = membership.onProbeDeadline(sequence: sequence, now: .seconds(15))
        #expect(dead.broadcasts.contains(.dead(subject: subject, incarnation: 0, accuser: Fixture.me.uid)))
        #expect(membership.tombstone(subject)?.status == .dead)
        #expect(membership.checkInvariants() == [])
    }

    @Test func test_heardOfSuspect_atItsDeadline_isProbed_andItsRefutingAckClearsIt() {
        var membership = Fixture.running(peers: 5, settings: Self.timing)
        let subject = Fixture.info(2).uid
        _ = membership.receive([.suspect(subject: subject, incarnation: 0, accuser: Fixture.info(3).uid)], from: 3, now: .seconds(10))
        // The refutation broadcast never reached us (gossip reaches each member with high, not
        // certain, probability); without our own probe we would declare a running member dead.
        membership.idle(from: .seconds(10), to: .seconds(34))
        let check = membership.onSuspicionTimer(subject, now: .seconds(34))
        #expect(check.broadcasts == [])
        let sequence = check.probeSequence!
        let ack = membership.receive([.ack(sequence: sequence, target: subject, incarnation: 1)], from: 2, now: .milliseconds(34_010))
        #expect(ack.events.contains(.memberStatusChanged(uid: subject, name: "node-2", from: MemberState(.suspect, 0), to: MemberState(.alive, 1))))
        #expect(membership.member(subject)?.state == MemberState(.alive, 1))
        #expect(membership.onSuspicionTimer(subject, now: .seconds(40)).broadcasts == [])
        #expect(membership.tombstone(subject) == nil)
    }

    @Test func test_heardOfSuspect_isProbedBeforeTheRoundRobin() {
        var membership = Fixture.running(peers: 8, settings: Self.timing)
        let subject = Fixture.info(6).uid
        _ = membership.receive([.suspect(subject: subject, incarnation: 0, accuser: Fixture.info(3).uid)], from: 3, now: .milliseconds(500))
        let tick = membership.onProbeTick(now: .seconds(1))
        #expect(tick.sends.first?.to == Fixture.info(6).gossipAddress, "the accused first, whatever the round-robin order")
        let sequence = tick.probeSequence!
        _ = membership.onProbeTimeout(sequence: sequence, now: .milliseconds(1_500))
        let failed = membership.onProbeDeadline(sequence: sequence, now: .seconds(2))
        #expect(failed.broadcasts.contains(.suspect(subject: subject, incarnation: 0, accuser: Fixture.me.uid)), "our own failed probe confirms")
        #expect(failed.broadcasts.allSatisfy { if case .dead = $0 { false } else { true } }, "not before the deadline")
        // Checked once: the next rounds go back to the round-robin order.
        let next = membership.onProbeTick(now: .seconds(3))
        #expect(next.sends.first?.to != Fixture.info(6).gossipAddress)
    }

    @Test func test_ownFailedProbe_afterTheDeadline_declaresAtOnce() {
        var membership = Fixture.running(peers: 5, settings: Self.timing)
        let subject = Fixture.info(2).uid
        _ = membership.receive([.suspect(subject: subject, incarnation: 0, accuser: Fixture.info(3).uid)], from: 3, now: .seconds(10))
        membership.idle(from: .seconds(10), to: .milliseconds(33_900))
        let probing = membership.onProbeTick(now: .milliseconds(33_900))
        #expect(probing.sends.first?.to == Fixture.info(2).gossipAddress, "heard-of suspects go first")
        let sequence = probing.probeSequence!
        #expect(membership.onSuspicionTimer(subject, now: .seconds(34)).sends.isEmpty, "a probe of it is already running")
        _ = membership.onProbeTimeout(sequence: sequence, now: .milliseconds(34_400))
        let dead = membership.onProbeDeadline(sequence: sequence, now: .milliseconds(34_900))
        #expect(dead.broadcasts.contains(.dead(subject: subject, incarnation: 0, accuser: Fixture.me.uid)))
    }

    @Test func test_ownStaleEvidence_withoutConfirmations_isCheckedAgain_beforeDeclaring() {
        // Three nodes at 10 % loss (fuzz seed 172): our probe of peer 2 fails; peer 3, the only
        // one who could confirm, then turns suspect too, so the timeout falls to the minimum.
        var membership = Fixture.running(peers: 2)
        let subject = Fixture.info(2).uid
        membership.idle(from: .zero, to: .seconds(10))
        _ = membership.receive([.suspect(subject: subject, incarnation: 0, accuser: Fixture.me.uid)], from: 3, now: .seconds(10))
        _ = membership.receive([.suspect(subject: Fixture.info(3).uid, incarnation: 0, accuser: Fixture.info(2).uid)], from: 3, now: .milliseconds(11_900))
        membership.idle(from: .seconds(11), to: .seconds(12))
        let check = membership.onSuspicionTimer(subject, now: .seconds(12))
        #expect(check.broadcasts.allSatisfy { if case .dead = $0 { false } else { true } }, "2 s old, unconfirmed: probe again first")
        let sequence = check.probeSequence!
        _ = membership.receive([.ack(sequence: sequence, target: subject, incarnation: 1)], from: 2, now: .milliseconds(12_010))
        #expect(membership.member(subject)?.state == MemberState(.alive, 1), "the ack carried its refutation")
    }

    @Test func test_ownStaleEvidence_evenConfirmed_isCheckedAgain_butFreshEvidenceDeclaresAtOnce() throws {
        // 200 pods at 10 % loss: we heard the accusation, our own probe failed, two others
        // confirmed, and the refutation never reached us. At the deadline our 2 s old failure is
        // checked again, and the ack carries the refutation.
        let subject = Fixture.info(2).uid
        func accusedAndConfirmed() throws -> (membership: Membership, check: [MembershipDirective], deadline: Instant) {
            var membership = Fixture.running(peers: 6, settings: Self.timing)
            _ = membership.receive([.suspect(subject: subject, incarnation: 0, accuser: Fixture.info(3).uid)], from: 3, now: .seconds(10))
            let probe = membership.onProbeTick(now: .seconds(11))
            #expect(probe.sends.first?.to == Fixture.info(2).gossipAddress, "heard of: probed first")
            _ = membership.onProbeTimeout(sequence: probe.probeSequence!, now: .milliseconds(11_500))
            _ = membership.onProbeDeadline(sequence: probe.probeSequence!, now: .seconds(12))
            for accuser: UInt64 in [4, 5] {
                _ = membership.receive([.suspect(subject: subject, incarnation: 0, accuser: Fixture.info(accuser).uid)], from: accuser, now: .seconds(12))
            }
            let deadline = try #require(membership.suspicions[subject]?.deadline)
            #expect(deadline - .seconds(12) > Self.timing.probeInterval, "the deadline comes after our failure has gone stale")
            membership.idle(from: .seconds(12), to: deadline)
            let check = membership.onSuspicionTimer(subject, now: deadline)
            #expect(check.broadcasts.allSatisfy { if case .dead = $0 { false } else { true } }, "stale, though confirmed: probe again first")
            return (membership, check, deadline)
        }

        var (running, check, deadline) = try accusedAndConfirmed()
        let ack = running.receive([.ack(sequence: check.probeSequence!, target: subject, incarnation: 1)], from: 2, now: deadline + .milliseconds(10))
        #expect(ack.events.contains(.memberStatusChanged(uid: subject, name: "node-2", from: MemberState(.suspect, 0), to: MemberState(.alive, 1))))
        #expect(running.tombstone(subject) == nil)

        // A crashed suspect: the fresh check fails too, and declares it at once (past the deadline).
        var (crashed, again, end) = try accusedAndConfirmed()
        let probeEnd = try #require(crashed.probe?.deadline)
        _ = crashed.onProbeTimeout(sequence: again.probeSequence!, now: end + .milliseconds(500))
        crashed.idle(from: end + .seconds(1), to: probeEnd)
        let dead = crashed.onProbeDeadline(sequence: again.probeSequence!, now: probeEnd)
        #expect(dead.broadcasts.contains(.dead(subject: subject, incarnation: 0, accuser: Fixture.me.uid)))
    }

    @Test func test_heardOfSuspect_thatAnswersWithoutRefuting_isNotProbedFirstAgain() {
        var membership = Fixture.running(peers: 8, settings: Self.timing)
        let subject = Fixture.info(6)
        // Accused at an incarnation it does not refute (a node leaving acks without refuting).
        _ = membership.receive([.suspect(subject: subject.uid, incarnation: 0, accuser: Fixture.info(3).uid)], from: 3, now: .milliseconds(500))
        let first = membership.onProbeTick(now: .seconds(1))
        #expect(first.sends.first?.to == subject.gossipAddress)
        _ = membership.receive([.ack(sequence: first.probeSequence!, target: subject.uid, incarnation: 0)], from: 6, now: .milliseconds(1_010))
        #expect(membership.member(subject.uid)?.state == MemberState(.suspect, 0))
        var probedAgain = 0
        for second in 2...8 {
            let tick = membership.onProbeTick(now: .seconds(Int64(second)))
            let target = tick.sends.first.flatMap { send in send.messages.compactMap { if case .ping(_, let target) = $0 { target } else { nil } }.first }
            if target == subject.uid { probedAgain += 1 }
            _ = membership.receive([.ack(sequence: tick.probeSequence!, target: target ?? subject.uid, incarnation: 0)], from: 2, now: .seconds(Int64(second)) + .milliseconds(10))
        }
        #expect(probedAgain <= 1, "round-robin again (the suspect at most at its own turn), not the answered suspect every round: \(probedAgain)")
    }

    @Test func test_anAccusationOfOursFromBeforeARebirth_isNotOurEvidence() {
        var membership = Fixture.running(peers: 5, settings: Self.timing)
        let old = Fixture.me.uid
        _ = membership.receive([.dead(subject: old, incarnation: 0, accuser: Fixture.info(2).uid)], from: 2, now: .seconds(1))
        #expect(membership.me.uid != old)
        let subject = Fixture.info(4).uid
        // Our old UID's accusation, echoed back by gossip, then two confirmations.
        _ = membership.receive([.suspect(subject: subject, incarnation: 0, accuser: old)], from: 3, now: .seconds(2))
        _ = membership.receive([.suspect(subject: subject, incarnation: 0, accuser: Fixture.info(3).uid)], from: 3, now: .seconds(2))
        _ = membership.receive([.suspect(subject: subject, incarnation: 0, accuser: Fixture.info(5).uid)], from: 5, now: .seconds(2))
        membership.idle(from: .seconds(2), to: .seconds(6))
        let deadline = membership.onSuspicionTimer(subject, now: .seconds(6))
        #expect(deadline.broadcasts.allSatisfy { if case .dead = $0 { false } else { true } }, "no probe of ours failed: probe first")
        #expect(deadline.sends.first?.to == Fixture.info(4).gossipAddress)
    }

    @Test func test_lateAck_withHigherIncarnation_clearsTheSuspicion() {
        var membership = Fixture.running(peers: 5, settings: Self.timing)
        let subject = Fixture.info(2).uid
        _ = membership.receive([.suspect(subject: subject, incarnation: 0, accuser: Fixture.info(3).uid)], from: 3, now: .seconds(10))
        // An ack for a probe that already ended (or one we relay for a helper's origin).
        _ = membership.receive([.ack(sequence: 999, target: subject, incarnation: 1)], from: 2, now: .seconds(11))
        #expect(membership.member(subject)?.state == MemberState(.alive, 1))
    }

    @Test func test_suspicion_inThreeNodeCluster_needsOneConfirmation_beforeTheMinimum() {
        var membership = Fixture.running(peers: 2, settings: Self.timing)
        let subject = Fixture.info(2).uid
        let suspected = membership.receive([.suspect(subject: subject, incarnation: 0, accuser: Fixture.info(3).uid)], from: 3, now: .zero)
        #expect(suspected.scheduled(.suspicion(subject)) == .seconds(24), "a lone accuser waits for the maximum")
        let confirmed = membership.receive([.suspect(subject: subject, incarnation: 0, accuser: Fixture.me.uid)], from: 3, now: .seconds(1))
        #expect(confirmed.scheduled(.suspicion(subject)) == .seconds(4))
    }

    @Test func test_suspicion_ofALoneSurvivor_doesNotWaitForConfirmationsNobodyCanSend() {
        var membership = Fixture.running(peers: 2, settings: Self.timing)
        let first = Fixture.info(2).uid
        let second = Fixture.info(3).uid
        let suspected = membership.receive([.suspect(subject: first, incarnation: 0, accuser: Fixture.me.uid)], from: 3, now: .zero)
        #expect(suspected.scheduled(.suspicion(first)) == .seconds(24), "peer 3 could still confirm")
        let both = membership.receive([.suspect(subject: second, incarnation: 0, accuser: Fixture.me.uid)], from: 3, now: .seconds(2))
        #expect(both.scheduled(.suspicion(first)) == .seconds(4), "the only possible confirmer is suspect itself")
        #expect(both.scheduled(.suspicion(second)) == .seconds(6), "nobody else is left to confirm")
        // Unconfirmed and 4 s old: checked once more, and its silence declares it.
        let check = membership.onSuspicionTimer(first, now: .seconds(4))
        #expect(membership.tombstone(first) == nil)
        let sequence = check.probeSequence!
        _ = membership.onProbeTimeout(sequence: sequence, now: .milliseconds(4_500))
        _ = membership.onProbeDeadline(sequence: sequence, now: .seconds(5))
        #expect(membership.tombstone(first)?.status == .dead)
        #expect(membership.checkInvariants() == [])
    }

    @Test func test_suspicion_withAnotherPossibleConfirmer_stillWaitsTheMaximum() {
        var membership = Fixture.running(peers: 3, settings: Self.timing)
        let subject = Fixture.info(2).uid
        _ = membership.receive([.suspect(subject: subject, incarnation: 0, accuser: Fixture.me.uid)], from: 3, now: .zero)
        let other = membership.receive([.suspect(subject: Fixture.info(3).uid, incarnation: 0, accuser: Fixture.me.uid)], from: 4, now: .seconds(1))
        #expect(other.scheduled(.suspicion(subject)) == nil, "peer 4 can still confirm: the deadline stays at the maximum")
        let confirmed = membership.receive([.suspect(subject: subject, incarnation: 0, accuser: Fixture.info(4).uid)], from: 4, now: .seconds(2))
        #expect(confirmed.scheduled(.suspicion(subject)) == .seconds(4), "everyone able to confirm has")
    }

    @Test func test_localPause_shouldPushSuspicionDeadlinesBackByTheGap() {
        var membership = Fixture.running(peers: 5, settings: Self.timing)
        let subject = Fixture.info(2).uid
        _ = membership.receive([.suspect(subject: subject, incarnation: 0, accuser: Fixture.info(3).uid)], from: 3, now: .seconds(1))
        _ = membership.onGossipTick(hasBroadcasts: false, now: .milliseconds(1_200))
        // Frozen for 30 s: the first input after the pause is the overdue suspicion timer.
        let resumed = membership.onSuspicionTimer(subject, now: .milliseconds(31_200))
        #expect(resumed.events.contains(.localPauseDetected(gap: .seconds(30))))
        #expect(membership.member(subject)?.state.status == .suspect, "not declared dead because of our own pause")
        #expect(resumed.scheduled(.suspicion(subject)) == .seconds(55))
    }

    @Test func test_buddySystem_pingToASuspect_carriesItsSuspicion() {
        var membership = Fixture.running(peers: 1, settings: Self.timing)
        let subject = Fixture.info(2).uid
        _ = membership.receive([.suspect(subject: subject, incarnation: 0, accuser: Fixture.info(3).uid)], from: 3, now: .zero)
        let tick = membership.onProbeTick(now: .seconds(1))
        #expect(tick.sends[0].messages.contains(.suspect(subject: subject, incarnation: 0, accuser: Fixture.info(3).uid)))
    }
}

extension Membership {
    /// Feeds a gossip tick every second (no broadcasts), so a long wait is not a local pause.
    mutating func idle(from start: Instant, to end: Instant) {
        var now = start
        while now < end {
            _ = self.onGossipTick(hasBroadcasts: false, now: now)
            now = now + .seconds(1)
        }
    }
}

@Suite("Membership: refutation through acks")
struct MembershipAckRefutationTests {
    @Test func test_ackAtANewerIncarnation_clearsASuspicionWhoseRefutationWeMissed() {
        var membership = Fixture.running(peers: 1)
        let subject = Fixture.info(2)
        _ = membership.receive([.suspect(subject: subject.uid, incarnation: 0, accuser: Fixture.info(3).uid)], from: 3, now: .zero)
        let tick = membership.onProbeTick(now: .seconds(1))
        #expect(tick.sends[0].messages.first == .suspect(subject: subject.uid, incarnation: 0, accuser: Fixture.info(3).uid), "the suspicion goes before the ping")
        let sequence = tick.probeSequence!
        let acked = membership.receive([.ack(sequence: sequence, target: subject.uid, incarnation: 1)], from: 2, now: .milliseconds(1_010))
        #expect(membership.member(subject.uid)?.state == MemberState(.alive, 1))
        #expect(acked.broadcasts == [.alive(info: subject, incarnation: 1, draining: false)])
    }

    @Test func test_suspectReceivingBuddyPing_acksWithItsRefutedIncarnation() {
        var suspect = try! Membership(me: Fixture.info(2), seeds: [], settings: MembershipSettings(), rng: SplitMix64(seed: 1))
        _ = suspect.start(now: .zero)
        let directives = suspect.onDatagram(
            sender: Fixture.me.uid, from: Fixture.me.gossipAddress,
            messages: [.suspect(subject: Fixture.info(2).uid, incarnation: 0, accuser: Fixture.me.uid), .ping(sequence: 5, target: Fixture.info(2).uid)],
            now: .seconds(1))
        #expect(directives.sends.first?.messages == [.ack(sequence: 5, target: Fixture.info(2).uid, incarnation: 1)])
    }
}
