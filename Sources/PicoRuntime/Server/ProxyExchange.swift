import PicoModel

/// The state of one request on a proxy connection, from its head to the end of its response.
/// It is its stream's handler, so late events of a finished request's stream never reach the
/// next request on the same connection.
final class ProxyExchange: TunnelStreamHandler {
    /// The connection serving it; cleared when the exchange ends (a strong reference: a weak one
    /// would give every connection a side table and slow every retain of it).
    var owner: ProxyConnection?
    let head: HTTPRequestHead
    let startedAt: Instant
    let requestFraming: HTTPBodyFraming
    /// The model's exchange machine: routing, retry, waiting, timeouts and error statuses.
    var machine: RequestExchange
    /// Where the request goes (nil before routing, and once it is torn down).
    var upstream: (any ExchangeUpstream)?
    /// The tunnel the node counts this request in flight on (reported with `.routedByLoop`;
    /// `.streamFinished` is owed when the exchange ends).
    var countedTunnel: TunnelID?
    /// The node counts this forwarded upgrade among the streams it relays (reported with
    /// `.relayStarted` when the peer's 101 reached the client; `.relayEnded` is owed when the
    /// exchange ends), so a draining node does not cut it before its drain deadline.
    var relayCounted = false
    var response = HTTP1ResponseDecoder()
    /// The model's flow machine: the body's progress, the answer's framing, an upgrade's two
    /// directions, and how the connection goes on.
    var flow: ExchangeFlow
    /// The response head's fields as the client received them (for the access log).
    var responseHeaders = HTTPHeaders()
    var requestBytes = 0
    var responseBytes = 0
    /// Stream bytes received but not yet reported consumed (the client socket was full).
    var owedConsumption = 0

    /// `requestFraming` is the head's body framing, as its decoder read it.
    init(head: HTTPRequestHead, requestFraming: HTTPBodyFraming, startedAt: Instant, machine: RequestExchange, flow: ExchangeFlow) {
        self.head = head
        self.startedAt = startedAt
        self.requestFraming = requestFraming
        self.machine = machine
        self.flow = flow
    }
}

extension ProxyExchange {
    func streamReceived(_ bytes: ArraySlice<UInt8>) {
        guard let owner = self.owner, owner.isCurrent(self) else {
            // A finished exchange's stream: give the window back and drop the bytes.
            self.upstream?.consumed(bytes.count)
            return
        }
        owner.streamReceived(bytes, for: self)
    }

    func streamInputFinished() {
        guard let owner = self.owner, owner.isCurrent(self) else { return }
        owner.streamInputFinished(for: self)
    }

    func streamFailed(reason: String) {
        guard let owner = self.owner, owner.isCurrent(self) else { return }
        owner.streamFailed(for: self)
    }

    func streamWritable() {
        guard let owner = self.owner, owner.isCurrent(self) else { return }
        owner.streamWritable(for: self)
    }

    func streamRefused() {
        guard let owner = self.owner, owner.isCurrent(self) else { return }
        owner.streamRefused(for: self)
    }

    /// True while the client's socket holds more unwritten bytes than its high watermark.
    var clientIsBackedUp: Bool {
        guard let owner = self.owner else { return false }
        return !owner.connection.isWritable
    }

    /// The TCP route's WebSocket is over (`TCPRouteUpstream`): the connection closes.
    func tunnelOver() {
        guard let owner = self.owner, owner.isCurrent(self) else { return }
        owner.tunnelOver(for: self)
    }
}
