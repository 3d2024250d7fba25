/// How the bytes of one proxied request flow on its client connection, from its head to its
/// end: the request body going upstream (held back while the upstream is full), the answer
/// coming back re-framed for the client, an accepted upgrade's two directions, and how the
/// connection goes on afterwards (the next request, a close once written, or a lingering close
/// so a client still sending reads its answer).
///
/// It complements `RequestExchange`, which decides where the request goes, when it is retried
/// and with which status it fails; this machine decides nothing about routing. It performs no
/// I/O: its shell (the runtime's `ProxyConnection`) reads, writes and closes as its answers say.
///
/// Rules callers may rely on:
/// - The connection carries another request only when the client asked to keep it alive, has
///   not finished sending, sent its whole request before the answer ended, and the answer's
///   framing lets the client find its end; Pico's own answer to an upgrade request never keeps it.
/// - A client that finished sending before an upgrade was accepted has its half-close passed
///   upstream as the tunnel opens.
/// - An answer that ends while the request body is still arriving closes the connection
///   lingering: the rest of the body is not read as a new request.
/// - Pico's own answer (an error before any upstream answer) lets a kept-alive connection read
///   and drop the rest of the body, unless the answer says to close.
/// - An upstream connection serves another request only when the request went out whole and the
///   answer came back whole and allows it.
public struct ExchangeFlow: Hashable, Sendable {
    /// How far the request's body got (a request without a body ends right after its head).
    public enum Body: Hashable, Sendable {
        /// More may come: the client is read.
        case arriving
        /// The upstream holds as much as it should: the client is not read until it has room.
        case heldBack
        /// The decoder gave the request's end.
        case ended
    }

    /// What the client said about its connection.
    public enum Client: Hashable, Sendable {
        /// It may carry another request (the client asked for keep-alive).
        case keepsAlive
        /// It closes after this answer (the client or the answer said so).
        case closes
        /// The client finished sending (end of stream): it closes after this answer.
        case finished

        var keepsAlive: Bool { self == .keepsAlive }
    }

    /// One direction of an upgraded connection.
    public enum Direction: Hashable, Sendable {
        /// Bytes flow.
        case open
        /// The receiving side is full: the sender is not read until it has room.
        case heldBack
        /// The sender finished (a half-close passed on).
        case finished
    }

    /// How the client connection goes on once the exchange is over.
    public enum Ending: Hashable, Sendable {
        /// It reads the next request (pipelined ones may be waiting already).
        case nextRequest
        /// It closes once the answer is written.
        case closeWhenWritten
        /// It closes once the answer is written, lingering so a client still sending (the rest
        /// of a body nobody reads) receives the answer instead of a reset.
        case closeLingering
    }

    /// What becomes of the exchange's upstream when the exchange completes.
    public enum UpstreamEnding: Hashable, Sendable {
        /// The request went out whole and the answer came back whole: a peer connection may go
        /// back to its pool when `reusable`.
        case completed(reusable: Bool)
        /// Something is unsent or unread: the upstream is torn down.
        case abandoned
    }

    /// An exchange that is over: what its shell does with the upstream and the connection.
    public struct Completion: Hashable, Sendable {
        /// What becomes of the upstream.
        public var upstream: UpstreamEnding
        /// How the connection goes on.
        public var ending: Ending
    }

    /// Where the exchange's bytes are.
    public enum State: Hashable, Sendable {
        /// No answer reached the client yet.
        case awaitingAnswer(body: Body, client: Client)
        /// Pico answered itself (`status`, written whole) while the body was still arriving: the
        /// rest is read and dropped.
        case drainingBody(status: Int, client: Client)
        /// The upstream's answer (`status`) is reaching the client in `framing`.
        case relaying(status: Int, body: Body, framing: HTTPProxyRules.ClientFraming, client: Client, upstreamReusable: Bool)
        /// The upstream accepted the upgrade: bytes flow both ways, unframed, until both finish.
        case tunnelling(fromClient: Direction, fromUpstream: Direction)
        /// Over: the client got `status` (101 for an upgrade that ended).
        case finished(status: Int)
    }

    /// Where the exchange's bytes are.
    public private(set) var state: State
    let method: String
    let clientVersion: HTTPVersion
    let isUpgradeRequest: Bool
    let requestFraming: HTTPBodyFraming

