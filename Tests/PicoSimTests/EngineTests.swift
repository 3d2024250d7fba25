import PicoModel
@testable import PicoSim
import Testing

@Suite("Simulation engine primitives")
struct EngineTests {
    @Test func test_eventQueue_popsByTimeThenInsertionOrder() {
        var queue = EventQueue<Int>()
        var rng = SplitMix64(seed: 1)
        var expected: [(Int64, UInt64, Int)] = []
        for value in 0..<2_000 {
            let time = Int64(rng.index(below: 50))
            let sequence = queue.schedule(value, at: Instant(nanoseconds: time))
            expected.append((time, sequence, value))
        }
        expected.sort { ($0.0, $0.1) < ($1.0, $1.1) }
        var popped: [Int] = []
        while let next = queue.pop() { popped.append(next.event) }
        #expect(popped == expected.map(\.2))
        #expect(queue.isEmpty && queue.nextTime == nil)
    }

    @Test func test_randomStreams_areIndependentAndReproducible() {
        let streams = RandomStreams(master: 42)
        var network = streams.stream("network")
        var again = RandomStreams(master: 42).stream("network")
        #expect((0..<10).map { _ in network.next() } == (0..<10).map { _ in again.next() })
        var faults = streams.stream("faults")
        var otherMaster = RandomStreams(master: 43).stream("network")
        var fresh = streams.stream("network")
        #expect(faults.next() != fresh.next())
        #expect(otherMaster.next() != RandomStreams(master: 42).seed("network"))
    }

    @Test func test_traceHasher_matchesFNV1aVectors() {
        #expect(TraceHasher().value == 0xCBF2_9CE4_8422_2325)
        #expect(TraceHasher.hash("a") == 0xAF63_DC4C_8601_EC8C)
        #expect(TraceHasher.hash("foobar") == 0x8594_4171_F739_67E8)
        var split = TraceHasher()
        split.combine("ab")
        split.combine("c")
        var joined = TraceHasher()
        joined.combine("a")
        joined.combine("bc")
        #expect(split.value != joined.value)
        #expect(TraceHasher().hex == "cbf29ce484222325")
    }
}
