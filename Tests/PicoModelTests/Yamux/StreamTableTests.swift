@testable import PicoModel
import Testing

@Suite("Stream table")
struct StreamTableTests {
    @Test(arguments: [1, 2, 3, 4, 5])
    func test_randomInsertsUpdatesAndRemovals_matchADictionary(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        var table = StreamTable<Int>()
        var model: [UInt32: Int] = [:]
        // Few distinct keys, many operations: long probe runs, removals inside them, growth.
        let keyRange: UInt64 = seed.isMultiple(of: 2) ? 64 : 5_000
        for step in 0..<20_000 {
            let key = UInt32(rng.bounded(keyRange)) &* (seed == 5 ? 2 : 1)
            switch rng.bounded(4) {
            case 0, 1:
                table[key] = step
                model[key] = step
            case 2:
                #expect(table.removeValue(forKey: key) == model.removeValue(forKey: key))
            default:
                let changed = table.modify(key) { $0 += 1; return $0 }
                if model[key] != nil { model[key]! += 1 }
                #expect(changed == model[key])
            }
            #expect(table[key] == model[key])
            #expect(table.count == model.count)
        }
        #expect(table.sortedKeys == model.keys.sorted())
        for key in model.keys { #expect(table.contains(key) && table[key] == model[key]) }
        table.removeAll()
        #expect(table.isEmpty && table.sortedKeys.isEmpty && table[model.keys.first ?? 0] == nil)
    }

    @Test func test_keysThatShareAHome_allStayFindable_afterRemovalsInTheMiddleOfTheirRun() {
        var table = StreamTable<UInt32>()
        // Ten IDs with the same home slot in a fresh 16-slot table (the hash's top 4 bits).
        let home = { (key: UInt32) in (key &* 0x9E37_79B1) >> 28 }
        let colliding = Array((1...UInt32(10_000)).lazy.filter { home($0) == home(1) }.prefix(10))
        #expect(colliding.count == 10)
        for key in colliding { table[key] = key }
        table[colliding[3]] = nil
        table[colliding[0]] = nil
        for key in colliding where key != colliding[3] && key != colliding[0] { #expect(table[key] == key) }
        #expect(table.count == 8)
    }
}