    /// The flow of a request whose head is `head` and whose body framing is `framing`;
    /// `requestEnded` when its decoder gave its end already (it moved here from another loop
    /// after a failed forward); `clientFinished` when the client sent its end of stream already.
    public init(head: HTTPRequestHead, framing: HTTPBodyFraming, requestEnded: Bool = false, clientFinished: Bool = false) {
        self.method = head.method
        self.clientVersion = head.version
        self.isUpgradeRequest = head.isUpgrade
        self.requestFraming = framing
        self.state = .awaitingAnswer(body: requestEnded ? .ended : .arriving, client: clientFinished ? .finished : head.keepAlive ? .keepsAlive : .closes)
    }

    // MARK: - What the shell asks

    /// The shell takes the next request part from its decoder now (a body part, or the end).
    public var readsRequestParts: Bool {
        switch self.state {
        case .awaitingAnswer(.arriving, _), .relaying(_, .arriving, _, _, _), .drainingBody: true
        default: false
        }
    }

    /// Body bytes go upstream (false once Pico answered itself: they are dropped).
    public var sendsBody: Bool {
        switch self.state {
        case .awaitingAnswer(.arriving, _), .awaitingAnswer(.heldBack, _), .relaying(_, .arriving, _, _, _), .relaying(_, .heldBack, _, _, _): true
        default: false
        }
    }

    /// The request body is still due from the client (its read timeout applies).
    public var awaitsBody: Bool {
        switch self.state {
        case .awaitingAnswer(let body, _), .relaying(_, let body, _, _, _): body != .ended
        case .drainingBody: true
        case .tunnelling, .finished: false
        }
    }

    /// The decoder gave the request's end.
    public var requestEnded: Bool {
        switch self.state {
        case .awaitingAnswer(let body, _), .relaying(_, let body, _, _, _): body == .ended
        case .drainingBody: false
        case .tunnelling, .finished: true
        }
    }

    /// Reading the client is paused until the upstream has room.
    public var isHeldBack: Bool {
        switch self.state {
        case .awaitingAnswer(.heldBack, _), .relaying(_, .heldBack, _, _, _), .tunnelling(.heldBack, _): true
        default: false
        }
    }

    /// The request has no body and asks for no upgrade (nor is a CONNECT): nothing follows its
    /// head, so the head goes upstream as the whole request (a tunnel stream ends in the same frame).
    public var headIsWholeRequest: Bool {
        self.requestFraming == .none && !self.isUpgradeRequest && self.method != "CONNECT"
    }

    /// The upstream accepted an upgrade: client bytes go upstream unframed.
    public var isTunnelling: Bool {
        if case .tunnelling = self.state { return true }
        return false
    }

    /// No answer head reached the client yet (Pico's own answers included).
    public var awaitsAnswerHead: Bool {
        if case .awaitingAnswer = self.state { return true }
        return false
    }

    /// An answer is being written or waited for (not Pico's own answer, not finished).
    public var awaitsAnswerEnd: Bool {
        switch self.state {
        case .awaitingAnswer, .relaying: true
        default: false
        }
    }

    /// How the answer's body is framed for the client (nil before its head, or when not relayed).
    public var clientFraming: HTTPProxyRules.ClientFraming? {
        if case .relaying(_, _, let framing, _, _) = self.state { return framing }
        return nil
    }

    /// The status the client received, for the access log and metrics; 499 when no answer head
    /// reached it (the client left first).
    public var clientStatus: Int {
        switch self.state {
        case .awaitingAnswer: 499
        case .drainingBody(let status, _), .relaying(let status, _, _, _, _), .finished(let status): status
        case .tunnelling: 101
        }
    }

    // MARK: - Request direction

    /// The upstream is full: the shell stops reading the client.
    public mutating func upstreamFull() {
        switch self.state {
        case .awaitingAnswer(.arriving, let client): self.state = .awaitingAnswer(body: .heldBack, client: client)
        case .relaying(let status, .arriving, let framing, let client, let reusable):
            self.state = .relaying(status: status, body: .heldBack, framing: framing, client: client, upstreamReusable: reusable)
        case .tunnelling(.open, let fromUpstream): self.state = .tunnelling(fromClient: .heldBack, fromUpstream: fromUpstream)
        default: break
        }
    }

