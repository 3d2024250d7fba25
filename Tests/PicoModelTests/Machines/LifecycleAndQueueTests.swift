@testable import PicoModel
import Testing

@Suite("Lifecycle")
struct LifecycleTests {
    @Test func test_normalLife_movesThroughEveryPhase_withReadinessOnlyWhenReady() {
        var lifecycle = Lifecycle(gracePeriod: .seconds(60), leaveBudget: .seconds(5))
        #expect(lifecycle.on(.started, now: .zero) == [.phaseChanged(from: .starting, to: .joining)])
        #expect(!lifecycle.isReady)
        #expect(lifecycle.on(.joined, now: .seconds(1)) == [.phaseChanged(from: .joining, to: .ready), .setReadiness(true)])
        #expect(lifecycle.isReady)
        #expect(lifecycle.on(.shutdownRequested, now: .seconds(10)) == [
            .phaseChanged(from: .ready, to: .draining), .setReadiness(false), .beginDrain(deadline: .seconds(65)),
        ])
        #expect(lifecycle.on(.shutdownRequested, now: .seconds(11)) == [], "a second SIGTERM changes nothing")
        #expect(lifecycle.on(.leaveCompleted, now: .seconds(20)) == [.phaseChanged(from: .draining, to: .left), .exit(.left)])
        #expect(lifecycle.on(.joined, now: .seconds(21)) == [])
    }

    @Test func test_joinFailure_exits_andShutdownWhileJoining_drains() {
        var failing = Lifecycle(gracePeriod: .seconds(60), leaveBudget: .seconds(5))
        _ = failing.on(.started, now: .zero)
        #expect(failing.on(.joinFailed, now: .seconds(60)) == [.phaseChanged(from: .joining, to: .left), .exit(.joinFailed)])
        var early = Lifecycle(gracePeriod: .seconds(60), leaveBudget: .seconds(5))
        _ = early.on(.started, now: .zero)
        #expect(early.on(.shutdownRequested, now: .seconds(1)) == [.phaseChanged(from: .joining, to: .draining), .beginDrain(deadline: .seconds(56))])
    }
}

@Suite("Broadcast queue")
struct BroadcastQueueTests {
    @Test func test_newerUpdateAboutAUID_replacesTheQueuedOne() {
        var queue = BroadcastQueue()
        queue.enqueue(.alive(info: Fixture.info(2), incarnation: 0, draining: false))
        queue.enqueue(.suspect(subject: Fixture.info(2).uid, incarnation: 0, accuser: NodeUID(9)))
        queue.enqueue(.alive(info: Fixture.info(3), incarnation: 0, draining: false))
        #expect(queue.messages == [
            .suspect(subject: Fixture.info(2).uid, incarnation: 0, accuser: NodeUID(9)),
            .alive(info: Fixture.info(3), incarnation: 0, draining: false),
        ])
    }

    @Test func test_take_sendsLeastSentFirst_withinTheBudget_andDropsAtTheLimit() {
        var queue = BroadcastQueue()
        for number in 2...4 { queue.enqueue(.left(subject: NodeUID(UInt64(number)), incarnation: 0)) }
        let size = GossipCodec.encode(.left(subject: NodeUID(2), incarnation: 0)).count
        #expect(queue.take(budget: size * 2, maxMessages: 10, limit: 2).count == 2)
        let second = queue.take(budget: size, maxMessages: 10, limit: 2)
        #expect(second == [GossipCodec.encode(.left(subject: NodeUID(4), incarnation: 0))], "the unsent one goes first")
        _ = queue.take(budget: size * 3, maxMessages: 10, limit: 2)
        #expect(queue.isEmpty, "every item reached its limit of two sends")
    }

    @Test func test_localDeltas_mergeIntoOneContiguousRun_untilTheSizeBound() {
        var queue = BroadcastQueue()
        var table = EndpointTable(localOwner: NodeUID(1))
        for index in 0..<3 { queue.enqueueLocalDelta(table.setLocalCount(1, for: "svc-\(index)")!) }
        queue.enqueueLocalDelta(table.setLocalCount(2, for: "svc-0")!)
        guard case .endpointDelta(let merged) = queue.messages.first, queue.count == 1 else {
            Issue.record("expected one merged delta, got \(queue.messages)")
            return
        }
        #expect(merged.base == 0 && merged.lastVersion == 4 && merged.isWellFormed)
        #expect(merged.entries.map(\.endpoint) == ["svc-1", "svc-2", "svc-0"])
        for index in 0..<40 { queue.enqueueLocalDelta(table.setLocalCount(1, for: "long-endpoint-name-\(index)")!) }
        let deltas = queue.messages.compactMap { if case .endpointDelta(let delta) = $0 { return delta } else { return nil } }
        #expect(deltas.count > 1)
        for (previous, next) in zip(deltas, deltas.dropFirst()) { #expect(next.base == previous.lastVersion, "no gap between split deltas") }
        #expect(deltas.allSatisfy { GossipCodec.encode(.endpointDelta($0)).count <= EndpointTable.maxDeltaBytes })
        var receiver = EndpointTable(localOwner: NodeUID(2))
        for delta in deltas { _ = receiver.apply(delta) }
        #expect(receiver.owners[NodeUID(1)]?.knownVersion == table.localVersion)
        #expect(receiver.endpoints == table.localEntries.map(\.endpoint).sorted())
    }

    @Test func test_queueIsBounded() {
        var queue = BroadcastQueue(maxItems: 4)
        for number in 1...10 { queue.enqueue(.left(subject: NodeUID(UInt64(number)), incarnation: 0)) }
        #expect(queue.count == 4)
    }
}

