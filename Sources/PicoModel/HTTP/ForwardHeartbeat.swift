/// How a node tells a slow upstream from a lost node on a forwarded request.
///
/// A forward that reached the holder and then lost its way back (a partition cut the return
/// path) looks, to the forwarding node, exactly like an upstream that takes long to answer: no
/// byte arrives either way. So the forwarding node asks for heartbeats (`x-pico-heartbeat:
/// <interval in ms>` on the forwarded request), and the holder, while its upstream has not
/// started the answer, sends an interim `102 Processing` carrying `x-pico-heartbeat` every
/// interval. The forwarding node swallows them; silence longer than
/// `ExchangeSettings.forwardAnswerTimeout` then means the hop is lost, and an idempotent request
/// goes to another holder.
///
/// Mixed versions: a holder that does not know the field ignores it, so the forwarding node
/// applies the silence rule only to a node it has received a heartbeat from (nothing else proves
/// that 102s get through: a proxy between the nodes might drop them). A holder heartbeats the
/// first forwarded request of each connection at once, so the forwarding node learns on its first
/// forward even when answers are fast. A holder never relays an upstream's own interim answer
/// with the field (a tenant cannot pose as a heartbeating node).
public enum ForwardHeartbeat {
    /// The request field asking for heartbeats, and the mark on the holder's interim answers.
    public static let header = "x-pico-heartbeat"

    /// Heartbeat intervals a holder accepts from a request: a smaller one is raised, a larger
    /// one lowered, so a forged or mistaken value neither floods nor starves the forward.
    public static let intervalRange: ClosedRange<Int64> = 100...10_000

    /// A heartbeat as the holder writes it.
    public static let interimBytes: [UInt8] = Array("HTTP/1.1 102 Processing\r\n\(header): 1\r\n\r\n".utf8)

    /// A heartbeat as the forwarding node decodes it (`interimBytes`' head).
    public static let interimHead = HTTPResponseHead(status: 102, reason: "Processing", headers: [header: "1"])

    /// The request field's value asking for a heartbeat every `interval` (whole milliseconds).
    public static func requestValue(every interval: Duration) -> String {
        String(max(1, interval.components.seconds &* 1_000 &+ interval.components.attoseconds / 1_000_000_000_000_000))
    }

    /// The interval a forwarded request's field asks for, clamped to `intervalRange`; nil when
    /// the field is absent or not a decimal number of milliseconds.
    public static func interval(requestedBy value: String?) -> Duration? {
        guard let value, !value.isEmpty, value.utf8.count <= 9, value.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }),
              let milliseconds = Int64(value) else { return nil }
        return .milliseconds(min(max(milliseconds, Self.intervalRange.lowerBound), Self.intervalRange.upperBound))
    }

    /// True for an interim answer that is a holder's heartbeat, not the upstream's own 1xx.
    public static func isHeartbeat(_ head: HTTPResponseHead) -> Bool {
        head.status == 102 && head.headers.contains(Self.header)
    }
}
