@testable import PicoModel
import Testing

/// The node's reachability evidence reaches its loops as routing changes, and fresh evidence
/// clears it.
@Suite("Reachability")
struct ReachabilityTests {
    static func changes(_ directives: [ClusterDirective]) -> [RoutingChange] {
        directives.flatMap { directive -> [RoutingChange] in
            if case .routingChanged(let changes) = directive { return changes }
            return []
        }
    }

    @Test func test_aFailedForward_marksAMemberUnreachable_untilItAnswers() {
        var node = ClusterNodeTests.node()
        let peer = Fixture.info(2)
        _ = node.handle(ClusterNodeTests.datagram(from: peer, [.alive(info: peer, incarnation: 0, draining: false)]), now: .seconds(1))
        #expect(Self.changes(node.handle(.forwardFailed(peer.uid), now: .seconds(2))) == [.unreachable(peer.uid, true)])
        #expect(node.reachability.evidence[peer.uid]?.forwardFailedAt == .seconds(2))
        #expect(Self.changes(node.handle(.forwardFailed(peer.uid), now: .seconds(3))).isEmpty, "only changes are sent")
        #expect(Self.changes(node.handle(.forwardAnswered(peer.uid), now: .seconds(4))) == [.unreachable(peer.uid, false)])
        #expect(Self.changes(node.handle(.forwardFailed(Fixture.info(9).uid), now: .seconds(5))).isEmpty, "a stranger is no evidence")
    }

    @Test func test_aMemberThatHeartbeats_isToldToEveryLoop_untilItDies() {
        var node = ClusterNodeTests.node()
        let peer = Fixture.info(2)
        _ = node.handle(ClusterNodeTests.datagram(from: peer, [.alive(info: peer, incarnation: 0, draining: false)]), now: .seconds(1))
        #expect(Self.changes(node.handle(.forwardHeartbeats(peer.uid), now: .seconds(2))) == [.heartbeats(peer.uid, true)])
        #expect(Self.changes(node.handle(.forwardHeartbeats(peer.uid), now: .seconds(3))).isEmpty, "only changes are sent")
        #expect(Self.changes(node.handle(.forwardAnswered(peer.uid), now: .seconds(4))).isEmpty, "an answer clears evidence, not the capability")
        #expect(Self.changes(node.handle(.forwardHeartbeats(Fixture.info(9).uid), now: .seconds(5))).isEmpty, "a stranger is not remembered")
        let death = node.handle(ClusterNodeTests.datagram(from: Fixture.info(3), [.dead(subject: peer.uid, incarnation: 0, accuser: Fixture.info(3).uid)]), now: .seconds(6))
        #expect(Self.changes(death).contains(.heartbeats(peer.uid, false)), "a dead member's entry goes from every loop")
    }

    @Test func test_eachEvidence_isClearedByItsOwnKindOfProof() {
        var table = Reachability()
        let uid = Fixture.info(2).uid
        table.noteProbeAnswered(uid, directly: false)
        #expect(table.unreachable == [uid])
        table.noteProbeAnswered(uid, directly: true)
        #expect(table.unreachable.isEmpty && table.evidence.isEmpty, "a direct ack clears the indirect-only evidence")
        table.noteForwardFailed(uid, now: .seconds(10))
        table.noteProbeAnswered(uid, directly: true)
        #expect(table.unreachable == [uid], "a UDP ack proves nothing about the proxy port")
        table.expire(now: .seconds(39))
        #expect(table.unreachable == [uid])
        table.expire(now: .seconds(40))
        #expect(table.unreachable.isEmpty, "a failed forward counts for 30 s without fresh evidence")
        table.noteProbeAnswered(uid, directly: false)
        table.noteForwardFailed(uid, now: .seconds(50))
        table.noteForwardAnswered(uid)
        #expect(table.unreachable.isEmpty && table.evidence.isEmpty, "an answered forward clears both kinds")
    }

    @Test func test_aDirectAckAfterAFailedForward_isToldToTheLoops_oncePerFailure_withoutClearingTheEvidence() {
        var table = Reachability()
        let uid = Fixture.info(2).uid
        table.noteProbeAnswered(uid, directly: true)
        #expect(table.takeDirectContacts().isEmpty, "no failure: no news")
        table.noteForwardFailed(uid, now: .seconds(10))
        table.noteProbeAnswered(uid, directly: false)
        #expect(table.takeDirectContacts().isEmpty, "an indirect ack says nothing about the way from us")
        table.noteProbeAnswered(uid, directly: true)
        table.noteProbeAnswered(uid, directly: true)
        #expect(table.takeDirectContacts() == [uid], "once per failure")
        #expect(table.takeDirectContacts().isEmpty)
        #expect(table.unreachable == [uid], "UDP proves nothing about the proxy port: the evidence stands")
        table.noteForwardFailed(uid, now: .seconds(12))
        table.noteProbeAnswered(uid, directly: true)
        table.forgetMember(uid)
        #expect(table.takeDirectContacts().isEmpty, "a member that died is no news")
    }

    @Test func test_theNodeSendsADirectAckAfterAFailedForward_asARoutingChange() throws {
        var node = ClusterNodeTests.node()
        let peer = Fixture.info(2)
        _ = node.handle(ClusterNodeTests.datagram(from: peer, [.alive(info: peer, incarnation: 0, draining: false)]), now: .seconds(1))
        _ = node.handle(.forwardFailed(peer.uid), now: .seconds(2))
        let probe = node.handle(.timerFired(.probe), now: .seconds(3))
        let pings = try probe.compactMap { directive -> UInt32? in
            guard case .sendDatagram(let bytes, _) = directive else { return nil }
            return try GossipCodec.decodeDatagram(bytes).messages.compactMap { message -> UInt32? in
                if case .ping(let sequence, peer.uid) = message { return sequence }
                return nil
            }.first
        }
        let sequence = try #require(pings.first, "the node probes its only peer")
        let acked = node.handle(ClusterNodeTests.datagram(from: peer, [.ack(sequence: sequence, target: peer.uid, incarnation: 0)]), now: .seconds(3) + .milliseconds(5))
        #expect(Self.changes(acked) == [.answeredDirectly(peer.uid)])
        #expect(node.reachability.unreachable == [peer.uid])
    }

    @Test func test_theMembershipReportsHowAProbeWasAnswered() {
        var membership = Fixture.running(peers: 2)
        let directives = membership.onProbeTick(now: .seconds(10))
        guard let target = directives.compactMap({ directive -> NodeUID? in
            if case .send(let messages, _, _) = directive, case .ping(_, let target)? = messages.last { return target }
            return nil
        }).first, let sequence = directives.compactMap({ directive -> UInt32? in
            if case .send(let messages, _, _) = directive, case .ping(let sequence, _)? = messages.last { return sequence }
            return nil
        }).first else {
            Issue.record("no probe sent")
            return
        }
        var produced: [MembershipDirective] = []
        var relayed = membership
        membership.onAck(sequence: sequence, target: target, incarnation: 0, directly: true, now: .seconds(10) + .milliseconds(5), into: &produced)
        #expect(produced.contains(.event(.probeAnswered(uid: target, directly: true))))
        var viaHelper: [MembershipDirective] = []
        relayed.onAck(sequence: sequence, target: target, incarnation: 0, directly: false, now: .seconds(10) + .milliseconds(5), into: &viaHelper)
        #expect(viaHelper.contains(.event(.probeAnswered(uid: target, directly: false))), "judged by who sent the ack, not by the probe's phase")
    }
}