    /// The upstream has room again. True when the client was held back: the shell reads it again.
    public mutating func upstreamHasRoom() -> Bool {
        switch self.state {
        case .awaitingAnswer(.heldBack, let client): self.state = .awaitingAnswer(body: .arriving, client: client)
        case .relaying(let status, .heldBack, let framing, let client, let reusable):
            self.state = .relaying(status: status, body: .arriving, framing: framing, client: client, upstreamReusable: reusable)
        case .tunnelling(.heldBack, let fromUpstream): self.state = .tunnelling(fromClient: .open, fromUpstream: fromUpstream)
        default: return false
        }
        return true
    }

    /// What the shell does when the request's end arrives.
    public enum RequestEnd: Hashable, Sendable {
        /// Nothing.
        case none
        /// End the request upstream: a last chunk when `lastChunk` (a chunked body), then the
        /// upstream's end of request when `finish` (not for an upgrade request, whose client side
        /// goes on after the answer).
        case endUpstreamRequest(lastChunk: Bool, finish: Bool)
        /// Pico's answer was written already: the exchange is over.
        case completed(Completion)
    }

    /// The decoder gave the request's end.
    public mutating func requestEnd() -> RequestEnd {
        let upstreamEnd = RequestEnd.endUpstreamRequest(lastChunk: self.requestFraming == .chunked, finish: !self.isUpgradeRequest)
        switch self.state {
        case .awaitingAnswer(.ended, _), .relaying(_, .ended, _, _, _), .tunnelling, .finished:
            return .none
        case .awaitingAnswer(_, let client):
            self.state = .awaitingAnswer(body: .ended, client: client)
            return upstreamEnd
        case .relaying(let status, _, let framing, let client, let reusable):
            self.state = .relaying(status: status, body: .ended, framing: framing, client: client, upstreamReusable: reusable)
            return upstreamEnd
        case .drainingBody(let status, let client):
            self.state = .finished(status: status)
            return .completed(Completion(upstream: .abandoned, ending: client.keepsAlive ? .nextRequest : .closeWhenWritten))
        }
    }

    /// What the shell does when the client finished sending (end of stream).
    public enum ClientEnd: Hashable, Sendable {
        /// Nothing more here (the connection will not carry another request).
        case none
        /// An upgraded connection: pass the half-close upstream; close once written when
        /// `thenClose` (the upstream's direction finished already).
        case finishUpstream(thenClose: Bool)
    }

    /// The client finished sending: the connection carries no further request.
    public mutating func clientEnded() -> ClientEnd {
        switch self.state {
        case .awaitingAnswer(let body, _):
            self.state = .awaitingAnswer(body: body, client: .finished)
        case .drainingBody(let status, _):
            self.state = .drainingBody(status: status, client: .finished)
        case .relaying(let status, let body, let framing, _, let reusable):
            self.state = .relaying(status: status, body: body, framing: framing, client: .finished, upstreamReusable: reusable)
        case .tunnelling(_, let fromUpstream):
            self.state = .tunnelling(fromClient: .finished, fromUpstream: fromUpstream)
            return .finishUpstream(thenClose: fromUpstream == .finished)
        case .finished:
            break
        }
        return .none
    }

    // MARK: - Answer direction

    /// What the shell writes when the upstream's answer head arrives.
    public enum AnswerStart: Hashable, Sendable {
        /// Nothing (the exchange answered already).
        case none
        /// Write `head`; bytes then flow both ways unframed (the upstream's bytes that followed
        /// its head, and the client's that followed its request, go across at once). When
        /// `finishUpstream`, the client finished sending already: pass its half-close upstream.
        case upgrade(HTTPResponseHead, finishUpstream: Bool)
        /// Write `head`, then relay the body in `clientFraming`. `refuseUpgrade`: the request
        /// asked to upgrade and the upstream declined, so the client's decoder reads HTTP again.
        case relay(HTTPResponseHead, refuseUpgrade: Bool)
    }

