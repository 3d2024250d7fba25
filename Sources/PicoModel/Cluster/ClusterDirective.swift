/// What a `ClusterNode` asks its shell to do, in order.
public enum ClusterDirective: Hashable, Sendable {
    /// Send a gossip datagram (at most `maxPacketSize` bytes).
    case sendDatagram([UInt8], to: Address)
    /// Open a stream to `to`, send `bytes`, and report the answer with `.stateExchangeReplied`
    /// or `.stateExchangeFailed` under the same ID.
    case openStateExchange(ExchangeID, to: Address, bytes: [UInt8])
    /// Answer the peer's stream `id` with `bytes`, then close it.
    case replyStateExchange(ExchangeID, bytes: [UInt8])
    /// Arm timer `id` for `at`, replacing a pending one with the same ID.
    case schedule(TimerID, at: Instant)
    /// Resolve these names (Piko's `cluster.join`) and report with `.seedsResolved`.
    case resolveSeeds([String])
    /// Tell every data loop's `LoopRouter` these changes, in order (after carrying out the
    /// directives before it).
    case routingChanged([RoutingChange])
    /// Ask the agent of this tunnel to move (yamux GoAway): it opens a new tunnel, through the
    /// load balancer, before closing this one.
    case tellAgentToMove(TunnelID)
    /// Close this tunnel now (its requests are done, or the grace period ran out).
    case closeTunnel(TunnelID)
    /// Report this to the readiness probe (`/ready`).
    case setReadiness(Bool)
    /// Exit the process.
    case exit(Lifecycle.ExitReason)
    /// Something observable happened (for logs, metrics and checkers).
    case event(ClusterEvent)
}

/// Observable facts from a `ClusterNode`.
public enum ClusterEvent: Hashable, Sendable {
    /// From the membership machine.
    case membership(MembershipEvent)
    /// The lifecycle phase changed.
    case phaseChanged(from: Lifecycle.Phase, to: Lifecycle.Phase)
    /// `owner` now has `count` listeners for `endpoint` (zero: gone).
    case endpointChanged(endpoint: String, owner: NodeUID, count: UInt32)
    /// A tunnel was registered.
    case tunnelRegistered(TunnelID, endpoint: String)
    /// A tunnel was removed.
    case tunnelRemoved(TunnelID, endpoint: String)
    /// A tunnel was refused (its endpoint ID is empty or too long, a quota, another tenant's
    /// endpoint, or a moved agent's replacement on a node holding more than its share: see
    /// `Rebalancer.refusesReplacement`).
    case tunnelRejected(TunnelID, reason: String)
    /// Rebalancing asked the agent of this tunnel to move (`.tellAgentToMove` follows).
    case rebalanceMoveAsked(TunnelID, endpoint: String)
    /// A tunnel rebalancing moved was released: its endpoint was served elsewhere for
    /// `handoverSettleTime` and no request was left on it.
    case rebalanceMoveDone(TunnelID, endpoint: String)
    /// A datagram or state message could not be decoded; it was dropped.
    case malformedMessage(from: Address?, error: WireDecodeError)
    /// A datagram or state message that did not authenticate under the gossip keys (or plain
    /// text where only sealed gossip is taken): dropped before it was parsed.
    case unauthenticatedMessage(from: Address?, refusal: GossipSeal.Refusal)
    /// A datagram could not be sent.
    case datagramSendFailed(to: Address)
    /// A state exchange we started failed.
    case stateExchangeFailed(to: Address, reason: String)
    /// An endpoint lost its last holder in our table: a sync with this member was opened, in case
    /// we missed the announcement of its replacement.
    case routeRepairSync(with: Address)
}
