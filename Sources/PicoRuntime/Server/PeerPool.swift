import Glibc
import PicoModel

/// One loop's keep-alive connections to other nodes' proxy ports, for forwarded requests: an
/// answered request gives its connection back, the next request to that node reuses the most
/// recent one, idle ones close after `idleTimeout`, at most `maxIdlePerPeer` wait per node, and
/// at most `maxPerPeer` connections (busy and idle) exist per node (`proxy.forward_max_connections`).
/// Over TLS (`proxy.tls.client.*`) an idle connection keeps its session, so a reused one costs
/// no handshake.
final class PeerPool {
    /// Idle connections kept per node: enough for a burst of a few hundred concurrent forwards
    /// to find a warm connection next time (32 made 256 concurrent clients dial and close
    /// connections on every request in bench/proxies).
    static let maxIdlePerPeer = 256

    /// How long an idle connection waits for its next request: at most a minute, and at most
    /// half the peers' own `proxy.http.idle_timeout` (every node runs one configuration), so
    /// this side closes first. A peer that closes an idle connection just as a request goes out
    /// on it would fail that request if it is not idempotent.
    let idleTimeout: Duration

    static func idleTimeout(peerIdleTimeout: Duration) -> Duration {
        min(.seconds(60), peerIdleTimeout / 2)
    }

    let loop: EventLoop
    /// The address forwards leave from: this node's advertised proxy IP, which is how the peer
    /// tells a forward from a client's request (nil: the kernel picks).
    let source: SocketAddressStorage?
    /// Connections to one node from this loop; a forward beyond it is refused (503).
    let maxPerPeer: Int
    /// How long a dial may take, and how long sent bytes may go unacknowledged
    /// (`proxy.forward_dial_timeout`): a node this one cannot reach fails the forward quickly,
    /// in time for another holder.
    let dialTimeout: Duration
    /// How peers' proxy ports are dialled over TLS (nil: plain text).
    let tls: ForwardTLS?
    /// Told of each failed TLS session with a peer (the shard logs it, rate-limited).
    var onTLSFailure: ((TLSError, Address) -> Void)?
    /// Idle connections per node, the most recently used last (mutated in place: a copy would
    /// cost a retain per waiting connection on every request).
    private var idle: [Address: [PeerUpstream]] = [:]
    private var open: [Address: Int] = [:]
    /// One timer closes connections idle for `idleTimeout`, instead of one timer per request.
    private var sweepTimer: LoopTimer?

    init(loop: EventLoop, maxPerPeer: Int, dialTimeout: Duration, source: SocketAddressStorage?, tls: ForwardTLS? = nil,
         idleTimeout: Duration = .seconds(60)) {
        self.loop = loop
        self.idleTimeout = idleTimeout
        self.tls = tls?.proxy == true ? tls : nil
        self.maxPerPeer = maxPerPeer
        self.dialTimeout = dialTimeout
        self.source = source
    }

    /// Connections waiting for a request, over all nodes.
    var idleCount: Int { self.idle.values.reduce(0) { $0 + $1.count } }

    /// An upstream to the node at `address` for one request, reporting to `handler`: an idle
    /// connection when one is still open, else a new one. A dial that fails reports
    /// `streamFailed` (never from inside this call).
    /// Nil when `maxPerPeer` connections to that node are busy.
    func open(to address: Address, handler: TunnelStreamHandler) -> PeerUpstream? {
        while let upstream = self.idle[address]?.popLast() {
            if self.idle[address]?.isEmpty == true { self.idle[address] = nil }
            if upstream.adopt(handler) { return upstream }
        }
        guard self.open[address, default: 0] < self.maxPerPeer else { return nil }
        self.open[address, default: 0] += 1
        return PeerUpstream(address: address, pool: self, handler: handler)
    }

    /// A connection of this pool is gone for good.
    func closed(_ upstream: PeerUpstream) {
        let count = self.open[upstream.address, default: 1] - 1
        self.open[upstream.address] = count > 0 ? count : nil
        self.forget(upstream)
    }

    /// A connection that finished a request cleanly.
    func giveBack(_ upstream: PeerUpstream) {
        guard self.idle[upstream.address]?.count ?? 0 < Self.maxIdlePerPeer else {
            upstream.close()
            return
        }
        upstream.idleSince = self.loop.now
        self.idle[upstream.address, default: []].append(upstream)
        if self.sweepTimer == nil { self.armSweep(at: self.loop.now + self.idleTimeout) }
    }

