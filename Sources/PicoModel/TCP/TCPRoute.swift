/// The proxy port's TCP route: a WebSocket handshake on `/_pico/v1/tcp/<endpoint>` (or Piko's
/// `/_piko/v1/tcp/<endpoint>`) asks for a raw TCP connection to an upstream of `<endpoint>`. The
/// node that holds a tunnel for the endpoint opens a stream on it, answers `101` once the agent
/// accepted the stream, and from then on carries the connection's bytes in binary WebSocket
/// messages (`WebSocketStreamBridge`). Any other node forwards the handshake to a holder, as any
/// request.
///
/// Rules callers may rely on:
/// - The path names the endpoint; an `x-pico-endpoint` or `x-piko-endpoint` field that names
///   another is a conflict (400), so auth scope, forward proofs and routing see one endpoint.
/// - A handshake that is not a valid WebSocket handshake is refused before routing (405, 426 or
///   400), as is a browser's cross-site attempt (403): an `Origin` whose host differs from the
///   request's `Host` (the check gorilla/websocket, and so Piko, makes by default).
/// - Until the `101`, the route is timed and routed like a bodyless request (it may wait for a
///   holder, goes to another holder when a forward fails before any answer byte, and gets 504
///   after `proxy.timeout`); after it, it is an upgraded connection with no answer deadline.
public enum TCPRoute {
    /// The accepted prefixes, Pico's first.
    public static let prefixes = ["/_pico/v1/tcp/", "/_piko/v1/tcp/"]

    /// The fields a node adds when it forwards the route to the holder: the client's address
    /// and the address the client connected to (`host:port`), as its socket showed them, for the
    /// PROXY protocol header (`ProxyProtocolV2`). Believed only from a member
    /// (`RequestExchange.arrivedFromPeer`).
    public static let forwardedClientField = "x-pico-forwarded-client"
    public static let forwardedServerField = "x-pico-forwarded-server"

    /// The two ends of a route connection, for the PROXY protocol header: from a member's
    /// forward, the addresses it named (nil when it named none); otherwise the socket's own.
    public static func connectionAddresses(of head: HTTPRequestHead, arrivedFromPeer: Bool, socketPeer: Address?,
                                           socketLocal: Address?) -> (client: Address?, server: Address?) {
        guard arrivedFromPeer else { return (socketPeer, socketLocal) }
        func named(_ field: String) -> Address? { head.headers.first(field).flatMap { Address(parsing: $0.trimmingHTTPWhitespace()) } }
        return (named(Self.forwardedClientField), named(Self.forwardedServerField))
    }

    /// The WebSocket subprotocol that adds half-close: an empty binary message ends its sender's
    /// direction. Offered by `pico forward tcp`; a client that does not offer it (Piko's) gets a
    /// close frame when the upstream's direction ends instead.
    public static let halfCloseSubprotocol = "pico-tcp-half-close"

    /// What a handshake on the route asks for.
    public struct Handshake: Hashable, Sendable {
        /// The endpoint the path names.
        public var endpoint: String
        /// The client's `Sec-WebSocket-Key`.
        public var key: String
        /// The client offered `halfCloseSubprotocol`.
        public var halfClose: Bool

        /// The node's `101` for it, naming the subprotocol when the client offered it.
        public var switchingProtocols: HTTPResponseHead {
            var head = WebSocketHandshake.switchingProtocols(key: self.key)
            if self.halfClose { head.headers.add(name: "Sec-WebSocket-Protocol", value: TCPRoute.halfCloseSubprotocol) }
            return head
        }
    }

    /// What a request's path says about the route.
    public enum Reading: Hashable, Sendable {
        /// The path is not under the route's prefixes.
        case notTCPRoute
        /// A valid handshake for an endpoint.
        case handshake(Handshake)
        /// A request for the route that is refused with this status and message.
        case refused(status: Int, message: String)
    }

    /// The endpoint `path` names under the route's prefixes, nil when it is not under them or
    /// names no valid endpoint (the request is then refused by `read`).
    public static func endpoint(ofPath path: Substring) -> String? {
        if case .endpoint(let endpoint) = UpstreamPath.read(String(path), prefixes: Self.prefixes) { return endpoint }
        return nil
    }

    /// True when `path` is under the route's prefixes.
    public static func isRoute(_ path: Substring) -> Bool {
        path.hasPrefix(Self.prefixes[0]) || path.hasPrefix(Self.prefixes[1])
    }

    /// Reads `head`: its path, its WebSocket handshake and its `Origin`.
    public static func read(_ head: HTTPRequestHead) -> Reading {
        let path = head.path
        guard Self.isRoute(Substring(path)) else { return .notTCPRoute }
        let endpoint: String
        switch UpstreamPath.read(path, prefixes: Self.prefixes) {
        case .endpoint(let named): endpoint = named
        case .refused(let status, let message): return .refused(status: status, message: message)
        }
        let key: String
        switch WebSocketHandshake.key(of: head) {
        case .success(let value): key = value
        case .failure(let refusal): return .refused(status: refusal.status, message: "the TCP route needs a WebSocket handshake: \(refusal.message)")
        }
        if let refusal = Self.crossOriginRefusal(head) { return .refused(status: 403, message: refusal) }
        let offered = head.headers["sec-websocket-protocol"].flatMap { $0.split(separator: ",") }
        let halfClose = offered.contains { $0.trimmingHTTPWhitespace() == Self.halfCloseSubprotocol }
        return .handshake(Handshake(endpoint: endpoint, key: key, halfClose: halfClose))
    }

    /// Why a browser's handshake is refused: the authority (host and port) of its `Origin`
    /// differs from `Host`, compared without case as gorilla/websocket does; several `Origin`
    /// fields, or one without a scheme (`null`), are refused too. A client that sends no `Origin`
    /// (not a browser) passes.
    static func crossOriginRefusal(_ head: HTTPRequestHead) -> String? {
        let origins = head.headers["origin"]
        guard !origins.isEmpty else { return nil }
        guard origins.count == 1, let origin = origins.first?.trimmingHTTPWhitespace() as String?,
              let colon = origin.firstIndex(of: ":"), origin[colon...].hasPrefix("://") else {
            return "cross-origin WebSocket refused: malformed Origin"
        }
        let originHost = origin[origin.index(colon, offsetBy: 3)...].prefix { $0 != "/" }.lowercased()
        let host = (head.headers.first("host") ?? "").trimmingHTTPWhitespace().lowercased()
        guard !originHost.isEmpty, originHost == host else {
            return "cross-origin WebSocket refused: Origin \(origin.prefix(100)) is not this host"
        }
        return nil
    }
}
