import PicoModel

/// The state of one request on a proxy connection, from its head to the end of its response.
final class ProxyExchange {
    let head: HTTPRequestHead
    let startedAt: Instant
    let endpoint: String?
    let requestFraming: HTTPBodyFraming
    var tunnel: ServerTunnel?
    var tunnelID: TunnelID?
    var streamID: UInt32?
    var response = HTTP1ResponseDecoder()
    var requestEnded = false
    /// The answer was written already (an error); the request body is read and dropped.
    var answered = false
    var responseHeadSent = false
    var responseComplete = false
    var clientFraming: HTTPProxyRules.ClientFraming = .none
    var keepAlive: Bool
    var upgraded = false
    var status = 0
    var requestBytes = 0
    var responseBytes = 0
    /// Stream bytes received but not yet reported consumed (the client socket was full).
    var owedConsumption = 0
    /// Reading from the client stopped until the stream can take more.
    var waitingForStream = false
    var timeout: LoopTimer?

    init(head: HTTPRequestHead, startedAt: Instant) {
        self.head = head
        self.startedAt = startedAt
        self.endpoint = HTTPProxyRules.endpoint(of: head)
        self.requestFraming = HTTPProxyRules.framing(ofRequest: head)
        self.keepAlive = head.keepAlive
    }
}