    /// An idle connection closed or misbehaved.
    func forget(_ upstream: PeerUpstream) {
        guard let index = self.idle[upstream.address]?.firstIndex(where: { $0 === upstream }) else { return }
        self.idle[upstream.address]?.remove(at: index)
        if self.idle[upstream.address]?.isEmpty == true { self.idle[upstream.address] = nil }
    }

    private func armSweep(at deadline: Instant) {
        // A strong capture: the pool lives as long as its loop's shard.
        self.sweepTimer = self.loop.schedule(at: deadline) { [self] in self.sweep() }
    }

    /// Closes connections idle for `idleTimeout` (the oldest wait first in each list) and waits
    /// for the next one due.
    private func sweep() {
        self.sweepTimer = nil
        let now = self.loop.now
        var next: Instant?
        for address in self.idle.keys.sorted(by: { "\($0)" < "\($1)" }) {
            while let oldest = self.idle[address]?.first, oldest.idleSince + self.idleTimeout <= now {
                self.idle[address]?.removeFirst()
                oldest.close()
            }
            if self.idle[address]?.isEmpty == true { self.idle[address] = nil }
            if let oldest = self.idle[address]?.first {
                let due = oldest.idleSince + self.idleTimeout
                next = next.map { min($0, due) } ?? due
            }
        }
        if let next { self.armSweep(at: next) }
    }
}

/// One HTTP/1.1 connection to another node's proxy port, carrying one forwarded request at a
/// time (then idle in its pool). The exchange writes the request and parses the answer; this
/// only moves bytes, with back-pressure: reading stops while `pauseAbove` answer bytes wait for
/// the client.
final class PeerUpstream: ExchangeUpstream, ConnectionDelegate {
    static let pauseAbove = 256 * 1_024

    let address: Address
    unowned(unsafe) let pool: PeerPool
    private var connection: Connection?
    /// The request's exchange; cleared when the request ends (a strong reference: a weak one
    /// would give every exchange a side table).
    private var handler: TunnelStreamHandler?
    /// When it last went idle in its pool.
    var idleSince: Instant = .zero
    private var isUpgraded = false
    /// The connection opened (a pooled one has).
    private var connected = false
    private var unconsumed = 0
    private var timer: LoopTimer?
    private var closed = false
    /// `TCP_USER_TIMEOUT` is the pool's short dial timeout (set at the dial): right while the
    /// connection carries bodyless requests, which leave nothing unsent once their head is out.
    /// A request with a body, or an upgrade, may meet back-pressure (a zero window) for longer,
    /// so it restores the kernel's default first.
    private var shortUnacknowledgedTimeout = true

    init(address: Address, pool: PeerPool, handler: TunnelStreamHandler) {
        self.address = address
        self.pool = pool
        self.handler = handler
        guard let resolved = address.numeric() else {
            self.failSoon("\(address) is not an IP address")
            return
        }
        do {
            let fd = try Sockets.connect(to: resolved, from: pool.source, unacknowledgedTimeout: pool.dialTimeout)
            let connection = Connection(fd: fd, loop: pool.loop, connected: false, delegate: nil)
            connection.delegate = self
            self.connection = connection
            if let tls = pool.tls { connection.startTLS(try tls.session(to: address)) }
            // The dial timeout covers the TCP connect and, over TLS, the handshake.
            self.timer = pool.loop.schedule(after: pool.dialTimeout) { [weak self] in
                guard let self, let connection = self.connection, !self.handshakeDone(connection) else { return }
                // Nothing left the session before its handshake: the request counts as unsent.
                self.connected = false
                self.fail(connection.state == .connecting ? "connect to \(address) timed out" : "TLS handshake with \(address) timed out")
            }
        } catch {
            self.failSoon("\(error)")
        }
    }

    /// Takes a request on an idle connection; false when it turned out closed (the peer went
    /// away while it was idle).
    func adopt(_ handler: TunnelStreamHandler) -> Bool {
        guard let connection = self.connection, connection.state == .open, !self.closed, !connection.peerHasClosed() else {
            self.close()
            return false
        }
        self.timer?.cancel()
        self.timer = nil
        self.handler = handler
        self.unconsumed = 0
        connection.resumeReading()
        return true
    }

