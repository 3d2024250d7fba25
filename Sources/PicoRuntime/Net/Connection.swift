import Glibc
import PicoModel

/// What a `Connection` reports, on its loop's thread.
public protocol ConnectionDelegate: AnyObject {
    /// An outgoing connection completed.
    func connectionDidConnect(_ connection: Connection)
    /// Bytes arrived; they are valid only during the call (the loop reuses the buffer).
    func connection(_ connection: Connection, didRead bytes: UnsafeRawBufferPointer)
    /// The peer finished sending (it may still read what we write).
    func connectionDidReadEOF(_ connection: Connection)
    /// The write queue, which had reached the high watermark, drained below the low one.
    func connectionDidDrain(_ connection: Connection)
    /// The write queue is empty, after `reportFlushed()` was asked for while it was not.
    func connectionDidFlush(_ connection: Connection)
    /// The connection closed (by us, the peer or an error); nothing more will be reported.
    func connectionDidClose(_ connection: Connection, error: SocketError?)
    /// Its TLS failed (a handshake refused, a corrupt record): the session is gone, so what the
    /// delegate writes now goes out in plain text (`peerSentPlainText`: the first byte was no
    /// TLS record, e.g. a plain HTTP request, which deserves a plain refusal). The connection
    /// closes after this call unless the delegate began a close itself.
    func connection(_ connection: Connection, tlsFailed error: TLSError, peerSentPlainText: Bool)
}

extension ConnectionDelegate {
    public func connection(_ connection: Connection, tlsFailed error: TLSError, peerSentPlainText: Bool) {}
    public func connectionDidConnect(_ connection: Connection) {}
    public func connectionDidDrain(_ connection: Connection) {}
    public func connectionDidFlush(_ connection: Connection) {}
}

/// A non-blocking TCP connection served by an `EventLoop`: reads into the loop's shared buffer,
/// writes through a queue that is flushed once at the end of the loop's turn (every write of the
/// turn in one system call) and watches for `EPOLLOUT` only while the socket is full, and tells its
/// delegate when the queue passes the high watermark and drains again, so the delegate can stop
/// reading whatever feeds it (back-pressure). It keeps its delegate alive until it closes.
public final class Connection: LoopHandler, TurnEndHandler {
    /// Where it is in its life.
    public enum State: Hashable, Sendable {
        case connecting
        case open
        case closed
    }

    /// The socket.
    public let fd: Int32
    /// Its loop.
    public let loop: EventLoop
    /// Receives its events; released when it closes.
    public var delegate: ConnectionDelegate?
    /// Current state.
    public private(set) var state: State
    /// Queued bytes at which `isWritable` turns false.
    public var highWatermark = 256 * 1_024
    /// Queued bytes below which a drain is reported.
    public var lowWatermark = 64 * 1_024
    /// When set, a connection whose queued bytes make no progress for this long is closed with
    /// `ETIMEDOUT` (a peer that stopped reading cannot hold its buffers forever).
    public var writeStallTimeout: Duration?
    /// Bytes queued and not yet written.
    public private(set) var queuedByteCount = 0
    /// Total bytes read and written (for metrics and access logs).
    public private(set) var bytesRead = 0
    public private(set) var bytesWritten = 0
    /// Bytes not yet written start at `outputHead`; one buffer, so a flush is one system call.
    private var output: [UInt8] = []
    private var outputHead = 0
    /// True while a flush waits for the end of the loop's turn.
    private var flushScheduled = false
    /// True while the loop watches for EPOLLOUT (the socket was full).
    private var watchingWritable = false
    private var readingPaused = false
    private var readEOF = false
    private var wasAboveHighWatermark = false
    private var closeWhenFlushed = false
    private var shutdownWhenFlushed = false
    private var lastWriteProgress: Instant?
    private var stallTimer: LoopTimer?
    private var flushedAction: (() -> Void)?
    /// Set by `reportFlushed`: the delegate hears `connectionDidFlush` once the queue empties.
    private var flushReportWanted = false
    /// Set by `closeLingering`: input is read and dropped until the close.
    private var lingering: LingeringClose?
    private var lingerTimer: LoopTimer?
    /// The connection's TLS (`startTLS`): reads are decrypted before the delegate sees them,
    /// writes encrypted before they are queued.
    public private(set) var tls: TLSSession?
    /// The connection's first byte, once read (a plain-text peer on a TLS port starts with a
    /// letter, a TLS client with a record type).
    private var firstByte: UInt8?
    /// Reading stopped because TLS replies (to a peer's KeyUpdates, alerts, renegotiation
    /// attempts) filled the queue: it resumes once the queue drains below the low watermark.
    private var throttledByOutput = false
    /// Plaintext held in the session waits for the end of the turn to be delivered.
    private var tlsDeliveryWanted = false

