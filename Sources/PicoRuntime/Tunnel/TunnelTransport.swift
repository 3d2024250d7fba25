import CEpoll
import Glibc
import PicoModel

/// The user of one yamux stream on a `TunnelTransport`; called on the loop's thread.
public protocol TunnelStreamHandler: AnyObject {
    /// Bytes arrived; call `consumed` once they are delivered, to give the window back.
    func streamReceived(_ bytes: ArraySlice<UInt8>)
    /// The peer finished its side.
    func streamInputFinished()
    /// The peer acknowledged a stream this side opened (an agent's TCP stream: its service
    /// accepted the connection).
    func streamAccepted()
    /// The stream was reset, or the tunnel closed, before both sides finished.
    func streamFailed(reason: String)
    /// The stream never reached the peer (it said go-away while the stream waited to open):
    /// nothing of it was sent.
    func streamRefused()
    /// The stream may take more bytes (its window opened, or the tunnel's socket drained).
    func streamWritable()
}

extension TunnelStreamHandler {
    /// Most handlers ignore the acknowledgement (bytes may flow before it).
    public func streamAccepted() {}
    /// By default a refusal is a failure.
    public func streamRefused() { self.streamFailed(reason: "the peer said go-away before the stream opened") }
}

/// The owner of a `TunnelTransport`: the node (server side) or the agent.
public protocol TunnelTransportOwner: AnyObject {
    /// The peer opened stream `id`; the owner attaches a handler with `attach` (or resets it).
    func transport(_ transport: TunnelTransport, peerOpened id: UInt32)
    /// The peer said go-away.
    func transportToldToGoAway(_ transport: TunnelTransport)
    /// The tunnel closed; every stream has failed. Reported once.
    func transportClosed(_ transport: TunnelTransport, reason: String)
}

/// Yamux inside binary WebSocket messages on one connection, after the handshake: decodes
/// frames, runs the `YamuxSession`, routes stream events to their handlers, pings every
/// `keepaliveInterval` and closes the tunnel when a ping goes unanswered.
///
/// Session output is written once per loop turn: every frame the turn's events produced goes out
/// in one WebSocket message and one system call.
public final class TunnelTransport: ConnectionDelegate, TurnEndHandler {
    /// Most bytes queued on one stream (beyond its window) before `canSend` turns false.
    public static let streamQueueLimit = 64 * 1_024

    /// The socket.
    public let connection: Connection
    /// The owner; released when the tunnel closes.
    public private(set) var owner: TunnelTransportOwner?
    private var frames: WebSocketFrameDecoder
    private var session: YamuxSession
    private var handlers = StreamTable<TunnelStreamHandler>()
    private let masked: Bool
    private var keepaliveTimer: LoopTimer?
    private let keepaliveInterval: Duration
    private var closed = false
    private var pumping = false
    private var flushScheduled = false
    /// Masking keys (the client role only).
    private var maskingKeys = MaskingKeys()

    /// Takes over `connection` (its delegate becomes this transport) with the bytes that followed
    /// the handshake. The client role masks its frames and opens odd streams.
    public init(connection: Connection, role: YamuxSession.Role, initialBytes: some Sequence<UInt8>, owner: TunnelTransportOwner, keepaliveInterval: Duration, keepaliveTimeout: Duration,
                acknowledgesStreamsOnOpen: Bool = true) {
        self.connection = connection
        self.owner = owner
        self.masked = role == .client
        self.frames = WebSocketFrameDecoder(role: role == .client ? .client : .server, initialBytes: initialBytes)
        var settings = YamuxSession.Settings()
        settings.keepaliveTimeout = keepaliveTimeout
        settings.acknowledgesStreamsOnOpen = acknowledgesStreamsOnOpen
        self.session = YamuxSession(role: role, settings: settings)
        self.keepaliveInterval = keepaliveInterval
        connection.delegate = self
        self.armKeepalive()
    }

    /// Starts processing the bytes given at creation (call once the owner holds the transport).
    public func start() { self.pump() }

    /// True once closed.
    public var isClosed: Bool { self.closed }

    /// Streams open.
    public var streamCount: Int { self.session.streamCount }

