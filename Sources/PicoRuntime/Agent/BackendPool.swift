import PicoModel

/// Keep-alive connections to one local service, reused across requests. An idle connection is
/// closed after `idleTimeout`, or as soon as the service closes it or sends anything unasked.
final class BackendPool {
    let loop: EventLoop
    let address: Address
    let maxIdle: Int
    let idleTimeout: Duration
    /// Idle connections, the most recently used last.
    private var idle: [IdleBackend] = []
    /// One timer closes connections idle for `idleTimeout`, instead of one timer per request.
    private var sweepTimer: LoopTimer?

    /// `maxIdle` connections wait at most; beyond it an answered connection closes (64 made the
    /// agent dial its service anew for most requests at 256 concurrent clients).
    init(loop: EventLoop, address: Address, maxIdle: Int = 256, idleTimeout: Duration = .seconds(30)) {
        self.loop = loop
        self.address = address
        self.maxIdle = maxIdle
        self.idleTimeout = idleTimeout
    }

    /// Idle connections held.
    var idleCount: Int { self.idle.count }

    /// An open idle connection (most recently used first), or a new one being dialled. Throws
    /// when the address cannot be resolved or the socket not created.
    func checkout(delegate: ConnectionDelegate) throws(SocketError) -> (Connection, reused: Bool) {
        while let entry = self.idle.popLast() {
            guard entry.connection.state == .open else { continue }
            entry.connection.delegate = delegate
            entry.connection.resumeReading()
            return (entry.connection, true)
        }
        guard let target = try self.address.resolve().first else { throw SocketError("resolve \(self.address): no address", code: 0) }
        let fd = try Sockets.connect(to: target)
        return (Connection(fd: fd, loop: self.loop, connected: false, delegate: delegate), false)
    }

    /// Returns a connection whose last response ended cleanly.
    func checkin(_ connection: Connection) {
        guard connection.state == .open, self.idle.count < self.maxIdle else {
            connection.close()
            return
        }
        let entry = IdleBackend(connection: connection, pool: self, since: self.loop.now)
        connection.delegate = entry
        self.idle.append(entry)
        if self.sweepTimer == nil { self.armSweep(at: self.loop.now + self.idleTimeout) }
    }

    private func armSweep(at deadline: Instant) {
        // A strong capture: the pool lives as long as its endpoint.
        self.sweepTimer = self.loop.schedule(at: deadline) { [self] in self.sweep() }
    }

    /// Closes connections idle for `idleTimeout` (the oldest first) and waits for the next due.
    private func sweep() {
        self.sweepTimer = nil
        while let oldest = self.idle.first, oldest.since + self.idleTimeout <= self.loop.now {
            self.idle.removeFirst()
            oldest.connection.close()
        }
        if let oldest = self.idle.first { self.armSweep(at: oldest.since + self.idleTimeout) }
    }

    func forget(_ entry: IdleBackend) {
        self.idle.removeAll { $0 === entry }
    }
}

/// The delegate of an idle pooled connection: anything from the service ends it.
final class IdleBackend: ConnectionDelegate {
    let connection: Connection
    unowned(unsafe) let pool: BackendPool
    /// When it went idle.
    let since: Instant

    init(connection: Connection, pool: BackendPool, since: Instant) {
        self.connection = connection
        self.pool = pool
        self.since = since
    }

    func connection(_ connection: Connection, didRead bytes: UnsafeRawBufferPointer) { connection.close() }
    func connectionDidReadEOF(_ connection: Connection) { connection.close() }
    func connectionDidClose(_ connection: Connection, error: SocketError?) {
        self.pool.forget(self)
    }
}
