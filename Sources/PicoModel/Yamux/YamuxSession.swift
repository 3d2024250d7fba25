/// One end of a yamux session (hashicorp/yamux `spec.md`): streams opened with SYN and answered
/// with ACK, half-closed with FIN, aborted with RST; per-stream flow control with window updates;
/// pings; go-away.
///
/// Pure: the shell feeds received bytes (`feed`, then `next` until nil), calls `openStream`,
/// `send`, `consumed`, `finish`, `reset`, `ping` and `goAway`, and writes `takeOutput()` to the
/// peer. Nothing is sent beyond a stream's send window: what does not fit waits in the stream's
/// send queue (`pendingSendCount`) until the peer grants more, so a shell that stops reading its
/// source while that queue is long gets end-to-end back-pressure. The receive window is given back
/// only as the shell reports bytes `consumed`, so a slow consumer slows the peer down.
///
/// Commands may queue events too (a `finish` after the peer's FIN closes the stream): drain
/// `next` after commands as after input.
///
/// After a protocol error `next` keeps throwing it; the output then ends with a go-away
/// (protocol error) and the shell should close the connection once it is written.
public struct YamuxSession: Sendable, ByteStreamDecoder {
    /// Which side: the client opens odd stream IDs, the server even ones.
    public enum Role: Hashable, Sendable {
        case client
        case server
    }

    /// Bounds and timings.
    public struct Settings: Hashable, Sendable {
        /// Streams open at once; a SYN beyond this is refused with RST.
        public var maxStreams = 4_096
        /// Largest data frame this side sends.
        public var maxFrameSize: UInt32 = 64 * 1_024
        /// A ping unanswered this long means the peer is gone.
        public var keepaliveTimeout: Duration = .seconds(10)
        /// A stream the peer opens is acknowledged at once (true), or only when the owner calls
        /// `acknowledge`, first sends on it or finishes it (false: an agent acknowledges a TCP
        /// stream once its service accepted the connection, and resets it when the service
        /// refused).
        public var acknowledgesStreamsOnOpen = true
        /// Most streams this side opened that the peer has not acknowledged yet; a stream opened
        /// beyond it waits (its bytes queued) until an acknowledgement frees a place. It is
        /// hashicorp/yamux's accept backlog (256), which resets every SYN beyond it, and its own
        /// opener keeps to it the same way.
        public var maxUnacknowledgedOpens = 256

        /// Defaults: 4,096 streams, 64 KiB frames, 10 s ping timeout.
        public init() {}
    }

    /// What the peer did.
    public enum Event: Hashable, Sendable {
        /// The peer opened a stream (acknowledged already, unless `acknowledgesStreamsOnOpen` is off).
        case streamOpened(UInt32)
        /// The peer acknowledged a stream we opened.
        case streamAcknowledged(UInt32)
        /// Bytes arrived on a stream; report them `consumed` once delivered.
        case data(UInt32, ArraySlice<UInt8>)
        /// The peer will send nothing more on this stream (FIN).
        case inputFinished(UInt32)
        /// The peer reset the stream, or refused one we opened; the ID is forgotten.
        case streamReset(UInt32)
        /// A stream we opened never went out (it waited for a place among the unacknowledged
        /// opens when the peer said go-away): the peer never saw a byte of it. The ID is
        /// forgotten.
        case streamRefused(UInt32)
        /// Both sides finished the stream; the ID is forgotten.
        case streamClosed(UInt32)
        /// The peer granted window on a stream with queued bytes: some were sent.
        case sendWindowOpened(UInt32)
        /// The answer to our ping with this value.
        case pong(UInt32)
        /// The peer will accept no new streams.
        case goAway(YamuxHeader.GoAwayCode)
    }

    /// What `keepaliveTick` decided.
    public enum KeepaliveVerdict: Hashable, Sendable {
        /// A ping was queued (or one is still within its timeout).
        case alive
        /// The last ping went unanswered past the timeout.
        case dead
    }

    struct Stream: Sendable {
        var sendWindow = YamuxHeader.initialWindow
        var receiveWindow = YamuxHeader.initialWindow
        var unacknowledged: UInt32 = 0
        var queued: [UInt8] = []
        var queuedStart = 0
        var finishRequested = false
        var finishSent = false
        var inputFinished = false
        /// The peer opened it and our ACK has not gone out yet.
        var awaitingAcknowledgement = false
        /// We opened it and its SYN waits for a place (`maxUnacknowledgedOpens`): nothing of it
        /// has gone out yet.
        var synDeferred = false
        /// We opened it, its SYN went out, and the peer has not acknowledged it yet.
        var awaitingPeerAcknowledgement = false
        var queuedCount: Int { self.queued.count - self.queuedStart }
    }