    /// Wraps an accepted (`connected`) or connecting socket and registers it with `loop`.
    public init(fd: Int32, loop: EventLoop, connected: Bool, delegate: ConnectionDelegate?) {
        self.fd = fd
        self.loop = loop
        self.delegate = delegate
        self.state = connected ? .open : .connecting
        loop.register(fd, handler: self, interest: connected ? .readable : .writable)
    }

    /// False once the queue holds `highWatermark` bytes: stop feeding it until `connectionDidDrain`.
    public var isWritable: Bool { self.queuedByteCount < self.highWatermark }

    /// Queues `bytes`; they are written at the end of the loop's turn, together with everything
    /// else queued on this connection in the turn. Ignored once closed or closing.
    public func write(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { self.write(raw: $0) }
    }

    /// Queues `bytes` (see `write(_:)`).
    public func write(_ bytes: ArraySlice<UInt8>) {
        bytes.withUnsafeBytes { self.write(raw: $0) }
    }

    /// Runs the connection's bytes through `session` from now on (before anything is read or
    /// written; a client session's hello is queued at once).
    public func startTLS(_ session: TLSSession) {
        precondition(self.tls == nil && self.bytesRead == 0, "TLS starts before any byte is read")
        self.tls = session
        self.queueTLSOutput()
        // A session that moved here may hold records its old connection did not deliver.
        if session.hasBufferedInput { self.wantTLSDelivery() }
    }

    /// Delivers what the TLS session holds at the end of this turn (not from inside the
    /// delegate's own call, which may be what resumed reading).
    private func wantTLSDelivery() {
        guard !self.tlsDeliveryWanted else { return }
        self.tlsDeliveryWanted = true
        self.loop.runAtEndOfTurn(self)
    }

    /// Queues a copy of `bytes` (see `write(_:)`).
    public func write(raw bytes: UnsafeRawBufferPointer) {
        guard self.state != .closed, !bytes.isEmpty, !self.closeWhenFlushed, !self.shutdownWhenFlushed else { return }
        if let tls = self.tls {
            do throws(TLSError) {
                try tls.send(bytes)
            } catch {
                self.tlsFailed(error, plainText: false)
                return
            }
            self.queueTLSOutput()
            return
        }
        if bytes.count >= Self.directWriteMinimum, self.state == .open, !self.watchingWritable, self.sendDirectly(bytes) { return }
        self.queue(bytes)
    }

    /// Writes at least this large go to the socket at once, with whatever is queued before them,
    /// when the socket is not known to be full: a bulk transfer's bytes are not copied into the
    /// queue (nor the queue grown page by page) only to be sent at the end of the turn.
    static let directWriteMinimum = 16 * 1_024

    /// Sends the queue and then `bytes` in one `sendmsg`, and queues what the socket did not take.
    /// False when the socket failed: nothing was taken, and the caller queues `bytes` (the flush
    /// finds the failure and closes).
    private func sendDirectly(_ bytes: UnsafeRawBufferPointer) -> Bool {
        let pending = self.output.count - self.outputHead
        var written = -1
        self.output.withUnsafeBytes { queued in
            // Two vectors on the stack: the queue's unsent part (when there is one), then `bytes`.
            withUnsafeTemporaryAllocation(of: iovec.self, capacity: 2) { vectors in
                var count = 0
                if pending > 0, let base = queued.baseAddress {
                    vectors[count] = iovec(iov_base: UnsafeMutableRawPointer(mutating: base + self.outputHead), iov_len: pending)
                    count += 1
                }
                vectors[count] = iovec(iov_base: UnsafeMutableRawPointer(mutating: bytes.baseAddress), iov_len: bytes.count)
                var message = msghdr()
                message.msg_iov = vectors.baseAddress
                message.msg_iovlen = count + 1
                repeat {
                    written = Glibc.sendmsg(self.fd, &message, Int32(MSG_NOSIGNAL))
                } while written < 0 && errno == EINTR
            }
        }
        if written < 0 {
            guard errno == EAGAIN || errno == EWOULDBLOCK else { return false }
            written = 0
        }
        self.bytesWritten += written
        if written > 0 { self.lastWriteProgress = self.loop.now }
        let fromQueue = min(written, pending)
        self.outputHead += fromQueue
        self.queuedByteCount -= fromQueue
        if self.outputHead == self.output.count { self.releaseSentOutput() }
        let taken = written - fromQueue
        if taken < bytes.count { self.queue(UnsafeRawBufferPointer(rebasing: bytes[taken...])) }
        return true
    }

