/// One TCP connection's bytes carried over a WebSocket, as the TCP route (`TCPRoute`) carries
/// them: binary messages hold the bytes in order (message boundaries mean nothing), pings are
/// answered, and the connection ends with a close handshake. With `halfClose` (both sides speak
/// `TCPRoute.halfCloseSubprotocol`) an empty binary message ends its sender's direction while the
/// other goes on; without it, the end of the stream's direction closes the WebSocket (as Piko
/// does). An empty message from a peer is always read as the end of its direction: Piko's
/// clients never send one.
///
/// The node runs it as the server (between the client's WebSocket and the agent's stream),
/// `pico forward tcp` as the client (between a local connection and the node). It performs no
/// I/O and holds no more than one read's undecoded bytes: the shell feeds what it read, stops
/// reading while the stream is full, and writes the frames it is given (masking them, as a
/// client, with `encode`).
///
/// Rules callers may rely on:
/// - Bytes the peer sent are delivered in order until its direction ends; data after that, a
///   text message, or any broken frame closes the WebSocket with the RFC 6455 status the
///   decoder names (1002, 1003, 1007), and nothing more is delivered.
/// - Every `.finishStream` comes once, and a `.close` comes once, last.
/// - After our close frame went out, the peer's data is dropped; its close frame (or the end of
///   its connection) ends the bridge.
public struct WebSocketStreamBridge: Sendable {
    /// One direction of the carried connection.
    public enum Direction: Hashable, Sendable {
        /// Bytes flow.
        case open
        /// Its sender ended it.
        case ended
    }

    /// Where the bridge is.
    public enum State: Hashable, Sendable {
        /// The close handshake has not begun: `fromPeer` is the peer's direction (WebSocket to
        /// stream), `fromStream` the stream's.
        case open(fromPeer: Direction, fromStream: Direction)
        /// Our close frame went out; the peer's close frame (or its end of connection) is awaited.
        case closeSent
        /// Over: the connection closes once written.
        case closed
    }

    /// A frame for the shell to write to the peer.
    public enum Frame: Hashable, Sendable {
        /// Bytes of the stream, in one binary message.
        case data(ArraySlice<UInt8>)
        /// The empty binary message that ends the stream's direction (half-close only).
        case end
        /// The answer to a ping.
        case pong([UInt8])
        /// A close frame.
        case close(code: UInt16, reason: String)
    }

    /// What the shell does next.
    public enum Output: Hashable, Sendable {
        /// Send the peer's bytes on the stream.
        case deliver(ArraySlice<UInt8>)
        /// The peer ended its direction: end ours on the stream.
        case finishStream
        /// Write this frame to the peer.
        case write(Frame)
        /// The WebSocket is over: close the connection once written; a stream still open is
        /// abandoned.
        case close
    }

    /// Which side of the WebSocket this bridge is.
    public let role: WebSocketFrameDecoder.Role
    /// Both sides speak `TCPRoute.halfCloseSubprotocol`.
    public let halfClose: Bool
    /// Where it is.
    public private(set) var state: State = .open(fromPeer: .open, fromStream: .open)
    /// What the peer's close frame said, when it sent one that was not a normal closure (its
    /// code and reason, for the log).
    public private(set) var peerCloseReason: String?
    private var decoder: WebSocketFrameDecoder

    /// A bridge for `role`, with `initialBytes` that followed the handshake.
    public init(role: WebSocketFrameDecoder.Role, halfClose: Bool, initialBytes: some Sequence<UInt8> = [UInt8]()) {
        self.role = role
        self.halfClose = halfClose
        self.decoder = WebSocketFrameDecoder(role: role, initialBytes: initialBytes)
    }

    /// Bytes received and not yet decoded (at most one read's worth plus a partial frame head).
    public var bufferedByteCount: Int { self.decoder.bufferedByteCount }

    /// The peer sent `bytes`: what to deliver, answer and end.
    public mutating func received(_ bytes: UnsafeRawBufferPointer) -> [Output] {
        guard self.state != .closed else { return [] }
        self.decoder.feed(bytes)
        return self.decode()
    }

    /// Decodes what was given at creation or fed since.
    public mutating func decode() -> [Output] {
        var outputs: [Output] = []
        do {
            while self.state != .closed, let event = try self.decoder.next() {
                self.handle(event, into: &outputs)
            }
        } catch {
            self.fail(code: error.closeCode, reason: error.message, into: &outputs)
        }
        return outputs
    }

    /// The stream delivered `bytes`: the frame to write, nil when the WebSocket no longer
    /// carries them (the close handshake began).
    public func streamReceived(_ bytes: ArraySlice<UInt8>) -> Frame? {
        guard self.carriesStreamBytes, !bytes.isEmpty else { return nil }
        return .data(bytes)
    }

    /// True while the WebSocket carries the stream's bytes (its direction has not ended and the
    /// close handshake has not begun): a shell that frames them itself asks this first.
    public var carriesStreamBytes: Bool {
        if case .open(_, .open) = self.state { true } else { false }
    }

