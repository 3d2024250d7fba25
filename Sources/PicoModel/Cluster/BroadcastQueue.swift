/// Pending broadcasts (membership updates and endpoint deltas), each sent a limited number of
/// times piggybacked on datagrams, least-sent first (memberlist's `TransmitLimitedQueue`).
///
/// Membership updates are keyed by their subject UID, so a newer update replaces an older one
/// (swift-distributed-actors PR #461: never key by the whole message). Endpoint deltas are keyed
/// by owner and base version; our own consecutive changes are merged into one delta while it fits
/// `EndpointTable.maxDeltaBytes`, which keeps every delta a contiguous version run.
public struct BroadcastQueue: Hashable, Sendable {
    /// What an item is about.
    public enum Key: Hashable, Sendable {
        /// A membership update about this UID.
        case member(NodeUID)
        /// An endpoint delta of `owner` starting after `base`.
        case endpoints(owner: NodeUID, base: UInt64)
    }

    struct Item: Hashable, Sendable {
        var key: Key
        var message: GossipMessage
        var encoded: [UInt8]
        var transmits: Int
        var order: UInt64
    }

    /// Bound on queued items; beyond it the most-sent item is dropped.
    public let maxItems: Int
    private(set) var items: [Item] = []
    private var nextOrder: UInt64 = 0

    /// Creates an empty queue holding at most `maxItems` items.
    public init(maxItems: Int = 1_024) {
        precondition(maxItems > 0, "a broadcast queue needs room for at least one item")
        self.maxItems = maxItems
    }

    /// Number of queued items.
    public var count: Int { self.items.count }

    /// True when nothing is queued.
    public var isEmpty: Bool { self.items.isEmpty }

    /// Queues `message`, replacing a queued item with the same key.
    public mutating func enqueue(_ message: GossipMessage) {
        guard let key = Self.key(of: message) else { return }
        self.insert(Item(key: key, message: message, encoded: GossipCodec.encode(message), transmits: 0, order: self.takeOrder()))
    }

    /// Queues one of our own endpoint changes, merged into our latest queued delta when that delta
    /// ends exactly where this one starts and the result still fits `EndpointTable.maxDeltaBytes`.
    public mutating func enqueueLocalDelta(_ delta: EndpointDelta) {
        if let position = self.items.lastIndex(where: { item in
            if case .endpointDelta(let queued) = item.message { return queued.owner == delta.owner && queued.lastVersion == delta.base }
            return false
        }), case .endpointDelta(var merged) = self.items[position].message {
            for entry in delta.entries {
                merged.entries.removeAll { $0.endpoint == entry.endpoint }
                merged.entries.append(entry)
            }
            let encoded = GossipCodec.encode(.endpointDelta(merged))
            if encoded.count <= EndpointTable.maxDeltaBytes {
                self.items[position].message = .endpointDelta(merged)
                self.items[position].encoded = encoded
                self.items[position].transmits = 0
                return
            }
        }
        self.enqueue(.endpointDelta(delta))
    }

    /// Takes queued messages whose encodings fit in `budget` bytes (at most `maxMessages`),
    /// least-sent first, counting one transmission each; items sent `limit` times are dropped.
    public mutating func take(budget: Int, maxMessages: Int, limit: Int) -> [[UInt8]] {
        guard !self.items.isEmpty, budget > 0, maxMessages > 0 else { return [] }
        // Sorted as plain numbers: comparing through `items[i]` retained each item's message and
        // bytes per comparison.
        let order = self.items.indices
            .map { (transmits: self.items[$0].transmits, order: self.items[$0].order, index: $0) }
            .sorted { ($0.transmits, $0.order) < ($1.transmits, $1.order) }
            .map(\.index)
        var remaining = budget
        var taken: [[UInt8]] = []
        var spent: [Int] = []
        for index in order {
            guard taken.count < maxMessages else { break }
            let size = self.items[index].encoded.count
            guard size <= remaining else { continue }
            remaining -= size
            taken.append(self.items[index].encoded)
            spent.append(index)
        }
        for index in spent { self.items[index].transmits += 1 }
        self.items.removeAll { $0.transmits >= limit }
        return taken
    }

    /// Queued messages in queue order (for tests and views).
    public var messages: [GossipMessage] { self.items.map(\.message) }

    /// The key of `message`, nil for probe traffic that is never broadcast.
    public static func key(of message: GossipMessage) -> Key? {
        switch message {
        case .alive, .suspect, .dead, .left: message.subject.map(Key.member)
        case .endpointDelta(let delta): .endpoints(owner: delta.owner, base: delta.base)
        case .ping, .ack, .pingRequest, .nack, .leaveAck: nil
        }
    }

    private mutating func insert(_ item: Item) {
        if let position = self.items.firstIndex(where: { $0.key == item.key }) {
            self.items[position] = item
            return
        }
        if self.items.count >= self.maxItems, let worst = self.items.indices.max(by: {
            (self.items[$0].transmits, UInt64.max - self.items[$0].order) < (self.items[$1].transmits, UInt64.max - self.items[$1].order)
        }) {
            self.items.remove(at: worst)
        }
        self.items.append(item)
    }

    private mutating func takeOrder() -> UInt64 {
        defer { self.nextOrder += 1 }
        return self.nextOrder
    }
}
