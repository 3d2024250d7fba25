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
    /// An agent opened tunnel `id` for `endpoint`, on the shell's data loop `loop` (the
    /// `.tunnelAdded` routing change names it, so other loops move requests there). `tenant` is
    /// the agent's tenant ("" without `upstream.tenants`); `wallMilliseconds` the wall clock
    /// (Unix milliseconds), which dates a new tenant claim on the endpoint. `agent`: who dialled, as
    /// the handshake says (how it moves; whether rebalancing may refuse it).
    case tunnelOpened(TunnelID, endpoint: String, loop: Int = 0, tenant: String = "", wallMilliseconds: UInt64 = 0, agent: TunnelAgent = .pico)
    /// Tunnel `id` closed (agent went away, or after our `.closeTunnel`). Idempotent.
    case tunnelClosed(TunnelID)
    /// A request stream routed to tunnel `id` finished (successfully or not).
    case streamFinished(TunnelID)
    /// A data loop routed a request (from its `LoopRouter`): a local decision counts the request
    /// in flight on its tunnel until `.streamFinished`, and a forward to a draining node arms the
    /// route repair.
    case routedByLoop(RouteDecision)
    /// A data loop began relaying a forwarded upgrade (a WebSocket or a TCP route whose member
    /// answered 101): its bytes pass through this node until `.relayEnded`. A draining node
    /// leaves only once its relays ended or its drain deadline passed, so a long-lived stream
    /// entering through it is not cut early.
    case relayStarted
    /// A relay `.relayStarted` announced ended. Unmatched ones are ignored.
    case relayEnded
    /// A forward to member `uid` failed before any answer byte (see `Reachability`).
    case forwardFailed(NodeUID)
    /// Member `uid` answered a forward although the node held evidence against it.
    case forwardAnswered(NodeUID)
    /// Member `uid` marked a forward's answer or heartbeated one (`ForwardHeartbeat`): every
    /// data loop may hold silence from it against it.
    case forwardHeartbeats(NodeUID)
    /// A data loop's request began waiting for a holder of an endpoint no live member is known
    /// to hold. The node tries to reach a member it declared dead at once (a partition longer
    /// than the gossip to the dead may have healed, and the reconnect tick comes only every
    /// `reconnectInterval`), at most once per `ClusterNode.holderWantedInterval`; and it syncs
    /// with a random live member (the holder's announcement may never have arrived), at most
    /// once per `ClusterNode.holderRepairInterval`.
    case holderWanted
    /// SIGTERM: shut down gracefully.
    case shutdownRequested
    /// The gossip keys changed (the key file was replaced): the first seals from now on, all
    /// open. Ignored by a node without gossip security.
    case gossipKeyringChanged(GossipKeyring)
}