    struct IncomingPayload: Sendable {
        var streamID: UInt32
        var remaining: UInt32
        var flags: YamuxHeader.Flags
        var deliver: Bool
    }

    /// This side's role.
    public let role: Role
    /// Its settings.
    public let settings: Settings
    var decoder = YamuxFrameDecoder()
    var streams = StreamTable<Stream>()
    var nextLocalID: UInt32
    var lastRemoteID: UInt32 = 0
    var payload: IncomingPayload?
    /// Streams we opened whose SYN went out and that the peer has not acknowledged.
    var unacknowledgedOpens = 0
    /// Streams we opened whose SYN waits for a place, oldest first (from `deferredStart`).
    var deferredOpens: [UInt32] = []
    var deferredStart = 0
    var events: [Event] = []
    var eventIndex = 0
    var failure: YamuxProtocolError?
    var outstandingPing: (value: UInt32, sentAt: Instant)?
    var nextPingValue: UInt32 = 1
    /// True once we sent go-away: new streams from the peer are refused.
    public private(set) var localGoAway = false
    /// True once the peer sent go-away: `openStream` returns nil.
    public private(set) var remoteGoAway = false
    /// Bytes to write to the peer, in order.
    public private(set) var output: [UInt8] = []

    /// Creates a session end.
    public init(role: Role, settings: Settings = Settings()) {
        self.role = role
        self.settings = settings
        self.nextLocalID = role == .client ? 1 : 2
    }

    /// Streams currently open.
    public var streamCount: Int { self.streams.count }

    /// True when `id` is open (in either direction).
    public func isOpen(_ id: UInt32) -> Bool { self.streams.contains(id) }

    /// Bytes queued on `id` beyond its send window (0 for unknown streams).
    public func pendingSendCount(_ id: UInt32) -> Int { self.streams[id]?.queuedCount ?? 0 }

    /// Returns the bytes to write and clears them.
    public mutating func takeOutput() -> [UInt8] {
        defer { self.output.removeAll(keepingCapacity: false) }
        return self.output
    }

    // MARK: Commands

    /// Opens a stream (SYN); nil after the peer's go-away, after a failure, or at `maxStreams`.
    public mutating func openStream() -> UInt32? {
        guard !self.remoteGoAway, self.failure == nil, self.streams.count < self.settings.maxStreams,
              self.nextLocalID <= UInt32.max - 2 else { return nil }
        let id = self.nextLocalID
        self.nextLocalID += 2
        var stream = Stream()
        if self.unacknowledgedOpens < self.settings.maxUnacknowledgedOpens {
            stream.awaitingPeerAcknowledgement = true
            self.unacknowledgedOpens += 1
            self.write(YamuxHeader(.windowUpdate, flags: .syn, streamID: id, length: 0))
        } else {
            stream.synDeferred = true
            self.deferredOpens.append(id)
        }
        self.streams[id] = stream
        return id
    }

    /// Queues `bytes` on `id` and sends what its window allows. False when the stream is unknown
    /// or already finished by us (the bytes are dropped). With `finishing`, our side of the
    /// stream ends after these bytes, as `finish` would; when they go out at once, the FIN rides
    /// on their data frame instead of a frame of its own.
    @discardableResult
    public mutating func send(_ bytes: some Collection<UInt8>, on id: UInt32, finishing: Bool = false) -> Bool {
        self.sendBytes(bytes, on: id, finishing: finishing)
    }

    /// `send` for raw bytes: concrete, so the runtime's transports get a specialized copy.
    @discardableResult
    public mutating func send(_ bytes: UnsafeRawBufferPointer, on id: UInt32, finishing: Bool = false) -> Bool {
        self.sendBytes(bytes, on: id, finishing: finishing)
    }

