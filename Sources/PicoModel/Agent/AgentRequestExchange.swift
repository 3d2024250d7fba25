/// The agent side of one request: a stream the node opened on the tunnel carries one HTTP
/// request, which goes to the local service over a pooled keep-alive connection; the answer
/// streams back and the stream finishes. Pure: the shell decodes the stream and the backend
/// connection, offers the parts and events here, and carries out the returned actions.
///
/// Rules:
/// - The request goes out as HTTP/1.1 with end-to-end fields only (an upgrade keeps `Upgrade`);
///   a chunked body is re-chunked, any other body copied.
/// - The answer goes back as HTTP/1.1 with end-to-end fields; a chunked body is re-chunked,
///   others copied (a close-delimited body ends with the stream's FIN). Interim `1xx` heads go
///   back as they came. Heads and bodies up to `coalesceLimit` share the stream's data frames.
/// - `101` to an upgrade request turns the stream into a byte pipe; the node's FIN shuts the
///   backend's write side, the backend's EOF or close finishes the stream.
/// - No answer head within the timeout (not for upgrades): 504 `upstream timeout`. No
///   connection, or the backend closed or broke before its answer's head: 502 `upstream
///   unreachable`; after it: the stream is reset. A broken request: its decoder's status.
/// - The backend connection goes back to the pool only when the request was sent whole and the
///   answer ended cleanly on a connection that stays open (HTTP/1.1, no `Connection: close`,
///   not delimited by the close, no EOF seen).
public struct AgentRequestExchange: Hashable, Sendable {
    /// How far the request got towards the backend.
    public enum RequestProgress: Hashable, Sendable {
        /// Its body is still arriving; `rechunked` when it is sent chunked.
        case sending(rechunked: Bool)
        /// Sent whole.
        case sent
    }

    /// Where the exchange is in its life.
    public enum State: Hashable, Sendable {
        /// No request head yet.
        case awaitingRequest
        /// The request is going to the backend; no final answer head yet. `upgrade`: the request
        /// asks to switch protocols. `backendOpen`: no EOF from the backend yet.
        case awaitingAnswer(RequestProgress, upgrade: Bool, backendOpen: Bool)
        /// The answer's final head went back; its body follows, re-chunked when `rechunked`.
        /// `keepAlive`: the backend connection may serve another request afterwards.
        case answering(RequestProgress, rechunked: Bool, keepAlive: Bool)
        /// Protocols switched: bytes are piped both ways. `nodeFinished`: the node finished its
        /// side and the backend's write side was shut.
        case piping(nodeFinished: Bool)
        /// Over.
        case finished(AgentExchangeOutcome)
    }

    /// Answer body pieces up to this size join the output (and the head's frame); larger ones
    /// go out as they are, without a copy.
    public static let coalesceLimit = 16 * 1_024

    /// How long the backend may take to start its answer (zero: no limit).
    public let timeout: Duration
    /// Where it is.
    public private(set) var state: State = .awaitingRequest

    /// A new exchange whose backend has `timeout` to start answering.
    public init(timeout: Duration) {
        self.timeout = timeout
    }

    /// True once the exchange is over.
    public var isFinished: Bool {
        if case .finished = self.state { true } else { false }
    }

    /// True while protocols are switched: the shell pipes bytes without decoding them.
    public var isPiping: Bool {
        if case .piping = self.state { true } else { false }
    }

    /// True while the request decoder's parts are wanted (the head, or more of the body).
    public var wantsRequestParts: Bool {
        switch self.state {
        case .awaitingRequest, .awaitingAnswer(.sending, _, _), .answering(.sending, _, _): true
        default: false
        }
    }

    // MARK: From the tunnel stream

    /// The request head arrived, with its body framing as the decoder read it.
    public mutating func requestHead(_ head: HTTPRequestHead, framing: HTTPBodyFraming, now: Instant) -> AgentExchangeAction {
        guard case .awaitingRequest = self.state else { return .none }
        let rechunked = framing == .chunked
        let upgrade = head.isUpgrade
        var headers = HTTPProxyRules.endToEnd(head.headers, keepUpgrade: upgrade)
        if rechunked { headers.add(name: "Transfer-Encoding", value: "chunked") }
        self.state = .awaitingAnswer(.sending(rechunked: rechunked), upgrade: upgrade, backendOpen: true)
        let deadline = !upgrade && self.timeout > .zero ? now + self.timeout : nil
        return .openBackend(HTTPRequestHead(method: head.method, target: head.target, version: .http1_1, headers: headers), deadline: deadline)
    }

    /// A piece of the request body arrived.
    public mutating func requestBody(_ bytes: ArraySlice<UInt8>) -> AgentExchangeAction {
        guard case .sending(let rechunked) = self.requestProgress else { return .none }
        guard rechunked else { return .sendToBackend(bytes) }
        var chunk: [UInt8] = []
        HTTP1Encoder.writeChunk(bytes, into: &chunk)
        return .sendToBackend(chunk[...])
    }

    /// The request ended (with `trailers` when chunked).
    public mutating func requestEnd(trailers: HTTPHeaders) -> AgentExchangeAction {
        guard case .sending(let rechunked) = self.requestProgress else { return .none }
        self.requestProgress = .sent
        guard rechunked else { return .none }
        var last: [UInt8] = []
        HTTP1Encoder.writeLastChunk(trailers: trailers, into: &last)
        return .sendToBackend(last[...])
    }

    /// The request could not be decoded: answer with the decoder's `status`, or reset the
    /// stream when part of the answer went out already.
    public mutating func requestBroken(status: Int, message: String) -> AgentExchangeAction {
        switch self.state {
        case .awaitingRequest, .awaitingAnswer: self.fail(status, message)
        case .answering: self.end(.reset, .reset)
        case .piping, .finished: .none
        }
    }