    /// Queues what the TLS session has for the network; returns how many bytes that was.
    @discardableResult
    private func queueTLSOutput() -> Int {
        guard self.state != .closed, let tls = self.tls, tls.hasOutput else { return 0 }
        let before = self.output.count
        if self.queuedByteCount == 0 { self.lastWriteProgress = self.loop.now }
        tls.takeOutput(into: &self.output)
        self.queued(self.output.count - before)
        return self.output.count - before
    }

    private func queue(_ bytes: UnsafeRawBufferPointer) {
        if self.queuedByteCount == 0 { self.lastWriteProgress = self.loop.now }
        self.output.append(contentsOf: bytes)
        self.queued(bytes.count)
    }

    /// Accounts for `count` bytes just appended to the queue and schedules their flush.
    private func queued(_ count: Int) {
        self.queuedByteCount += count
        if self.queuedByteCount >= self.highWatermark { self.wasAboveHighWatermark = true }
        // While EPOLLOUT is watched the socket is full: its writable event flushes.
        if self.state == .open, !self.flushScheduled, !self.watchingWritable {
            self.flushScheduled = true
            self.loop.runAtEndOfTurn(self)
        }
    }

    /// The end of the loop's turn: writes what the turn queued.
    public func loopTurnEnded() {
        if self.tlsDeliveryWanted {
            self.tlsDeliveryWanted = false
            if let tls = self.tls, self.state == .open, !self.readingPaused, !self.readEOF, tls.hasBufferedInput {
                _ = self.receiveTLS(UnsafeRawBufferPointer(start: nil, count: 0), tls)
            }
        }
        guard self.flushScheduled else { return }
        self.flushScheduled = false
        if self.state == .open, self.queuedByteCount > 0 { self.flush() }
    }

    /// Stops reading (the loop stops watching for input) until `resumeReading`.
    public func pauseReading() {
        guard !self.readingPaused else { return }
        self.readingPaused = true
        self.updateInterest()
    }

    /// Resumes reading.
    public func resumeReading() {
        guard self.readingPaused else { return }
        self.readingPaused = false
        self.updateInterest()
        if let tls = self.tls, tls.hasBufferedInput { self.wantTLSDelivery() }
    }

    /// Half-closes: sends FIN (after TLS's `close_notify`) once the queue is written; reading goes on.
    public func shutdownWriteWhenFlushed() {
        guard self.state != .closed else { return }
        self.sendCloseNotify()
        self.shutdownWhenFlushed = true
        if self.state == .open, self.queuedByteCount == 0 { shutdown(self.fd, Int32(SHUT_WR)) }
    }

    /// True once a close has begun (`closeWhenWritten`, `closeLingering`) or happened: the
    /// delegate should start nothing more on it.
    public var isClosing: Bool { self.state == .closed || self.closeWhenFlushed || self.lingering != nil }

    /// Closes once the queue is written (reading stops now).
    public func closeWhenWritten() {
        guard self.state != .closed else { return }
        self.sendCloseNotify()
        self.closeWhenFlushed = true
        self.readingPaused = true
        if self.state == .open, self.queuedByteCount == 0 { self.close() } else { self.updateInterest() }
    }

    /// Closes without losing the answer to a peer that is still sending: writes what is queued,
    /// sends FIN, then reads and drops the peer's input until it closes its side or a bound of
    /// `bounds` is reached, and closes. (Closing with unread input makes the kernel send a reset,
    /// which destroys the answer in the peer's receive buffer before it is read; nginx's
    /// lingering close.) The delegate hears no more input, only `connectionDidClose`.
    public func closeLingering(_ bounds: LingeringClose = LingeringClose()) {
        guard self.state != .closed, self.lingering == nil, !self.closeWhenFlushed else { return }
        if self.readEOF {
            // The peer sent everything already: nothing can be left unread.
            self.closeWhenWritten()
            return
        }
        var bounds = bounds
        bounds.started = self.loop.now
        bounds.lastRead = bounds.started
        self.lingering = bounds
        self.readingPaused = false
        self.shutdownWriteWhenFlushed()
        self.updateInterest()
        self.watchLingering()
    }