@Suite("Core values")
struct CoreTests {
    @Test func test_splitMix64_isDeterministic_andMatchesTheReferenceSequence() {
        var rng = SplitMix64(seed: 0)
        #expect(rng.next() == 0xE220_A839_7B1D_CDAF)
        #expect(rng.next() == 0x6E78_9E6A_A1B9_65F4)
        var a = SplitMix64(seed: 99)
        var b = SplitMix64(seed: 99)
        #expect((0..<100).map { _ in a.index(below: 7) } == (0..<100).map { _ in b.index(below: 7) })
    }

    @Test func test_nodeNames_followPikosRule() {
        var rng = SplitMix64(seed: 3)
        let name = NodeIdentity.makeName(prefix: "pico-0-", using: &rng)
        #expect(name.hasPrefix("pico-0-"))
        #expect(name.count == 14)
        #expect(name.dropFirst(7).allSatisfy { NodeIdentity.suffixAlphabet.contains($0) })
        #expect(NodeIdentity.makeUID(using: &rng).rawValue != 0)
    }

    @Test func test_instantArithmetic_saturates() {
        #expect(Instant.seconds(1) + .milliseconds(500) == .milliseconds(1_500))
        #expect(Instant.seconds(2) - Instant.seconds(1) == .seconds(1))
        #expect(Instant(nanoseconds: .max) + .seconds(1) == Instant(nanoseconds: .max))
        #expect(Duration.seconds(2).scaled(by: 1.5) == .milliseconds(3_000))
    }

    @Test func test_addressParsing() {
        #expect(Address(parsing: "10.0.0.1:8003") == Address(host: "10.0.0.1", port: 8003))
        #expect(Address(parsing: "[fd00::1]:8003") == Address(host: "fd00::1", port: 8003))
        #expect(Address(parsing: "pico") == nil)
        #expect(Address(parsing: "pico:99999") == nil)
        #expect(Address(parsing: ":8000") == Address(host: "", port: 8000))
        #expect(Address(parsing: "fd00::1:8003") == nil)
        #expect(Address(parsing: "[fd00::1:8003") == nil)
        #expect(Address(host: "", port: 8000).description == ":8000")
        #expect(Address(host: "fd00::1", port: 1).description == "[fd00::1]:1")
    }

    @Test func test_statusLattice_ordersIncarnationsAndTerminalStates() {
        #expect(MemberState(.alive, 0) < MemberState(.suspect, 0))
        #expect(MemberState(.suspect, 0) < MemberState(.alive, 1))
        #expect(MemberState(.alive, 100) < MemberState(.dead, 0))
        #expect(MemberState(.dead, 9) < MemberState(.left, 0))
        #expect(!MemberState(.dead, 0).allowsTransition(to: MemberState(.alive, 5)))
    }

    @Test func test_log2Approx_isAccurate() {
        for value in [1.0, 2.0, 3.0, 10.0, 1_000.0] {
            let expected = [1.0: 0.0, 2.0: 1.0, 3.0: 1.584_962_500_721_156, 10.0: 3.321_928_094_887_362, 1_000.0: 9.965_784_284_662_087][value]!
            #expect(abs(log2Approx(value) - expected) < 1e-9)
        }
    }
}
