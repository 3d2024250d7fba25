import PicoModel

/// Keep-alive connections to one local service, reused across requests. An idle connection is
/// closed after `idleTimeout`, or as soon as the service closes it or sends anything unasked.
final class BackendPool {
    let loop: EventLoop
    let address: HostPort
    let maxIdle: Int
    let idleTimeout: Duration
    private var idle: [IdleBackend] = []

    /// `maxIdle` connections wait at most; beyond it an answered connection closes (64 made the
    /// agent dial its service anew for most requests at 256 concurrent clients).
    init(loop: EventLoop, address: HostPort, maxIdle: Int = 256, idleTimeout: Duration = .seconds(30)) {
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
            entry.timer?.cancel()
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
        let entry = IdleBackend(connection: connection, pool: self)
        connection.delegate = entry
        // A strong capture: checkout and close cancel the timer.
        entry.timer = self.loop.schedule(after: self.idleTimeout) { entry.connection.close() }
        self.idle.append(entry)
    }

    func forget(_ entry: IdleBackend) {
        self.idle.removeAll { $0 === entry }
    }
}

/// The delegate of an idle pooled connection: anything from the service ends it.
final class IdleBackend: ConnectionDelegate {
    let connection: Connection
    unowned(unsafe) let pool: BackendPool
    var timer: LoopTimer?

    init(connection: Connection, pool: BackendPool) {
        self.connection = connection
        self.pool = pool
    }

    func connection(_ connection: Connection, didRead bytes: UnsafeRawBufferPointer) { connection.close() }
    func connectionDidReadEOF(_ connection: Connection) { connection.close() }
    func connectionDidClose(_ connection: Connection, error: SocketError?) {
        self.timer?.cancel()
        self.pool.forget(self)
    }
}
