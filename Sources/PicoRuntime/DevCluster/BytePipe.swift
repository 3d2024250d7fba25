import PicoModel

/// Two connections joined both ways, with back-pressure: reading one side pauses while the other
/// side's write queue is full; an end-of-stream is passed on as a half-close; when one side
/// closes, the other closes once its queue is written.
final class BytePipe: ConnectionDelegate {
    private var first: Connection?
    private var second: Connection?
    private var finished = 0

    /// Joins an accepted connection with a connecting one.
    init(accepted fd: Int32, connecting upstream: Int32, loop: EventLoop) {
        let first = Connection(fd: fd, loop: loop, connected: true, delegate: nil)
        let second = Connection(fd: upstream, loop: loop, connected: false, delegate: nil)
        self.first = first
        self.second = second
        first.delegate = self
        second.delegate = self
    }

    private func other(_ connection: Connection) -> Connection? {
        connection === self.first ? self.second : self.first
    }

    func connection(_ connection: Connection, didRead bytes: UnsafeRawBufferPointer) {
        guard let other = self.other(connection) else { return }
        other.write(Array(bytes))
        if !other.isWritable { connection.pauseReading() }
    }

    func connectionDidDrain(_ connection: Connection) {
        self.other(connection)?.resumeReading()
    }

    func connectionDidReadEOF(_ connection: Connection) {
        self.other(connection)?.shutdownWriteWhenFlushed()
        self.finished += 1
        if self.finished == 2 {
            self.first?.closeWhenWritten()
            self.second?.closeWhenWritten()
        }
    }

    func connectionDidClose(_ connection: Connection, error: SocketError?) {
        let other = self.other(connection)
        if connection === self.first { self.first = nil } else { self.second = nil }
        other?.closeWhenWritten()
    }
}

/// A listener that sends each connection to a target `pick` chooses (nil: refuse it).
final class FrontBalancer {
    let listener: Listener

    init(address: Address, loop: EventLoop, pick: @escaping () -> Address?) throws(SocketError) {
        self.listener = try Listener(address: address, loop: loop)
        self.listener.onAccept = { fd in
            guard let target = pick(), let resolved = target.numeric(), let upstream = try? Sockets.connect(to: resolved) else {
                _ = Glibc.close(fd)
                return
            }
            _ = BytePipe(accepted: fd, connecting: upstream, loop: loop)
        }
    }

    func close() { self.listener.close() }
}

import Glibc