    /// The stream's direction ended (its sender finished).
    public mutating func streamEnded() -> [Output] {
        guard case .open(let fromPeer, .open) = self.state else { return [] }
        if self.halfClose, fromPeer == .open {
            self.state = .open(fromPeer: .open, fromStream: .ended)
            return [.write(.end)]
        }
        var outputs: [Output] = []
        if fromPeer == .open { outputs.append(.finishStream) }
        self.state = .closeSent
        outputs.append(.write(.close(code: 1000, reason: "")))
        return outputs
    }

    /// The stream failed (reset, or its tunnel closed) before both directions ended.
    public mutating func streamFailed(reason: String) -> [Output] {
        switch self.state {
        case .open:
            self.state = .closeSent
            return [.write(.close(code: 1011, reason: reason))]
        case .closeSent, .closed:
            return []
        }
    }

    /// The close code of an idle timeout (4000–4999 are the application's, RFC 6455 §7.4.2).
    public static let idleCloseCode: UInt16 = 4000

    /// Neither side sent a byte for the idle limit: the close handshake begins (code 4000
    /// `idle timeout`), and the stream is abandoned when the WebSocket ends.
    public mutating func idleTimedOut() -> [Output] {
        guard case .open = self.state else { return [] }
        self.state = .closeSent
        return [.write(.close(code: Self.idleCloseCode, reason: "idle timeout"))]
    }

    /// The peer's connection ended (no close frame, or after ours): the WebSocket is over.
    public mutating func peerConnectionEnded() -> [Output] {
        switch self.state {
        case .open(let fromPeer, _):
            self.state = .closed
            return fromPeer == .open ? [.finishStream, .close] : [.close]
        case .closeSent:
            self.state = .closed
            return [.close]
        case .closed:
            return []
        }
    }

    /// Writes `frame` into `output`: a client masks it with `maskingKey` (4 fresh random bytes),
    /// a server passes none.
    public static func encode(_ frame: Frame, maskingKey: [UInt8]?, into output: inout [UInt8]) {
        switch frame {
        case .data(let bytes):
            WebSocketFrameEncoder.write(.binary, payload: bytes, maskingKey: maskingKey, into: &output)
        case .end:
            WebSocketFrameEncoder.write(.binary, payload: [UInt8](), maskingKey: maskingKey, into: &output)
        case .pong(let payload):
            WebSocketFrameEncoder.write(.pong, payload: payload, maskingKey: maskingKey, into: &output)
        case .close(let code, let reason):
            WebSocketFrameEncoder.writeClose(code: code, reason: reason, maskingKey: maskingKey, into: &output)
        }
    }

    // MARK: - Helpers

    private mutating func handle(_ event: WebSocketFrameDecoder.Event, into outputs: inout [Output]) {
        switch (event, self.state) {
        case (_, .closed):
            return
        case (.close(let code, let reason), .closeSent):
            self.notePeerClose(code: code, reason: reason)
            self.state = .closed
            outputs.append(.close)
        case (_, .closeSent):
            // Our close frame went out: the peer's data and pings are not answered any more.
            return
        case (.data(let bytes), .open(.open, _)):
            outputs.append(.deliver(bytes))
        case (.data, .open(.ended, _)):
            self.fail(code: 1002, reason: "data after the end of the sender's direction", into: &outputs)
        case (.emptyMessage, .open(.open, let fromStream)):
            outputs.append(.finishStream)
            if fromStream == .ended {
                // Both directions ended: the close handshake ends the WebSocket.
                self.state = .closeSent
                outputs.append(.write(.close(code: 1000, reason: "")))
            } else {
                self.state = .open(fromPeer: .ended, fromStream: .open)
            }
        case (.emptyMessage, .open(.ended, _)):
            return
        case (.ping(let payload), .open):
            outputs.append(.write(.pong(payload)))
        case (.pong, .open):
            return
        case (.close(let code, let reason), .open(let fromPeer, _)):
            // The peer ends the WebSocket: answer its close frame (echoing a normal code).
            if fromPeer == .open { outputs.append(.finishStream) }
            self.notePeerClose(code: code, reason: reason)
            self.state = .closed
            outputs.append(.write(.close(code: code == 1001 ? 1001 : 1000, reason: "")))
            outputs.append(.close)
        }
    }

    private mutating func notePeerClose(code: UInt16?, reason: String) {
        guard let code, code != 1000, code != 1001 else { return }
        self.peerCloseReason = reason.isEmpty ? "close code \(code)" : "close code \(code): \(reason)"
    }

    private mutating func fail(code: UInt16, reason: String, into outputs: inout [Output]) {
        guard self.state != .closed else { return }
        self.state = .closed
        outputs.append(.write(.close(code: code, reason: reason)))
        outputs.append(.close)
    }
}