    /// Re-arms the lingering close's timer for the nearer of its two deadlines.
    private func watchLingering() {
        guard let bounds = self.lingering else { return }
        let deadline = min(bounds.started + bounds.maxTime, bounds.lastRead + bounds.quietTime)
        if self.loop.now >= deadline {
            self.close()
            return
        }
        self.lingerTimer = self.loop.schedule(at: deadline) { [weak self] in
            guard let self, self.state != .closed else { return }
            self.lingerTimer = nil
            self.watchLingering()
        }
    }

    /// True when the peer closed its side (or the socket failed) and no byte is waiting: a
    /// non-blocking peek, for checking an idle pooled connection before reuse. Over TLS any
    /// waiting byte counts as closed too: an idle peer sends nothing but its `close_notify`,
    /// which arrives before its FIN.
    public func peerHasClosed() -> Bool {
        guard self.state == .open, !self.readEOF else { return true }
        if let tls = self.tls, tls.state != .established || tls.hasBufferedInput { return true }
        var byte: UInt8 = 0
        let count = recv(self.fd, &byte, 1, Int32(MSG_PEEK) | Int32(MSG_DONTWAIT))
        if count == 0 || (count > 0 && self.tls != nil) { return true }
        return count < 0 && errno != EAGAIN && errno != EWOULDBLOCK
    }

    /// Called once, the next time the write queue is empty (at once when it is empty now).
    public func whenFlushed(_ action: @escaping () -> Void) {
        guard self.state != .closed else { return }
        if self.queuedByteCount == 0 {
            action()
        } else {
            self.flushedAction = action
        }
    }

    /// Tells the delegate (`connectionDidFlush`) once the write queue is empty; true, and no
    /// report, when it is empty now. Unlike `whenFlushed` it allocates nothing (it is used once per
    /// keep-alive request).
    public func reportFlushed() -> Bool {
        guard self.queuedByteCount > 0, self.state != .closed else { return true }
        self.flushReportWanted = true
        return false
    }

    /// Queues TLS's `close_notify` (once; nothing is sent after it).
    private func sendCloseNotify() {
        guard let tls = self.tls, tls.state == .established, !self.closeWhenFlushed, !self.shutdownWhenFlushed else { return }
        tls.close()
        self.queueTLSOutput()
    }

    /// TLS failed: the session is dropped, the delegate hears why, and the connection closes
    /// unless the delegate began a close (e.g. after a plain refusal).
    private func tlsFailed(_ error: TLSError, plainText: Bool) {
        // OpenSSL's alert tells a TLS peer why (a plain-text peer gets the delegate's answer instead).
        if !plainText { self.queueTLSOutput() }
        self.tls = nil
        self.delegate?.connection(self, tlsFailed: error, peerSentPlainText: plainText)
        guard self.state != .closed, !self.closeWhenFlushed, self.lingering == nil else { return }
        self.closeWhenWritten()
    }

    /// Stops serving the socket without closing it and returns it, so another loop can adopt it.
    /// Only for an open connection with nothing queued; the delegate hears nothing more.
    public func detach() -> Int32 {
        precondition(self.state == .open && self.queuedByteCount == 0, "detach needs an open, flushed connection")
        self.state = .closed
        self.loop.unregister(self.fd)
        self.stallTimer?.cancel()
        self.stallTimer = nil
        self.flushedAction = nil
        self.delegate = nil
        // Its TLS session goes with the descriptor: nothing here may touch it again.
        self.tls = nil
        return self.fd
    }

    /// Closes now; bytes queued in this turn get one non-blocking write attempt (as if written
    /// at once), the rest is dropped. The delegate hears `connectionDidClose` once.
    public func close(error: SocketError? = nil) {
        guard self.state != .closed else { return }
        if self.flushScheduled, error == nil, self.state == .open { _ = self.sendOutput() }
        self.state = .closed
        self.loop.unregister(self.fd)
        Glibc.close(self.fd)
        self.output = []
        self.outputHead = 0
        self.queuedByteCount = 0
        self.stallTimer?.cancel()
        self.stallTimer = nil
        self.lingerTimer?.cancel()
        self.lingerTimer = nil
        self.lingering = nil
        self.flushedAction = nil
        self.flushReportWanted = false
        let delegate = self.delegate
        self.delegate = nil
        delegate?.connectionDidClose(self, error: error)
    }

