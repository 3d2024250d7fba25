/// Identifies one state-exchange stream. IDs in `.openStateExchange` are chosen by the node; IDs
/// in `.stateExchangeRequested` (streams a peer opened) are chosen by the shell.
public struct ExchangeID: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The number.
    public var rawValue: UInt64
    /// Wraps a number.
    public init(_ rawValue: UInt64) { self.rawValue = rawValue }
    public static func < (lhs: ExchangeID, rhs: ExchangeID) -> Bool { lhs.rawValue < rhs.rawValue }
    public var description: String { "exchange-\(self.rawValue)" }
}

/// Identifies one proxied request, chosen by the shell; echoed in its `.route` directive.
public struct RequestID: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The number.
    public var rawValue: UInt64
    /// Wraps a number.
    public init(_ rawValue: UInt64) { self.rawValue = rawValue }
    public static func < (lhs: RequestID, rhs: RequestID) -> Bool { lhs.rawValue < rhs.rawValue }
    public var description: String { "request-\(self.rawValue)" }
}

/// Everything that can happen to a node, as its shell reports it.
public enum ClusterInput: Hashable, Sendable {
    /// The process started: begin joining.
    case start
    /// A timer armed by `.schedule` fired.
    case timerFired(TimerID)
    /// A gossip datagram arrived from `from` (its UDP source).
    case datagramReceived([UInt8], from: Address)
    /// A datagram to `to` could not be sent (counted as loss; SWIM needs no more).
    case datagramSendFailed(to: Address)
    /// The `cluster.join` names resolved to these gossip addresses.
    case seedsResolved([Address])
    /// Resolving the `cluster.join` names failed.
    case seedResolutionFailed(reason: String)
    /// A peer opened a state-exchange stream and sent `bytes`; answer with `.replyStateExchange`.
    case stateExchangeRequested(ExchangeID, bytes: [UInt8], from: Address)
    /// The peer answered our `.openStateExchange`.
    case stateExchangeReplied(ExchangeID, bytes: [UInt8])
    /// Our `.openStateExchange` failed (connect error, timeout, peer closed).
    case stateExchangeFailed(ExchangeID, reason: String)
    /// An agent opened tunnel `id` for `endpoint`.
    case tunnelOpened(TunnelID, endpoint: String)
    /// Tunnel `id` closed (agent went away, or after our `.closeTunnel`). Idempotent.
    case tunnelClosed(TunnelID)
    /// A request stream routed to tunnel `id` finished (successfully or not).
    case streamFinished(TunnelID)
    /// Decide where a request for `endpoint` goes; `forwarded` when it carries `x-pico-forward`.
    case routeRequest(RequestID, endpoint: String?, forwarded: Bool)
    /// A data loop routed a request itself (from its `LoopRouter`): a local decision counts the
    /// request in flight on its tunnel until `.streamFinished`, and a forward to a draining node
    /// arms the route repair, exactly as `.routeRequest` would have.
    case routedByLoop(RouteDecision)
    /// SIGTERM: shut down gracefully.
    case shutdownRequested
}