    mutating func sendBytes(_ bytes: some Collection<UInt8>, on id: UInt32, finishing: Bool) -> Bool {
        if !self.settings.acknowledgesStreamsOnOpen { self.acknowledge(id) }
        let count = bytes.count
        let maxFrameSize = Int(self.settings.maxFrameSize)
        // The common case: nothing waits and the window takes it all, so the bytes go straight
        // into one data frame (the stream is changed in place, its queue never touched).
        let path = self.streams.modify(id) { stream -> SendPath in
            guard !stream.finishRequested else { return .refused }
            guard count > 0 else { return .empty }
            if stream.queuedCount == 0, !stream.synDeferred, UInt32(clamping: count) <= stream.sendWindow, count <= maxFrameSize {
                stream.sendWindow -= UInt32(count)
                if finishing {
                    stream.finishRequested = true
                    stream.finishSent = true
                    return stream.inputFinished ? .directClosing : .directFinishing
                }
                return .direct
            }
            stream.queued.append(contentsOf: bytes)
            return .queued
        } ?? .refused
        switch path {
        case .refused:
            return false
        case .empty:
            if finishing { self.finish(id) }
            return true
        case .direct, .directFinishing, .directClosing:
            self.write(YamuxHeader(.data, flags: path == .direct ? [] : .fin, streamID: id, length: UInt32(count)))
            self.output.append(contentsOf: bytes)
            if path == .directClosing {
                self.forget(id)
                self.events.append(.streamClosed(id))
            }
            return true
        case .queued:
            if finishing { self.streams.modify(id) { $0.finishRequested = true } }
            self.flush(id)
            return true
        }
    }

    /// How `send` handles bytes.
    private enum SendPath { case refused, empty, direct, directFinishing, directClosing, queued }

    /// Finishes our side of `id` (FIN after the queued bytes). Unknown IDs are ignored.
    public mutating func finish(_ id: UInt32) {
        if !self.settings.acknowledgesStreamsOnOpen { self.acknowledge(id) }
        guard self.streams[id] != nil, self.streams[id]?.finishRequested == false else { return }
        self.streams[id]?.finishRequested = true
        self.flush(id)
    }

    /// Acknowledges stream `id` the peer opened (with `acknowledgesStreamsOnOpen` off; sending or
    /// finishing on it does so too, crediting its window does not). Unknown or acknowledged
    /// streams are ignored.
    public mutating func acknowledge(_ id: UInt32) {
        guard self.streams[id]?.awaitingAcknowledgement == true else { return }
        self.streams[id]?.awaitingAcknowledgement = false
        self.write(YamuxHeader(.windowUpdate, flags: .ack, streamID: id, length: 0))
    }

    /// Aborts `id` at once (RST); queued bytes are dropped. Unknown IDs are ignored.
    public mutating func reset(_ id: UInt32) {
        guard let stream = self.forget(id) else { return }
        // A stream whose SYN never went out is unknown to the peer: nothing to reset there.
        guard !stream.synDeferred else { return }
        self.write(YamuxHeader(.windowUpdate, flags: .rst, streamID: id, length: 0))
    }

    /// Reports that `count` received bytes of `id` were delivered; window is given back to the
    /// peer once half of it is used.
    public mutating func consumed(_ count: Int, on id: UInt32) {
        // Window credit is not an acknowledgement: an agent takes (and credits) a TCP stream's
        // first bytes before its service accepted the connection.
        guard var stream = self.streams[id], count > 0, !stream.inputFinished else { return }
        stream.unacknowledged += UInt32(clamping: count)
        if stream.unacknowledged >= YamuxHeader.initialWindow / 2 {
            self.write(YamuxHeader(.windowUpdate, streamID: id, length: stream.unacknowledged))
            stream.receiveWindow += stream.unacknowledged
            stream.unacknowledged = 0
        }
        self.streams[id] = stream
    }

    /// Sends go-away: the peer may open no more streams; open ones continue.
    public mutating func goAway(_ code: YamuxHeader.GoAwayCode = .normal) {
        guard !self.localGoAway else { return }
        self.localGoAway = true
        self.write(YamuxHeader(.goAway, streamID: 0, length: code.rawValue))
    }

    /// Keep-alive: sends a ping unless one is outstanding; `.dead` once one has waited longer
    /// than `keepaliveTimeout`. Call it every keep-alive interval.
    public mutating func keepaliveTick(now: Instant) -> KeepaliveVerdict {
        if let outstanding = self.outstandingPing {
            return now - outstanding.sentAt >= self.settings.keepaliveTimeout ? .dead : .alive
        }
        let value = self.nextPingValue
        self.nextPingValue &+= 1
        self.outstandingPing = (value, now)
        self.write(YamuxHeader(.ping, flags: .syn, streamID: 0, length: value))
        return .alive
    }

    // MARK: Input

    /// Adds bytes received from the peer (the `ByteStreamDecoder` contract: copied before
    /// returning, decoded by `next()`).
    public mutating func feed(_ bytes: UnsafeRawBufferPointer) {
        self.decoder.feed(bytes)
    }