    public func handleEvent(readable: Bool, writable: Bool, failed: Bool) {
        if self.state == .connecting {
            let code = Sockets.pendingError(self.fd)
            guard code == 0, !failed else {
                self.close(error: SocketError("connect", code: code == 0 ? ECONNREFUSED : code))
                return
            }
            self.state = .open
            self.updateInterest()
            self.delegate?.connectionDidConnect(self)
            if self.state == .open, self.queuedByteCount > 0 { self.flush() }
            return
        }
        if failed, !readable {
            self.close(error: SocketError("socket", code: Sockets.pendingError(self.fd)))
            return
        }
        if writable, self.state == .open { self.flush() }
        if readable, self.state == .open, !self.readingPaused { self.readAvailable() }
    }

    private func readAvailable() {
        let buffer = self.loop.readBuffer
        for _ in 0..<4 {
            let count = read(self.fd, buffer.baseAddress, buffer.count)
            if count > 0, let bounds = self.lingering {
                // Lingering: the input is dropped; too much of it ends the wait.
                self.lingering?.discarded += count
                self.lingering?.lastRead = self.loop.now
                if bounds.discarded + count > bounds.maxBytes {
                    self.close()
                    return
                }
                continue
            }
            if count > 0 {
                self.bytesRead += count
                let bytes = UnsafeRawBufferPointer(rebasing: buffer[0..<count])
                if let tls = self.tls {
                    guard self.receiveTLS(bytes, tls) else { return }
                } else {
                    self.delegate?.connection(self, didRead: bytes)
                }
                guard self.state == .open, !self.readingPaused, !self.readEOF, count == buffer.count else { return }
                continue
            }
            if count == 0, self.lingering != nil {
                // The peer read our answer's FIN and closed: the lingering close is over.
                self.close()
                return
            }
            if count == 0 {
                self.readEOF = true
                self.updateInterest()
                self.delegate?.connectionDidReadEOF(self)
                return
            }
            switch errno {
            case EINTR: continue
            case EAGAIN, EWOULDBLOCK: return
            default:
                self.close(error: SocketError("read"))
                return
            }
        }
    }

    /// Decrypts `bytes` for the delegate and queues what the session answers (handshake
    /// messages); false when reading should stop (TLS failed, or the peer sent close_notify).
    private func receiveTLS(_ bytes: UnsafeRawBufferPointer, _ tls: TLSSession) -> Bool {
        if self.firstByte == nil { self.firstByte = bytes.first }
        let wasHandshaking = tls.state == .handshaking
        let progress: TLSSession.Progress
        do throws(TLSError) {
            progress = try tls.receive(bytes) { plaintext in
                guard self.state == .open else { return false }
                self.delegate?.connection(self, didRead: plaintext)
                // A paused owner (back-pressure, a move to another loop) gets the rest later.
                return self.state == .open && !self.readingPaused
            }
        } catch {
            // Plain text: the handshake never completed, and the peer began with a capital letter
            // (an HTTP method) where a TLS record type belongs.
            let plainText = wasHandshaking && self.firstByte.map { (0x41...0x5A).contains($0) } == true
            self.tlsFailed(error, plainText: plainText)
            return false
        }
        let replies = self.queueTLSOutput()
        if replies > 0, self.queuedByteCount >= self.highWatermark, self.state == .open {
            // The peer makes TLS answer (KeyUpdates, alerts) faster than it reads: stop reading
            // until it catches up.
            self.throttledByOutput = true
            self.updateInterest()
            return false
        }
        guard progress == .peerClosed, self.state == .open else { return true }
        // close_notify: the peer finished sending.
        self.readEOF = true
        self.updateInterest()
        self.delegate?.connectionDidReadEOF(self)
        return false
    }

    /// Empties the sent queue. A small buffer is kept for the next write; a larger one is given
    /// back, so 10,000 idle keep-alive connections do not each hold their largest answer's buffer.
    private func releaseSentOutput() {
        if self.output.capacity > 4 * 1_024 { self.output = [] } else { self.output.removeAll(keepingCapacity: true) }
        self.outputHead = 0
    }

