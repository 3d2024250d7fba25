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
    /// Counted once in `pico_proxy_requests_waited_total`.
    var waited = false
    var response = HTTP1ResponseDecoder()
    var requestEnded = false
    /// The answer was written already (an error); the request body is read and dropped.
    var answered = false
    var responseHeadSent = false
    var responseComplete = false
    var clientFraming: HTTPProxyRules.ClientFraming = .none
    var keepAlive: Bool
    var upgraded = false
    /// After an upgrade: the upstream finished its direction (the client may still send).
    var upstreamFinished = false
    /// The upstream's answer allows its connection to carry another request.
    var upstreamKeepsAlive = false
    var status = 0
    /// The response head's fields as the client received them (for the access log).
    var responseHeaders = HTTPHeaders()
    var requestBytes = 0
    var responseBytes = 0
    /// Stream bytes received but not yet reported consumed (the client socket was full).
    var owedConsumption = 0
    /// Reading from the client stopped until the stream can take more.
    var waitingForStream = false

    /// `requestFraming` is the head's body framing, as its decoder read it.
    init(head: HTTPRequestHead, requestFraming: HTTPBodyFraming, startedAt: Instant, machine: RequestExchange) {
        self.head = head
        self.startedAt = startedAt
        self.requestFraming = requestFraming
        self.machine = machine
        self.keepAlive = head.keepAlive
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
}