    /// The next event, nil when more bytes are needed.
    public mutating func next() throws(YamuxProtocolError) -> Event? {
        if let failure = self.failure { throw failure }
        do throws(YamuxProtocolError) {
            while true {
                if self.eventIndex < self.events.count {
                    let event = self.events[self.eventIndex]
                    self.eventIndex += 1
                    return event
                }
                self.events.removeAll(keepingCapacity: true)
                self.eventIndex = 0
                guard let piece = try self.decoder.next() else { return nil }
                switch piece {
                case .header(let header): try self.handle(header)
                case .data(_, let bytes): self.handlePayload(bytes)
                }
            }
        } catch {
            self.failure = error
            self.events.removeAll()
            self.eventIndex = 0
            self.localGoAway = true
            self.write(YamuxHeader(.goAway, streamID: 0, length: YamuxHeader.GoAwayCode.protocolError.rawValue))
            throw error
        }
    }

    mutating func handle(_ header: YamuxHeader) throws(YamuxProtocolError) {
        switch header.type {
        case .ping:
            if header.flags.contains(.syn) {
                self.write(YamuxHeader(.ping, flags: .ack, streamID: 0, length: header.length))
            } else if header.flags.contains(.ack), self.outstandingPing?.value == header.length {
                self.outstandingPing = nil
                self.events.append(.pong(header.length))
            }
        case .goAway:
            self.remoteGoAway = true
            self.events.append(.goAway(YamuxHeader.GoAwayCode(rawValue: header.length) ?? .internalError))
            // Opens still waiting for a place would only be reset now: they never go out.
            for id in self.deferredOpens[self.deferredStart...] where self.streams[id]?.synDeferred == true {
                self.streams[id] = nil
                self.events.append(.streamRefused(id))
            }
            self.deferredOpens.removeAll()
            self.deferredStart = 0
        case .windowUpdate, .data:
            try self.handleStreamFrame(header)
        }
    }

    mutating func handleStreamFrame(_ header: YamuxHeader) throws(YamuxProtocolError) {
        let id = header.streamID
        var deliver = true
        if header.flags.contains(.syn) { deliver = try self.accept(id) }
        if deliver, !self.streams.contains(id) { deliver = false }
        if deliver, header.flags.contains(.ack), !header.flags.contains(.syn) {
            self.events.append(.streamAcknowledged(id))
            if self.streams[id]?.awaitingPeerAcknowledgement == true {
                self.streams[id]?.awaitingPeerAcknowledgement = false
                self.openSlotFreed()
            }
        }
        if deliver, header.type == .windowUpdate, header.length > 0, var stream = self.streams[id] {
            let (window, overflow) = stream.sendWindow.addingReportingOverflow(header.length)
            guard !overflow else { throw YamuxProtocolError("window update overflows stream \(id)'s window", offset: self.decoder.offset) }
            stream.sendWindow = window
            let hadQueue = stream.queuedCount > 0
            self.streams[id] = stream
            self.flush(id)
            if hadQueue { self.events.append(.sendWindowOpened(id)) }
        }
        if header.type == .data, header.length > 0 {
            if deliver, var stream = self.streams[id] {
                guard !stream.inputFinished else { throw YamuxProtocolError("data on stream \(id) after its FIN", offset: self.decoder.offset) }
                guard header.length <= stream.receiveWindow else {
                    throw YamuxProtocolError("data frame of \(header.length) bytes exceeds stream \(id)'s window of \(stream.receiveWindow)", offset: self.decoder.offset)
                }
                stream.receiveWindow -= header.length
                self.streams[id] = stream
            }
            self.payload = IncomingPayload(streamID: id, remaining: header.length, flags: header.flags, deliver: deliver)
        } else if deliver {
            self.applyClosingFlags(header.flags, on: id)
        }
    }

    /// A SYN from the peer: true when the stream was accepted.
    mutating func accept(_ id: UInt32) throws(YamuxProtocolError) -> Bool {
        let peerParity: UInt32 = self.role == .client ? 0 : 1
        guard id % 2 == peerParity else { throw YamuxProtocolError("peer opened stream \(id) with this side's parity", offset: self.decoder.offset) }
        guard id > self.lastRemoteID else { throw YamuxProtocolError("peer reused or reordered stream ID \(id)", offset: self.decoder.offset) }
        self.lastRemoteID = id
        guard !self.localGoAway, self.streams.count < self.settings.maxStreams else {
            self.write(YamuxHeader(.windowUpdate, flags: .rst, streamID: id, length: 0))
            return false
        }
        var stream = Stream()
        if self.settings.acknowledgesStreamsOnOpen {
            self.write(YamuxHeader(.windowUpdate, flags: .ack, streamID: id, length: 0))
        } else {
            stream.awaitingAcknowledgement = true
        }
        self.streams[id] = stream
        self.events.append(.streamOpened(id))
        return true
    }

