import Glibc
import PicoModel

/// One loop's keep-alive connections to other nodes' proxy ports, for forwarded requests: an
/// answered request gives its connection back, the next request to that node reuses the most
/// recent one, idle ones close after `idleTimeout`, at most `maxIdlePerPeer` wait per node, and
/// at most `maxPerPeer` connections (busy and idle) exist per node (`proxy.forward_max_connections`).
final class PeerPool {
    /// Idle connections kept per node: enough for a burst of a few hundred concurrent forwards
    /// to find a warm connection next time (32 made 256 concurrent clients dial and close
    /// connections on every request in bench/proxies).
    static let maxIdlePerPeer = 256

    /// Below the proxy's own `idle_timeout` default (5 min), so we close first, not the peer.
    static let idleTimeout: Duration = .seconds(60)
    static let connectTimeout: Duration = .seconds(5)

    let loop: EventLoop
    /// Connections to one node from this loop; a forward beyond it is refused (503).
    let maxPerPeer: Int
    private var idle: [Address: [PeerUpstream]] = [:]
    private var open: [Address: Int] = [:]

    init(loop: EventLoop, maxPerPeer: Int) {
        self.loop = loop
        self.maxPerPeer = maxPerPeer
    }

    /// Connections waiting for a request, over all nodes.
    var idleCount: Int { self.idle.values.reduce(0) { $0 + $1.count } }

    /// An upstream to the node at `address` for one request, reporting to `handler`: an idle
    /// connection when one is still open, else a new one. A dial that fails reports
    /// `streamFailed` (never from inside this call).
    /// Nil when `maxPerPeer` connections to that node are busy.
    func open(to address: Address, handler: TunnelStreamHandler) -> PeerUpstream? {
        while var waiting = self.idle[address], let upstream = waiting.popLast() {
            self.idle[address] = waiting.isEmpty ? nil : waiting
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
        var waiting = self.idle[upstream.address] ?? []
        guard waiting.count < Self.maxIdlePerPeer else {
            upstream.close()
            return
        }
        waiting.append(upstream)
        self.idle[upstream.address] = waiting
    }

    /// An idle connection closed or timed out.
    func forget(_ upstream: PeerUpstream) {
        guard var waiting = self.idle[upstream.address], let index = waiting.firstIndex(where: { $0 === upstream }) else { return }
        waiting.remove(at: index)
        self.idle[upstream.address] = waiting.isEmpty ? nil : waiting
    }
}

/// One HTTP/1.1 connection to another node's proxy port, carrying one forwarded request at a
/// time (then idle in its pool). The exchange writes the request and parses the answer; this
/// only moves bytes, with back-pressure: reading stops while `pauseAbove` answer bytes wait for
/// the client.
final class PeerUpstream: ExchangeUpstream, ConnectionDelegate {
    static let pauseAbove = 256 * 1_024

    let address: Address
    unowned let pool: PeerPool
    private var connection: Connection?
    private weak var handler: TunnelStreamHandler?
    private var isUpgraded = false
    private var unconsumed = 0
    private var timer: LoopTimer?
    private var closed = false

    init(address: Address, pool: PeerPool, handler: TunnelStreamHandler) {
        self.address = address
        self.pool = pool
        self.handler = handler
        guard let resolved = HostPort(host: address.host, port: address.port).numeric() else {
            self.failSoon("\(address) is not an IP address")
            return
        }
        do {
            let fd = try Sockets.connect(to: resolved)
            let connection = Connection(fd: fd, loop: pool.loop, connected: false, delegate: nil)
            connection.delegate = self
            self.connection = connection
            self.timer = pool.loop.schedule(after: PeerPool.connectTimeout) { [weak self] in
                guard let self, self.connection?.state == .connecting else { return }
                self.fail("connect to \(address) timed out")
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

    func completed(reusable: Bool) {
        self.handler = nil
        guard reusable, !self.isUpgraded, !self.closed, self.connection?.state == .open else {
            self.close()
            return
        }
        self.timer = self.pool.loop.schedule(after: PeerPool.idleTimeout) { [weak self] in
            guard let self, self.handler == nil else { return }
            self.pool.forget(self)
            self.close()
        }
        self.pool.giveBack(self)
    }

    // MARK: ConnectionDelegate

    func connectionDidConnect(_ connection: Connection) {
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

    func connectionDidClose(_ connection: Connection, error: SocketError?) {
        let handler = self.handler
        self.closed = true
        self.handler = nil
        self.timer?.cancel()
        self.pool.closed(self)
        handler?.streamFailed(reason: error.map { "\($0)" } ?? "connection to \(self.address) closed")
    }
}