    /// The upstream's answer head (not an interim one) arrived; `upstreamFraming` is its body
    /// framing as the decoder read it.
    public mutating func answerHead(_ head: HTTPResponseHead, upstreamFraming: HTTPBodyFraming?) -> AnswerStart {
        guard case .awaitingAnswer(let body, let client) = self.state else { return .none }
        if head.status == 101, self.isUpgradeRequest {
            var upgraded = head
            upgraded.headers = HTTPProxyRules.endToEnd(head.headers, keepUpgrade: true)
            let fromClient: Direction = client == .finished ? .finished : body == .heldBack ? .heldBack : .open
            self.state = .tunnelling(fromClient: fromClient, fromUpstream: .open)
            return .upgrade(upgraded, finishUpstream: fromClient == .finished)
        }
        let answer = HTTPProxyRules.clientResponse(
            head, requestMethod: self.method, clientVersion: self.clientVersion, clientKeepAlive: client.keepsAlive, upstreamFraming: upstreamFraming)
        let reusable = head.version >= .http1_1 && !head.headers.hasToken("connection", "close") && upstreamFraming != .untilClose
        let after: Client = client == .finished ? .finished : answer.keepAlive ? .keepsAlive : .closes
        self.state = .relaying(status: head.status, body: body, framing: answer.framing, client: after, upstreamReusable: reusable)
        return .relay(answer.head, refuseUpgrade: self.isUpgradeRequest)
    }

    /// The upstream's answer ended (the shell wrote its last chunk when `clientFraming` is
    /// chunked). The exchange is over; nil when no answer was being relayed.
    public mutating func answerEnded() -> Completion? {
        guard case .relaying(let status, let body, _, let client, let reusable) = self.state else { return nil }
        self.state = .finished(status: status)
        guard body == .ended else {
            // Answered before the body ended: the rest is dropped by closing.
            return Completion(upstream: .abandoned, ending: .closeLingering)
        }
        return Completion(upstream: .completed(reusable: reusable), ending: client.keepsAlive ? .nextRequest : .closeWhenWritten)
    }

    /// What the shell does with Pico's own answer.
    public struct OwnAnswer: Hashable, Sendable {
        /// The answer tells the client the connection stays open.
        public var keepAlive: Bool
        /// The exchange is over (nil: the rest of the body is read and dropped first).
        public var completion: Completion?
    }

    /// Pico answers the request itself with `status` (an error, before any upstream answer
    /// reached the client); `close` when the connection must not carry another request (the
    /// rest of a body is then not read). An upgrade request's connection always closes, and so
    /// does one whose client is held back (an upstream that stopped taking its body): the rest
    /// of that body is not read either. After an answer started (not a case the exchange
    /// machine produces) the connection closes lingering.
    public mutating func answeredByPico(status: Int, close: Bool) -> OwnAnswer {
        guard case .awaitingAnswer(let body, let client) = self.state else {
            self.state = .finished(status: status)
            return OwnAnswer(keepAlive: false, completion: Completion(upstream: .abandoned, ending: .closeLingering))
        }
        let keeps = client.keepsAlive && !self.isUpgradeRequest
        switch body {
        case .ended:
            self.state = .finished(status: status)
            return OwnAnswer(keepAlive: keeps, completion: Completion(upstream: .abandoned, ending: keeps ? .nextRequest : .closeWhenWritten))
        case .arriving where !close:
            self.state = .drainingBody(status: status, client: keeps ? .keepsAlive : client == .finished ? .finished : .closes)
            return OwnAnswer(keepAlive: keeps, completion: nil)
        case .arriving, .heldBack:
            self.state = .finished(status: status)
            return OwnAnswer(keepAlive: false, completion: Completion(upstream: .abandoned, ending: .closeLingering))
        }
    }

    /// The request broke (a malformed body, or a body that stopped arriving) and Pico answers
    /// `status`: nothing after it is read, so the connection closes lingering.
    public mutating func requestBroke(status: Int) -> OwnAnswer {
        self.state = .finished(status: status)
        return OwnAnswer(keepAlive: false, completion: Completion(upstream: .abandoned, ending: .closeLingering))
    }

    /// The upgraded upstream finished its direction. True when the client's direction finished
    /// already: the connection closes once written (the shell half-closes it either way).
    public mutating func upstreamFinished() -> Bool {
        guard case .tunnelling(let fromClient, _) = self.state else { return false }
        self.state = .tunnelling(fromClient: fromClient, fromUpstream: .finished)
        return fromClient == .finished
    }

    /// The exchange is cut short (the upstream failed after part of the answer reached the
    /// client, an upgraded upstream failed, or the connection closed): it ends with what the
    /// client got.
    public mutating func abort() {
        self.state = .finished(status: self.clientStatus)
    }
}
