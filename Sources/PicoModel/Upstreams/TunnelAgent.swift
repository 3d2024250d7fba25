/// Who dialled a tunnel, as its handshake says: what the node may expect when it asks the agent
/// to move, and whether refusing the tunnel costs its endpoint anything.
public enum TunnelAgent: Hashable, Sendable {
    /// Piko's agent or SDK (`/piko/v1/upstream/`): told to go away, it waits until the node
    /// closes the tunnel, and only then reconnects.
    case piko
    /// Pico's agent (`/pico/v1/upstream/`) dialling its first tunnel, or after one broke: told to
    /// go away, it opens a replacement before it lets go.
    case pico
    /// Pico's agent dialling the replacement of a tunnel its node asked to move (header
    /// `x-pico-replacing: 1`): the old tunnel still serves, so refusing this one costs nothing.
    case picoReplacing

    /// The header Pico's agent sends when it dials a replacement.
    public static let replacingHeader = "x-pico-replacing"

    /// Who dialled, from the handshake's path (`UpstreamPath.prefixes`: Piko's prefix means Piko's
    /// agent) and headers.
    public init(path: String, headers: HTTPHeaders) {
        if path.hasPrefix(UpstreamPath.prefixes[1]) {
            self = .piko
        } else {
            self = headers.first(Self.replacingHeader) == "1" ? .picoReplacing : .pico
        }
    }

    /// True when the agent opens a replacement before it lets go of a tunnel it is asked to move.
    public var reconnectsFirst: Bool { self != .piko }
}
