/// A map from stream ID to a value, for the per-frame lookups of a yamux session and its
/// transport: open addressing with linear probing over a power-of-two table, Fibonacci hashing
/// of the ID, and backward-shift deletion (no tombstones). It replaces `Dictionary` there, whose
/// seeded SipHash cost several lookups' worth of time on every frame. Stream IDs are chosen by
/// the peer only within a session's `maxStreams`, so the table stays small and probing short.
/// Inlinable, so that users in other modules (the runtime's transports) get it specialized.
public struct StreamTable<Value> {
    @usableFromInline var keys: [UInt32]
    @usableFromInline var values: [Value?]
    @usableFromInline var storedCount: Int
    @usableFromInline var shift: UInt32

    /// An empty table.
    @inlinable
    public init() {
        self.storedCount = 0
        self.keys = Array(repeating: 0, count: 16)
        self.values = Array(repeating: nil, count: 16)
        self.shift = 32 - 4
    }

    /// Entries stored.
    @inlinable public var count: Int { self.storedCount }

    /// True when no entry is stored.
    @inlinable public var isEmpty: Bool { self.count == 0 }

    @inlinable var mask: Int { self.keys.count - 1 }

    @inlinable func home(_ key: UInt32) -> Int { Int((key &* 0x9E37_79B1) >> self.shift) }

    /// The slot holding `key`, or nil.
    @inlinable func slot(of key: UInt32) -> Int? {
        var slot = self.home(key)
        while self.values[slot] != nil {
            if self.keys[slot] == key { return slot }
            slot = (slot + 1) & self.mask
        }
        return nil
    }

    /// True when `key` has a value.
    @inlinable public func contains(_ key: UInt32) -> Bool { self.slot(of: key) != nil }

    /// The value for `key`; setting nil removes it.
    @inlinable public subscript(key: UInt32) -> Value? {
        get { self.slot(of: key).flatMap { self.values[$0] } }
        set {
            if let newValue {
                self.insert(newValue, for: key)
            } else {
                _ = self.removeValue(forKey: key)
            }
        }
    }

    /// Runs `body` on the value for `key` in place (no copy of the value); nil when absent.
    @inlinable @discardableResult
    public mutating func modify<Result>(_ key: UInt32, _ body: (inout Value) -> Result) -> Result? {
        guard let slot = self.slot(of: key) else { return nil }
        var value = self.values[slot].take()!
        defer { self.values[slot] = value }
        return body(&value)
    }

    @inlinable mutating func insert(_ value: Value, for key: UInt32) {
        if let slot = self.slot(of: key) {
            self.values[slot] = value
            return
        }
        if (self.count + 1) * 4 > self.keys.count * 3 { self.grow() }
        var slot = self.home(key)
        while self.values[slot] != nil { slot = (slot + 1) & self.mask }
        self.keys[slot] = key
        self.values[slot] = value
        self.storedCount += 1
    }

    /// Removes and returns the value for `key`.
    @inlinable @discardableResult
    public mutating func removeValue(forKey key: UInt32) -> Value? {
        guard var hole = self.slot(of: key) else { return nil }
        let removed = self.values[hole].take()
        self.storedCount -= 1
        // Shift later entries of the probe run back so that lookups never stop early.
        var next = (hole + 1) & self.mask
        while self.values[next] != nil {
            let home = self.home(self.keys[next])
            let outOfPlace = hole <= next ? (home <= hole || home > next) : (home <= hole && home > next)
            if outOfPlace {
                self.keys[hole] = self.keys[next]
                self.values[hole] = self.values[next].take()
                hole = next
            }
            next = (next + 1) & self.mask
        }
        return removed
    }

    /// Removes every entry.
    @inlinable public mutating func removeAll() {
        for slot in self.values.indices { self.values[slot] = nil }
        self.storedCount = 0
    }

    /// The stored IDs, ascending (the order anything iterating the table must use).
    @inlinable public var sortedKeys: [UInt32] {
        var keys: [UInt32] = []
        keys.reserveCapacity(self.count)
        for slot in self.values.indices where self.values[slot] != nil { keys.append(self.keys[slot]) }
        return keys.sorted()
    }

    @inlinable mutating func grow() {
        let oldKeys = self.keys
        let oldValues = self.values
        self.keys = Array(repeating: 0, count: oldKeys.count * 2)
        self.values = Array(repeating: nil, count: oldKeys.count * 2)
        self.shift -= 1
        self.storedCount = 0
        for slot in oldKeys.indices {
            if let value = oldValues[slot] { self.insert(value, for: oldKeys[slot]) }
        }
    }
}

extension StreamTable: Sendable where Value: Sendable {}
