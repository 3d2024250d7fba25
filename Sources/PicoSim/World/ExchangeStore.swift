import PicoModel

/// Exchanges in progress, by request and hop, each with its production machine, found without
/// hashing: the exchanges sit in reusable slots of three parallel arrays, and a table indexed by request
/// number gives the slots of a request's first two hops. (Two dictionaries keyed by request and
/// hop spent about a tenth of a 20-pod rollout hashing.)
///
/// Callers may rely on: an exchange added under a key is found under that key until removed;
/// reading a few words of an exchange never copies its machine; `keys(where:)` lists keys in
/// key order whatever the slots' order.
struct ExchangeStore: Sendable {
    /// A request's slots at hops 0 and 1 (-1: none).
    private struct FirstHops: Sendable {
        var hop0: Int32 = -1
        var hop1: Int32 = -1
    }

    // A slot's parts, in three arrays: reading an exchange's few words through a slot holding
    // its machine copied the machine too.
    private var slotKeys: [ExchangeKey?] = []
    private var slotExchanges: [SimTraffic.Exchange?] = []
    private var slotMachines: [RequestExchange?] = []
    private var freeSlots: [Int] = []
    /// By request number (index = number - 1), grown as numbers arrive.
    private var firstHops: [FirstHops] = []
    /// Slots of hops past 1, which only a node that forwards a forwarded request creates (the
    /// `at-most-one-hop` check reports it); looked up, never iterated.
    private var laterHops: [ExchangeKey: Int] = [:]

    /// The slot of `key`, if it has one.
    private func slot(of key: ExchangeKey) -> Int? {
        switch key.hop {
        case 0, 1:
            // Request numbers start at 1; a number never seen has no slot.
            guard key.request >= 1, key.request <= UInt64(self.firstHops.count) else { return nil }
            let hops = self.firstHops[Int(key.request - 1)]
            let slot = key.hop == 0 ? hops.hop0 : hops.hop1
            return slot >= 0 ? Int(slot) : nil
        default:
            return self.laterHops[key]
        }
    }

    /// Records `slot` (or -1) as `key`'s.
    private mutating func setSlot(_ slot: Int, of key: ExchangeKey) {
        switch key.hop {
        case 0, 1:
            let index = Int(key.request - 1)
            while self.firstHops.count <= index { self.firstHops.append(FirstHops()) }
            if key.hop == 0 { self.firstHops[index].hop0 = Int32(slot) } else { self.firstHops[index].hop1 = Int32(slot) }
        default:
            self.laterHops[key] = slot >= 0 ? slot : nil
        }
    }

    /// Exchange `key`'s own words (not its machine); nil when there is none.
    subscript(key: ExchangeKey) -> SimTraffic.Exchange? {
        guard let slot = self.slot(of: key) else { return nil }
        return self.slotExchanges[slot]
    }

    /// Starts exchange `key` with its machine, replacing one under the same key.
    mutating func add(_ key: ExchangeKey, _ exchange: SimTraffic.Exchange, machine: RequestExchange) {
        precondition(key.request >= 1 && key.hop >= 0, "exchange keys number requests from 1 and hops from 0")
        if let slot = self.slot(of: key) {
            self.slotExchanges[slot] = exchange
            self.slotMachines[slot] = machine
            return
        }
        let slot: Int
        if let free = self.freeSlots.popLast() {
            slot = free
            self.slotKeys[slot] = key
            self.slotExchanges[slot] = exchange
            self.slotMachines[slot] = machine
        } else {
            slot = self.slotKeys.count
            self.slotKeys.append(key)
            self.slotExchanges.append(exchange)
            self.slotMachines.append(machine)
        }
        self.setSlot(slot, of: key)
    }

    /// Runs `change` on exchange `key`'s words in place and returns what it returns (nil when
    /// there is no such exchange).
    @discardableResult
    mutating func update<Result>(_ key: ExchangeKey, _ change: (inout SimTraffic.Exchange) -> Result) -> Result? {
        guard let slot = self.slot(of: key) else { return nil }
        return change(&self.slotExchanges[slot]!)
    }

    /// Runs `body` on exchange `key`'s machine in place (nil when there is none).
    mutating func withMachine<Result>(_ key: ExchangeKey, _ body: (inout RequestExchange) -> Result) -> Result? {
        guard let slot = self.slot(of: key) else { return nil }
        return body(&self.slotMachines[slot]!)
    }

    /// Runs `body` on exchange `key`'s machine in place, with the exchange's pod (nil when there
    /// is no such exchange).
    mutating func withMachineAndPod<Result>(_ key: ExchangeKey, _ body: (inout RequestExchange, Int) -> Result) -> Result? {
        guard let slot = self.slot(of: key) else { return nil }
        guard let pod = self.slotExchanges[slot]?.pod else { return nil }
        return body(&self.slotMachines[slot]!, pod)
    }

    /// Removes exchange `key` and its machine; nil when there is none.
    mutating func remove(_ key: ExchangeKey) -> (exchange: SimTraffic.Exchange, machine: RequestExchange)? {
        guard let slot = self.slot(of: key), let exchange = self.slotExchanges[slot].take(), let machine = self.slotMachines[slot].take() else { return nil }
        self.slotKeys[slot] = nil
        self.freeSlots.append(slot)
        self.setSlot(-1, of: key)
        return (exchange, machine)
    }

    /// The keys of the exchanges `isIncluded` accepts, in key order.
    func keys(where isIncluded: (ExchangeKey, SimTraffic.Exchange) -> Bool) -> [ExchangeKey] {
        var keys: [ExchangeKey] = []
        for index in self.slotKeys.indices {
            guard let key = self.slotKeys[index], let exchange = self.slotExchanges[index], isIncluded(key, exchange) else { continue }
            keys.append(key)
        }
        return keys.sorted()
    }
}
