/// Gossip messages a node sent and received, by kind (for `pico_gossip_messages_total`):
/// counted by the node itself, on plain text, so a shell never opens sealed gossip twice.
public struct GossipTraffic: Hashable, Sendable {
    /// The kinds, in label order (the codec's kind numbers 1 to 10).
    public static let kindNames = ["ping", "ack", "ping_req", "nack", "alive", "suspect", "dead", "left", "leave_ack", "endpoint_delta"]

    /// Counts by kind, indexed like `kindNames`.
    public private(set) var sent = [UInt64](repeating: 0, count: GossipTraffic.kindNames.count)
    public private(set) var received = [UInt64](repeating: 0, count: GossipTraffic.kindNames.count)

    public init() {}

    /// Counts one encoded message (its first byte is its kind) as sent.
    mutating func countSent(encoded message: [UInt8]) {
        guard let kind = message.first, kind >= 1, Int(kind) <= Self.kindNames.count else { return }
        self.sent[Int(kind) - 1] &+= 1
    }

    /// Counts one decoded message as received.
    mutating func countReceived(_ message: GossipMessage) {
        guard let index = Self.kindNames.firstIndex(of: message.kindName) else { return }
        self.received[index] &+= 1
    }
}
