/// How a node proves to another that a forwarded request comes from a member, when gossip is
/// sealed: `x-pico-forward-proof: <unix seconds>.<MAC>`, the MAC (HMAC-SHA256 under a key
/// derived from the gossip key ring, computed by the shell) over the request's method, target,
/// endpoint and that time. Only holders of the cluster's gossip keys can make one, so a holder
/// trusts such a request's `X-Forwarded-*` fields and a client's own `x-pico-forward` is not
/// trusted. It proves who sent the request, not that it may be served: the holder checks the
/// token itself (a member with other auth settings, or none, must not let requests through).
/// The proof binds the head, not the body: against someone who can read and replay traffic
/// between nodes within the window, the nodes' TLS (`proxy.tls.*`) is the protection.
public enum ForwardProof {
    /// The header field.
    public static let header = "x-pico-forward-proof"
    /// How far a proof's time may be from the holder's clock (either way): nodes' clocks must
    /// agree within it (NTP keeps them within a second).
    public static let window: Int64 = 60

    /// What the MAC covers.
    public static func message(method: String, target: String, endpoint: String?, time: Int64) -> [UInt8] {
        Array("pico-forward-proof v1\n\(time)\n\(method)\n\(target)\n\(endpoint ?? "")".utf8)
    }

    /// The field's value for a MAC made at `time`.
    public static func value(time: Int64, mac: [UInt8]) -> String {
        "\(time).\(Base64URL.encode(mac))"
    }

    /// The time and MAC of a field's value; nil when it is not one (a bounded length, a time of
    /// at most 12 digits).
    public static func parse(_ value: String) -> (time: Int64, mac: [UInt8])? {
        guard value.utf8.count <= 128, let dot = value.firstIndex(of: ".") else { return nil }
        let digits = value[..<dot]
        guard (1...12).contains(digits.count), digits.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let time = Int64(digits),
              let mac = Base64URL.decode(value[value.index(after: dot)...].utf8), mac.count == 32 else { return nil }
        return (time, mac)
    }

    /// True when a proof made at `time` may be taken at `now` (both Unix seconds).
    public static func isFresh(_ time: Int64, now: Int64) -> Bool {
        let difference = time > now ? time - now : now - time
        return difference <= Self.window
    }

    /// What the shell found about a request's proof.
    public enum Check: Hashable, Sendable {
        /// Gossip is not sealed: there is no key to prove anything with; a forward is trusted by
        /// the address it comes from, as before.
        case notApplicable
        /// A fresh proof that verified under a key of the ring.
        case verified
        /// No proof, a stale one, or one that does not verify: not from a member.
        case refused
    }
}
