/// What the agent's shell does next for one exchange (see `AgentRequestExchange`). Bytes for
/// the tunnel stream that the machine produced are in the caller's output buffer: "send the
/// output" means send that buffer on the stream and empty it. Every ending action (`finish`,
/// `answer`, `reset`, `abandon`) also cancels the timeout; after one the exchange is over.
public enum AgentExchangeAction: Hashable, Sendable {
    /// Nothing to do now.
    case none
    /// Lease a connection to the local service (an idle pooled one, or a new dial), send `head`
    /// on it and read its answer to `head.method`; arm the timeout for `deadline` when given.
    /// When no connection can be had, offer `backendUnavailable()`.
    case openBackend(HTTPRequestHead, deadline: Instant?)
    /// Write these request bytes to the backend connection.
    case sendToBackend(ArraySlice<UInt8>)
    /// The answer's final head is in the output: cancel the timeout.
    case cancelTimeout
    /// Send the output, then these answer bytes (a large body piece, sent without a copy).
    case sendToStream(ArraySlice<UInt8>)
    /// Protocols switched (the `101` head is in the output): send the output, then pipe bytes
    /// both ways unchanged: what the backend sent after its head, whatever the node sent after
    /// the request, and from now on everything either side sends.
    case startPipe
    /// The node finished its side of the pipe: shut the backend's write side once flushed.
    case shutdownBackendWrite
    /// Send the output and finish the stream (FIN). The backend connection goes back to its
    /// pool when `keepBackend`, else it closes.
    case finish(keepBackend: Bool)
    /// Answer with `status` and Piko's JSON error body (`{"error": message}`, `Connection:
    /// close`), finish the stream and close the backend connection, if any.
    case answer(status: Int, message: String)
    /// Part of the answer went out already: reset the stream, close the backend connection.
    case reset
    /// The stream is gone: close the backend connection.
    case abandon
}

/// How an agent exchange ended.
public enum AgentExchangeOutcome: Hashable, Sendable {
    /// The backend's answer went back whole; its connection was kept for reuse or closed.
    case answered(keptBackend: Bool)
    /// Answered with an error status (502, 504, or a broken request's 400-range status).
    case failed(status: Int)
    /// The stream was reset after part of the answer went out.
    case reset
    /// The node failed the stream.
    case streamFailed
    /// An upgraded byte pipe ended.
    case pipeClosed
}
