import PicoModel

/// Where one proxied request goes: a yamux stream on a local tunnel, or a keep-alive connection
/// to the node that holds the endpoint. It reports to the exchange through `TunnelStreamHandler`
/// (bytes of the answer, its end, a failure, room to send). Loop-confined.
protocol ExchangeUpstream: AnyObject {
    /// Sends request bytes (or, after an upgrade, client bytes); valid only during the call.
    func send(raw bytes: UnsafeRawBufferPointer)
    /// Sends a whole request that has no body and no upgrade: nothing follows it, so a tunnel
    /// stream ends in the same frame (a later `finish` changes nothing).
    func sendWhole(raw bytes: UnsafeRawBufferPointer)
    /// False while the upstream holds as much as it should: stop reading the client until
    /// `streamWritable`.
    var canSend: Bool { get }
    /// The request (or the client's side of an upgraded connection) ended.
    func finish()
    /// Abandons the exchange: the upstream is torn down and reports nothing more.
    func reset()
    /// `count` answer bytes reached the client socket (gives flow-control credit back).
    func consumed(_ count: Int)
    /// The upstream answered `101`: from now on bytes flow both ways unframed.
    func upgraded()
    /// The answer is complete and the request was sent whole: the upstream may serve another
    /// request (a peer connection goes back to its pool when `reusable`).
    func completed(reusable: Bool)
    /// How far the request got, asked when the upstream failed: whether another node may be
    /// tried without risking a second delivery.
    var progress: UpstreamProgress { get }
}

extension ExchangeUpstream {
    /// Sends bytes (see `send(raw:)`).
    func send(_ bytes: [UInt8]) { bytes.withUnsafeBytes { self.send(raw: $0) } }
    /// Sends bytes (see `send(raw:)`).
    func send(_ bytes: ArraySlice<UInt8>) { bytes.withUnsafeBytes { self.send(raw: $0) } }
    /// Sends bytes (see `send(raw:)`).
    func send(_ bytes: UnsafeRawBufferPointer) { self.send(raw: bytes) }
}

/// A yamux stream on a local tunnel.
final class TunnelStreamUpstream: ExchangeUpstream {
    let transport: TunnelTransport
    let stream: UInt32

    init(transport: TunnelTransport, stream: UInt32) {
        self.transport = transport
        self.stream = stream
    }

    func send(raw bytes: UnsafeRawBufferPointer) { self.transport.send(bytes, on: self.stream) }
    func sendWhole(raw bytes: UnsafeRawBufferPointer) { self.transport.send(bytes, on: self.stream, finishing: true) }
    var canSend: Bool { self.transport.canSend(on: self.stream) }
    func finish() { self.transport.finish(self.stream) }
    func reset() { self.transport.reset(self.stream) }
    func consumed(_ count: Int) { self.transport.consumed(count, on: self.stream) }
    func upgraded() {}
    /// Both sides finished the stream already; nothing to do.
    func completed(reusable: Bool) {}
    /// A tunnel stream is not tried again elsewhere: the agent may have acted on the request.
    var progress: UpstreamProgress { .answered }
}
