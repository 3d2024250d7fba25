import PicoModel
@testable import PicoSim
import Testing

@Suite("Canonical trace records")
struct TraceRecordTests {
    @Test func test_records_haveAFixedTextPerKind() {
        let uid = NodeUID(0xAB)
        let address = Address(host: "10.0.0.1", port: 8003)
        let info = NodeInfo(uid: uid, name: "pico-0-abc", gossipAddress: address, proxyAddress: address, adminAddress: address, epoch: 7)
        let cases: [(ClusterEvent, String)] = [
            (.membership(.memberJoined(info)), "member-joined uid=00000000000000ab name=pico-0-abc gossip=10.0.0.1:8003 epoch=7"),
            (.membership(.memberStatusChanged(uid: uid, name: "n", from: MemberState(.alive, 1), to: MemberState(.dead, 1))),
             "member-status uid=00000000000000ab name=n from=alive(1) to=dead(1)"),
            (.membership(.memberDraining(uid: uid, name: "n")), "member-draining uid=00000000000000ab name=n"),
            (.membership(.memberRemoved(uid: uid, name: "n")), "member-removed uid=00000000000000ab name=n"),
            (.membership(.refuted(incarnation: 3)), "refuted incarnation=3"),
            (.membership(.reborn(old: uid, new: NodeUID(1))), "reborn old=00000000000000ab new=0000000000000001"),
            (.membership(.joined(alone: true)), "joined alone=true"),
            (.membership(.joinFailed), "join-failed"),
            (.membership(.localPauseDetected(gap: .milliseconds(1_500))), "local-pause gapNanoseconds=1500000000"),
            (.membership(.leaveCompleted(acknowledgements: 2)), "leave-completed acknowledgements=2"),
            (.phaseChanged(from: .joining, to: .ready), "phase from=joining to=ready"),
            (.endpointChanged(endpoint: "e", owner: uid, count: 2), "endpoint endpoint=e owner=00000000000000ab count=2"),
            (.tunnelRegistered(TunnelID(4), endpoint: "e"), "tunnel-registered tunnel=4 endpoint=e"),
            (.tunnelRemoved(TunnelID(4), endpoint: "e"), "tunnel-removed tunnel=4 endpoint=e"),
            (.tunnelRejected(TunnelID(4), reason: "empty"), "tunnel-rejected tunnel=4 reason=empty"),
            (.malformedMessage(from: nil, error: WireDecodeError(.badMagic, field: "magic", offset: 0)),
             "malformed from=- error=not a Pico gossip message (bad magic byte) in magic at byte 0"),
            (.datagramSendFailed(to: address), "send-failed to=10.0.0.1:8003"),
            (.stateExchangeFailed(to: address, reason: "refused"), "exchange-failed to=10.0.0.1:8003 reason=refused"),
        ]
        for (event, text) in cases { #expect(TraceRecord(event).text == text) }
    }

    @Test func test_hash_separatesFieldsFromValues() {
        func hash(_ record: TraceRecord) -> UInt64 {
            var hasher = TraceHasher()
            record.combine(into: &hasher)
            return hasher.value
        }
        #expect(hash(TraceRecord(.membership(.refuted(incarnation: 12)))) != hash(TraceRecord(.membership(.refuted(incarnation: 1)))))
        #expect(hash(TraceRecord(.tunnelRegistered(TunnelID(1), endpoint: "2"))) != hash(TraceRecord(.tunnelRemoved(TunnelID(1), endpoint: "2"))))
    }
}
