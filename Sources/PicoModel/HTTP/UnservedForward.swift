/// How a holder tells the node that forwarded a request to it that the request reached no
/// upstream there.
///
/// A forward can arrive just after the holder's last tunnel for its endpoint closed (during a
/// rollout the agent moved its tunnel, and gossip has not told the forwarding node yet). The
/// holder then answers 502 `no available upstreams` carrying `x-pico-unserved: 1`: nothing of the
/// request reached an upstream, so the forwarding node sends it to another holder it knows of
/// (any bodyless request, as after a refused dial; no evidence against the node, which answered),
/// and answers the client itself only when none is left.
///
/// The field is per hop: a node drops it from every answer it relays (`HTTPProxyRules.endToEnd`),
/// so a tenant's upstream cannot pose as a node without a tunnel and have one request served
/// twice, and the forwarding node heeds it only on a forward's answer, never a tunnel's.
public enum UnservedForward {
    /// The field on the holder's answer.
    public static let header = "x-pico-unserved"

    /// True for a forward's answer that says the request reached no upstream at that node.
    public static func isUnserved(_ head: HTTPResponseHead) -> Bool {
        head.status == 502 && head.headers.contains(Self.header)
    }
}