    /// Writes queued bytes until the socket is full; false when the socket failed (nothing else
    /// is done then: the caller closes).
    private func sendOutput() -> Bool {
        while self.outputHead < self.output.count {
            let written = self.output.withUnsafeBytes { raw in
                Glibc.send(self.fd, raw.baseAddress! + self.outputHead, raw.count - self.outputHead, Int32(MSG_NOSIGNAL))
            }
            if written < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN || errno == EWOULDBLOCK { break }
                return false
            }
            self.bytesWritten += written
            if written > 0 { self.lastWriteProgress = self.loop.now }
            self.queuedByteCount -= written
            self.outputHead += written
        }
        if self.outputHead == self.output.count {
            self.releaseSentOutput()
        } else if self.outputHead >= 64 * 1_024, self.outputHead * 2 >= self.output.count {
            self.output.removeFirst(self.outputHead)
            self.outputHead = 0
        }
        return true
    }

    private func flush() {
        self.flushScheduled = false
        guard self.sendOutput() else {
            self.close(error: SocketError("write"))
            return
        }
        self.updateInterest()
        self.watchForStall()
        if self.queuedByteCount == 0 {
            if self.closeWhenFlushed {
                self.close()
                return
            }
            if self.shutdownWhenFlushed { shutdown(self.fd, Int32(SHUT_WR)) }
            if let action = self.flushedAction {
                self.flushedAction = nil
                action()
                if self.state == .closed { return }
            }
            if self.flushReportWanted {
                self.flushReportWanted = false
                self.delegate?.connectionDidFlush(self)
                if self.state == .closed { return }
            }
        }
        if self.throttledByOutput, self.queuedByteCount < self.lowWatermark {
            self.throttledByOutput = false
            self.updateInterest()
        }
        if self.wasAboveHighWatermark, self.queuedByteCount < self.lowWatermark {
            self.wasAboveHighWatermark = false
            self.delegate?.connectionDidDrain(self)
        }
    }

    /// Arms the stall timer while bytes wait; it closes the connection when none were written
    /// for `writeStallTimeout`, and re-arms from the last progress otherwise.
    private func watchForStall() {
        guard let timeout = self.writeStallTimeout else { return }
        guard self.queuedByteCount > 0 else {
            self.stallTimer?.cancel()
            self.stallTimer = nil
            return
        }
        guard self.stallTimer == nil else { return }
        let since = self.lastWriteProgress ?? self.loop.now
        self.stallTimer = self.loop.schedule(at: since + timeout) { [weak self] in
            guard let self, self.state == .open else { return }
            self.stallTimer = nil
            guard self.queuedByteCount > 0 else { return }
            if let last = self.lastWriteProgress, self.loop.now - last < timeout {
                self.watchForStall()
                return
            }
            self.close(error: SocketError("write timed out", code: ETIMEDOUT))
        }
    }

    private func updateInterest() {
        guard self.state != .closed else { return }
        var interest: LoopInterest = []
        // Bytes waiting for the end of the turn need no EPOLLOUT: the turn's end flushes them.
        if self.state == .connecting || (self.queuedByteCount > 0 && !self.flushScheduled) { interest.insert(.writable) }
        if self.state == .open, !self.readingPaused, !self.throttledByOutput, !self.readEOF { interest.insert(.readable) }
        self.watchingWritable = interest.contains(.writable)
        self.loop.setInterest(self.fd, interest)
    }
}

/// The bounds of `Connection.closeLingering`: the whole wait, the wait for the next byte, and
/// the input dropped (nginx's `lingering_time` and `lingering_timeout`, plus a size bound).
public struct LingeringClose: Sendable {
    /// The longest the connection lingers.
    public var maxTime: Duration = .seconds(10)
    /// The longest it waits for the peer's next byte (or its close).
    public var quietTime: Duration = .seconds(2)
    /// The most input it drops before closing anyway.
    public var maxBytes = 16 * 1_024 * 1_024
    var started = Instant.zero
    var lastRead = Instant.zero
    var discarded = 0

    /// The defaults: 10 s in all, 2 s without a byte, 16 MiB.
    public init() {}

    /// After a 408 the client is the slow party: it gets 1 s in all to read the answer (a
    /// trickling client cannot stretch the wait, and the connection frees its cap slot soon).
    public static let slowClient: LingeringClose = {
        var bounds = LingeringClose()
        bounds.maxTime = .seconds(1)
        bounds.quietTime = .seconds(1)
        return bounds
    }()
}