    func close() {
        guard !self.closed else { return }
        self.closed = true
        self.handler = nil
        self.timer?.cancel()
        self.connection?.close()
        if self.connection == nil { self.pool.closed(self) }
    }

    private func failSoon(_ reason: String) {
        self.pool.loop.schedule(after: .zero) { [self] in self.fail(reason) }
    }

    private func fail(_ reason: String) {
        let handler = self.handler
        self.close()
        handler?.streamFailed(reason: reason)
    }

    // MARK: ExchangeUpstream

    func send(raw bytes: UnsafeRawBufferPointer) {
        if self.shortUnacknowledgedTimeout, let connection = self.connection {
            self.shortUnacknowledgedTimeout = false
            Sockets.setUnacknowledgedTimeout(connection.fd, nil)
        }
        self.connection?.write(raw: bytes)
    }

    /// The request's own framing ends it on a peer connection.
    func sendWhole(raw bytes: UnsafeRawBufferPointer) {
        if !self.shortUnacknowledgedTimeout, let connection = self.connection {
            self.shortUnacknowledgedTimeout = true
            Sockets.setUnacknowledgedTimeout(connection.fd, self.pool.dialTimeout)
        }
        self.connection?.write(raw: bytes)
    }

    var canSend: Bool { self.connection?.isWritable ?? true }

    func finish() {
        // The request's framing ends it; only an upgraded pipe half-closes.
        if self.isUpgraded { self.connection?.shutdownWriteWhenFlushed() }
    }

    func reset() { self.close() }

    func consumed(_ count: Int) {
        self.unconsumed = max(0, self.unconsumed - count)
        if self.unconsumed < Self.pauseAbove / 4 { self.connection?.resumeReading() }
    }

    func upgraded() { self.isUpgraded = true }

    /// Unsent until the connection opened (over TLS: until its handshake completed, since the
    /// request waits inside the session until then); after that, how much of the answer
    /// arrived is the exchange's to judge (a heartbeat is no answer byte, an answer head is).
    var progress: UpstreamProgress {
        guard self.connected, let connection = self.connection, self.handshakeDone(connection) else { return .unsent }
        return .unanswered
    }

    /// True once the connection is open and, over TLS, past its handshake.
    private func handshakeDone(_ connection: Connection) -> Bool {
        connection.state != .connecting && connection.tls?.state != .handshaking
    }

    func completed(reusable: Bool) {
        self.handler = nil
        guard reusable, !self.isUpgraded, !self.closed, self.connection?.state == .open else {
            self.close()
            return
        }
        self.pool.giveBack(self)
    }

    // MARK: ConnectionDelegate

    func connectionDidConnect(_ connection: Connection) {
        self.connected = true
        // Over TLS the dial timer runs on until the handshake completes.
        guard connection.tls == nil else { return }
        self.timer?.cancel()
        self.timer = nil
    }

    func connection(_ connection: Connection, didRead bytes: UnsafeRawBufferPointer) {
        guard let handler = self.handler else {
            // Bytes on an idle connection: the peer broke the protocol; drop the connection.
            self.pool.forget(self)
            self.close()
            return
        }
        self.unconsumed += bytes.count
        handler.streamReceived(ArraySlice(bytes))
        if self.unconsumed > Self.pauseAbove { connection.pauseReading() }
    }

    func connectionDidReadEOF(_ connection: Connection) {
        guard let handler = self.handler else {
            self.pool.forget(self)
            self.close()
            return
        }
        handler.streamInputFinished()
    }

    func connectionDidDrain(_ connection: Connection) {
        self.handler?.streamWritable()
    }

    /// The peer's certificate was refused (or the peer refused ours): the forward fails with
    /// the reason, and another holder may be tried.
    func connection(_ connection: Connection, tlsFailed error: TLSError, peerSentPlainText: Bool) {
        self.pool.onTLSFailure?(error, self.address)
        // A refused handshake never let the request out of the session, and a peer that refused
        // our certificate never read it: it was not sent, so the exchange may try another
        // holder whatever its method.
        if error.nothingDelivered { self.connected = false }
        self.fail("TLS to \(self.address): \(error)")
    }

    func connectionDidClose(_ connection: Connection, error: SocketError?) {
        let handler = self.handler
        self.closed = true
        self.handler = nil
        self.timer?.cancel()
        self.pool.closed(self)
        handler?.streamFailed(reason: error.map { "\($0)" } ?? "connection to \(self.address) closed")
    }
}