    /// True once the peer said go-away (no new streams may be opened).
    public var peerSaidGoAway: Bool { self.session.remoteGoAway }

    /// True while the tunnel carries as many streams as it may (`YamuxSession.Settings.maxStreams`).
    public var isFull: Bool { self.session.streamCount >= self.session.settings.maxStreams }

    /// Opens a stream served by `handler`; nil when the peer said go-away or the tunnel is closed.
    public func openStream(handler: TunnelStreamHandler) -> UInt32? {
        guard !self.closed, let id = self.session.openStream() else { return nil }
        self.handlers[id] = handler
        self.pump()
        return id
    }

    /// Attaches the handler of a stream the peer opened.
    public func attach(_ handler: TunnelStreamHandler, to id: UInt32) {
        guard self.session.isOpen(id) else { return }
        self.handlers[id] = handler
    }

    /// True while `id` can take more bytes without queueing beyond the limit.
    public func canSend(on id: UInt32) -> Bool {
        self.session.pendingSendCount(id) < Self.streamQueueLimit && self.connection.isWritable
    }

    /// Sends bytes on a stream (copied; valid only during the call). With `finishing`, our side
    /// of the stream ends after them (as `finish`), in the same frame when the window allows.
    public func send(_ bytes: UnsafeRawBufferPointer, on id: UInt32, finishing: Bool = false) {
        guard !self.closed else { return }
        self.session.send(bytes, on: id, finishing: finishing)
        self.pump()
    }

    /// Sends bytes on a stream (see `send(_:on:finishing:)`).
    public func send(_ bytes: [UInt8], on id: UInt32, finishing: Bool = false) {
        bytes.withUnsafeBytes { self.send($0, on: id, finishing: finishing) }
    }

    /// Sends bytes on a stream.
    public func send(_ bytes: ArraySlice<UInt8>, on id: UInt32) {
        bytes.withUnsafeBytes { self.send($0, on: id) }
    }

    /// Finishes our side of a stream.
    public func finish(_ id: UInt32) {
        guard !self.closed else { return }
        self.session.finish(id)
        self.pump()
    }

    /// Acknowledges a stream the peer opened (a transport made with `acknowledgesStreamsOnOpen`
    /// off); sending on it does so too.
    public func acknowledge(_ id: UInt32) {
        guard !self.closed else { return }
        self.session.acknowledge(id)
        self.pump()
    }

    /// Resets a stream; its handler hears nothing more.
    public func reset(_ id: UInt32) {
        self.handlers[id] = nil
        guard !self.closed else { return }
        self.session.reset(id)
        self.pump()
    }

    /// Reports delivered bytes of a stream.
    public func consumed(_ count: Int, on id: UInt32) {
        guard !self.closed else { return }
        self.session.consumed(count, on: id)
        self.pump()
    }

    /// Sends go-away: the peer opens no more streams (open ones continue).
    public func goAway() {
        guard !self.closed else { return }
        self.session.goAway()
        self.pump()
    }

    /// Closes the tunnel: every open stream fails, the owner hears `transportClosed` once.
    public func close(reason: String) {
        guard !self.closed else { return }
        self.flushSession()
        self.closed = true
        self.keepaliveTimer?.cancel()
        let failing = self.handlers.sortedKeys.compactMap { self.handlers[$0] }
        self.handlers.removeAll()
        self.connection.closeWhenWritten()
        for handler in failing { handler.streamFailed(reason: reason) }
        let owner = self.owner
        self.owner = nil
        owner?.transportClosed(self, reason: reason)
    }

    // MARK: ConnectionDelegate

    public func connection(_ connection: Connection, didRead bytes: UnsafeRawBufferPointer) {
        self.frames.feed(bytes)
        self.pump()
    }

    public func connectionDidReadEOF(_ connection: Connection) {
        self.close(reason: "the peer closed the connection")
    }

    public func connectionDidDrain(_ connection: Connection) {
        for id in self.handlers.sortedKeys where self.canSend(on: id) { self.handlers[id]?.streamWritable() }
    }