    /// The node finished its side of an upgraded stream (before the upgrade, the request
    /// decoder sees the end instead).
    public mutating func streamInputFinished() -> AgentExchangeAction {
        guard case .piping(false) = self.state else { return .none }
        self.state = .piping(nodeFinished: true)
        return .shutdownBackendWrite
    }

    /// The node failed the stream (reset, or the tunnel closed).
    public mutating func streamFailed() -> AgentExchangeAction {
        self.isFinished ? .none : self.end(.streamFailed, .abandon)
    }

    /// The timeout armed with `openBackend` fired: 504 unless the answer started.
    public mutating func timerFired() -> AgentExchangeAction {
        guard case .awaitingAnswer = self.state else { return .none }
        return self.fail(504, "upstream timeout")
    }

    // MARK: From the backend

    /// No connection to the local service could be had.
    public mutating func backendUnavailable() -> AgentExchangeAction {
        guard case .awaitingAnswer = self.state else { return .none }
        return self.fail(502, "upstream unreachable")
    }

    /// A head of the answer arrived, with its body framing as the decoder read it. Its bytes for
    /// the stream are appended to `output`.
    public mutating func responseHead(_ head: HTTPResponseHead, framing: HTTPBodyFraming, into output: inout [UInt8]) -> AgentExchangeAction {
        guard case .awaitingAnswer(let request, let upgrade, let backendOpen) = self.state else { return .none }
        if head.isInterim {
            HTTP1Encoder.write(head, into: &output)
            return .none
        }
        if head.status == 101, upgrade {
            HTTP1Encoder.write(head, into: &output)
            self.state = .piping(nodeFinished: false)
            return .startPipe
        }
        let rechunked = framing == .chunked
        var headers = HTTPProxyRules.endToEnd(head.headers, keepUpgrade: false)
        if rechunked { headers.add(name: "Transfer-Encoding", value: "chunked") }
        let keepAlive = backendOpen && framing != .untilClose && head.version >= .http1_1 && !head.headers.hasToken("connection", "close")
        HTTP1Encoder.write(HTTPResponseHead(version: .http1_1, status: head.status, reason: head.reason, headers: headers), into: &output)
        self.state = .answering(request, rechunked: rechunked, keepAlive: keepAlive)
        return .cancelTimeout
    }

    /// A piece of the answer's body arrived; small pieces are appended to `output`.
    public mutating func responseBody(_ bytes: ArraySlice<UInt8>, into output: inout [UInt8]) -> AgentExchangeAction {
        guard case .answering(_, let rechunked, _) = self.state else { return .none }
        if rechunked {
            HTTP1Encoder.writeChunk(bytes, into: &output)
        } else if bytes.count <= Self.coalesceLimit {
            output.append(contentsOf: bytes)
        } else {
            return .sendToStream(bytes)
        }
        return .none
    }

    /// The answer ended (with `trailers` when chunked): the stream finishes.
    public mutating func responseEnd(trailers: HTTPHeaders, into output: inout [UInt8]) -> AgentExchangeAction {
        guard case .answering(let request, let rechunked, let keepAlive) = self.state else { return .none }
        if rechunked { HTTP1Encoder.writeLastChunk(trailers: trailers, into: &output) }
        let keep = keepAlive && request == .sent
        return self.end(.answered(keptBackend: keep), .finish(keepBackend: keep))
    }

    /// The backend closed its side. Before an upgrade the shell then lets the answer's decoder
    /// see the EOF and offers `backendFailed()` if the answer did not end; in a pipe the
    /// stream finishes.
    public mutating func backendReadEOF() -> AgentExchangeAction {
        switch self.state {
        case .awaitingAnswer(let request, let upgrade, _):
            self.state = .awaitingAnswer(request, upgrade: upgrade, backendOpen: false)
        case .answering(let request, let rechunked, _):
            self.state = .answering(request, rechunked: rechunked, keepAlive: false)
        case .piping:
            return self.end(.pipeClosed, .finish(keepBackend: false))
        default:
            break
        }
        return .none
    }

    /// The backend connection closed, broke, or sent an answer that cannot be decoded: 502
    /// before the answer's head, a reset after it; a pipe finishes the stream.
    public mutating func backendFailed() -> AgentExchangeAction {
        switch self.state {
        case .awaitingAnswer: self.fail(502, "upstream unreachable")
        case .answering: self.end(.reset, .reset)
        case .piping: self.end(.pipeClosed, .finish(keepBackend: false))
        case .awaitingRequest, .finished: .none
        }
    }

    // MARK: - Helpers

    private var requestProgress: RequestProgress? {
        get {
            switch self.state {
            case .awaitingAnswer(let request, _, _), .answering(let request, _, _): request
            default: nil
            }
        }
        set {
            guard let newValue else { return }
            switch self.state {
            case .awaitingAnswer(_, let upgrade, let open): self.state = .awaitingAnswer(newValue, upgrade: upgrade, backendOpen: open)
            case .answering(_, let rechunked, let keepAlive): self.state = .answering(newValue, rechunked: rechunked, keepAlive: keepAlive)
            default: break
            }
        }
    }

    private mutating func fail(_ status: Int, _ message: String) -> AgentExchangeAction {
        self.end(.failed(status: status), .answer(status: status, message: message))
    }

    private mutating func end(_ outcome: AgentExchangeOutcome, _ action: AgentExchangeAction) -> AgentExchangeAction {
        self.state = .finished(outcome)
        return action
    }
}
