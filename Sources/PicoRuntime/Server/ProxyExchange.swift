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
    let endpoint: String?
    let requestFraming: HTTPBodyFraming
    /// The request carries `x-pico-forward: true` and came from a live member's proxy IP: a
    /// peer forwarded it, so it is never forwarded again (one hop) and keeps the peer's
    /// `X-Forwarded-Proto` and `-Host`. A client's mark does not count.
    let arrivedFromPeer: Bool
    /// The local tunnel the request was routed to (for the in-flight accounting).
    var tunnelID: TunnelID?
    /// The node the request was forwarded to (nil when it went to a local tunnel).
    var forwardedTo: NodeUID?
    /// Times this request's connection moved between loops.
    var moves = 0
    /// Nodes a forward of this request failed on before they answered; routing skips them.
    var avoiding: [NodeUID] = []
    /// Where the request goes (nil before routing, and once it is torn down).
    var upstream: (any ExchangeUpstream)?
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
    init(head: HTTPRequestHead, requestFraming: HTTPBodyFraming, startedAt: Instant, arrivedFromPeer: Bool) {
        self.head = head
        self.startedAt = startedAt
        self.endpoint = HTTPProxyRules.endpoint(of: head)
        self.requestFraming = requestFraming
        self.arrivedFromPeer = arrivedFromPeer
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