    public func connectionDidClose(_ connection: Connection, error: SocketError?) {
        self.close(reason: error.map { "\($0)" } ?? "connection closed")
    }

    // MARK: Internals

    private func armKeepalive() {
        self.keepaliveTimer = self.connection.loop.schedule(after: self.keepaliveInterval) { [weak self] in
            guard let self, !self.closed else { return }
            if self.session.keepaliveTick(now: self.connection.loop.now) == .dead {
                self.close(reason: "keep-alive ping unanswered")
                return
            }
            self.pump()
            self.armKeepalive()
        }
    }

    /// Decodes what arrived, runs the session, dispatches its events and writes its output.
    /// Not re-entrant: a handler's command during dispatch only queues output, which the running
    /// pump writes before it returns.
    private func pump() {
        guard !self.closed, !self.pumping else { return }
        self.pumping = true
        defer { self.pumping = false }
        do {
            while let event = try self.frames.next() {
                switch event {
                case .data(let bytes): self.session.feed(bytes)
                case .ping(let payload): self.writeFrame(.pong, payload: payload)
                case .pong, .emptyMessage: break
                case .close:
                    self.flushSession()
                    self.writeCloseFrame(code: 1000)
                    self.close(reason: "the peer closed the WebSocket")
                    return
                }
            }
        } catch {
            self.writeCloseFrame(code: error.closeCode)
            self.close(reason: "WebSocket protocol error: \(error)")
            return
        }
        do {
            while !self.closed, let event = try self.session.next() { self.dispatch(event) }
        } catch {
            self.flushSession()
            self.close(reason: "yamux protocol error: \(error)")
            return
        }
        if !self.closed, !self.flushScheduled, !self.session.output.isEmpty {
            self.flushScheduled = true
            self.connection.loop.runAtEndOfTurn(self)
        }
    }

    /// The end of the loop's turn: writes the session output of the whole turn as one message.
    public func loopTurnEnded() {
        self.flushScheduled = false
        if !self.closed { self.flushSession() }
    }

    private func dispatch(_ event: YamuxSession.Event) {
        switch event {
        case .streamOpened(let id):
            self.owner?.transport(self, peerOpened: id)
        case .streamAcknowledged(let id):
            self.handlers[id]?.streamAccepted()
        case .pong:
            break
        case .data(let id, let bytes):
            self.handlers[id]?.streamReceived(bytes)
        case .inputFinished(let id):
            self.handlers[id]?.streamInputFinished()
        case .streamReset(let id):
            self.handlers.removeValue(forKey: id)?.streamFailed(reason: "stream reset by the peer")
        case .streamRefused(let id):
            self.handlers.removeValue(forKey: id)?.streamRefused()
        case .streamClosed(let id):
            self.handlers[id] = nil
        case .sendWindowOpened(let id):
            if self.canSend(on: id) { self.handlers[id]?.streamWritable() }
        case .goAway:
            self.owner?.transportToldToGoAway(self)
        }
    }

    private func flushSession() {
        guard !self.session.output.isEmpty else { return }
        self.writeFrame(.binary, payload: self.session.takeOutput())
    }

    /// Writes the frame's header, then its payload as it is (masked in place on the agent's
    /// side): the turn's output is not copied into a frame first.
    private func writeFrame(_ opcode: WebSocketOpcode, payload: consuming [UInt8]) {
        let key = self.maskingKey()
        var header: [UInt8] = []
        header.reserveCapacity(14)
        WebSocketFrameEncoder.writeHeader(opcode, length: payload.count, maskingKey: key, into: &header)
        if let key { payload.withUnsafeMutableBytes { WebSocketMask.apply(key, phase: 0, to: $0) } }
        self.connection.write(header)
        self.connection.write(payload)
    }

    private func writeCloseFrame(code: UInt16) {
        var frame: [UInt8] = []
        WebSocketFrameEncoder.writeClose(code: code, maskingKey: self.maskingKey(), into: &frame)
        self.connection.write(frame)
    }

    /// A fresh key for the client role; none on the node's side.
    private func maskingKey() -> [UInt8]? {
        self.masked ? self.maskingKeys.next() : nil
    }
}