    mutating func handlePayload(_ bytes: ArraySlice<UInt8>) {
        guard var payload = self.payload else { return }
        payload.remaining -= UInt32(bytes.count)
        self.payload = payload.remaining == 0 ? nil : payload
        guard payload.deliver, self.streams.contains(payload.streamID) else { return }
        self.events.append(.data(payload.streamID, bytes))
        if payload.remaining == 0 { self.applyClosingFlags(payload.flags, on: payload.streamID) }
    }

    mutating func applyClosingFlags(_ flags: YamuxHeader.Flags, on id: UInt32) {
        guard var stream = self.streams[id] else { return }
        if flags.contains(.rst) {
            self.forget(id)
            self.events.append(.streamReset(id))
            return
        }
        guard flags.contains(.fin), !stream.inputFinished else { return }
        stream.inputFinished = true
        self.events.append(.inputFinished(id))
        if stream.finishSent {
            self.forget(id)
            self.events.append(.streamClosed(id))
        } else {
            self.streams[id] = stream
        }
    }

    // MARK: Output

    mutating func write(_ header: YamuxHeader) {
        header.write(into: &self.output)
    }

    /// Sends as much of `id`'s queue as its window allows, then its FIN when due.
    mutating func flush(_ id: UInt32) {
        guard var stream = self.streams[id], !stream.synDeferred else { return }
        while stream.queuedCount > 0, stream.sendWindow > 0 {
            let size = min(UInt32(stream.queuedCount), stream.sendWindow, self.settings.maxFrameSize)
            self.write(YamuxHeader(.data, streamID: id, length: size))
            let end = stream.queuedStart + Int(size)
            self.output.append(contentsOf: stream.queued[stream.queuedStart..<end])
            stream.queuedStart = end
            stream.sendWindow -= size
        }
        if stream.queuedCount == 0 {
            stream.queued.removeAll(keepingCapacity: false)
            stream.queuedStart = 0
        }
        if stream.finishRequested, !stream.finishSent, stream.queuedCount == 0 {
            stream.finishSent = true
            self.write(YamuxHeader(.windowUpdate, flags: .fin, streamID: id, length: 0))
            if stream.inputFinished {
                self.streams[id] = stream
                self.forget(id)
                self.events.append(.streamClosed(id))
                return
            }
        }
        self.streams[id] = stream
    }

    /// Removes `id`, freeing its place among the unacknowledged opens or the deferred ones.
    @discardableResult
    mutating func forget(_ id: UInt32) -> Stream? {
        guard let stream = self.streams.removeValue(forKey: id) else { return nil }
        if stream.awaitingPeerAcknowledgement {
            self.openSlotFreed()
        } else if stream.synDeferred, let index = self.deferredOpens[self.deferredStart...].firstIndex(of: id) {
            self.deferredOpens.remove(at: index)
        }
        return stream
    }

    /// A stream we opened was acknowledged, reset or closed: the oldest deferred open takes the
    /// place (its SYN goes out, then what was queued on it, as the window allows).
    mutating func openSlotFreed() {
        self.unacknowledgedOpens -= 1
        while self.unacknowledgedOpens < self.settings.maxUnacknowledgedOpens, self.deferredStart < self.deferredOpens.count {
            let id = self.deferredOpens[self.deferredStart]
            self.deferredStart += 1
            guard var stream = self.streams[id], stream.synDeferred else { continue }
            stream.synDeferred = false
            stream.awaitingPeerAcknowledgement = true
            self.unacknowledgedOpens += 1
            let hadQueue = stream.queuedCount > 0
            self.streams[id] = stream
            self.write(YamuxHeader(.windowUpdate, flags: .syn, streamID: id, length: 0))
            self.flush(id)
            // Its sender may have stopped at the queue limit: it may go on.
            if hadQueue { self.events.append(.sendWindowOpened(id)) }
        }
        if self.deferredStart == self.deferredOpens.count {
            self.deferredOpens.removeAll(keepingCapacity: true)
            self.deferredStart = 0
        } else if self.deferredStart > 1_024, self.deferredStart * 2 > self.deferredOpens.count {
            self.deferredOpens.removeFirst(self.deferredStart)
            self.deferredStart = 0
        }
    }
}
