/// A transport address: a host (IP literal or name, as the shell understands it) and a port.
/// The model treats addresses as opaque, comparable values; only shells dial them (the runtime's
/// `Address.numeric()` and `Address.resolve(passive:)` turn one into socket addresses).
///
/// The same type carries the addresses of configuration (`proxy.bind_addr`, `--connect.url`, ...),
/// where an empty host means every interface when binding and localhost when dialling.
public struct Address: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// IP literal or host name, without brackets; empty in configuration for "every interface"
    /// (binding) or "localhost" (dialling).
    public var host: String
    /// Port number.
    public var port: UInt16

    /// Creates an address from its parts.
    public init(host: String, port: UInt16) {
        self.host = host
        self.port = port
    }

    /// Parses `host:port`, `:port` (empty host) or `[v6]:port`, as configuration writes them; nil
    /// when malformed: no colon, no valid port, an unbracketed host with a colon, or a bracket
    /// that is not closed right before the port's colon.
    public init?(parsing text: String) {
        guard let colon = text.lastIndex(of: ":") else { return nil }
        var host = String(text[..<colon])
        guard let port = UInt16(text[text.index(after: colon)...]) else { return nil }
        if host.hasPrefix("[") {
            guard host.hasSuffix("]") else { return nil }
            host = String(host.dropFirst().dropLast())
        } else if host.contains(":") {
            return nil
        }
        self.init(host: host, port: port)
    }

    public static func < (lhs: Address, rhs: Address) -> Bool {
        (lhs.host, lhs.port) < (rhs.host, rhs.port)
    }

    /// `host:port`, with brackets around IPv6 literals.
    public var description: String {
        self.host.contains(":") ? "[\(self.host)]:\(self.port)" : "\(self.host):\(self.port)"
    }
}
