import Glibc

/// A listening socket on an `EventLoop`; hands each accepted, configured descriptor to `onAccept`.
public final class Listener: LoopHandler {
    /// The socket.
    public let fd: Int32
    /// Where it listens (the actual port when bound to port 0).
    public let address: HostPort
    private let loop: EventLoop
    /// Receives each accepted descriptor (which it then owns); until set, connections are closed.
    public var onAccept: (Int32) -> Void
    private var paused = false

    /// Binds and listens on `address`, then accepts on `loop`.
    public init(address: HostPort, loop: EventLoop, onAccept: @escaping (Int32) -> Void = { _ = Glibc.close($0) }) throws(SocketError) {
        self.fd = try Sockets.listen(on: address)
        self.address = Sockets.localAddress(self.fd) ?? address
        self.loop = loop
        self.onAccept = onAccept
        loop.register(self.fd, handler: self, interest: .readable)
    }

    /// Stops accepting (the kernel keeps queueing up to the backlog) until `resume`.
    public func pause() {
        self.paused = true
        self.loop.setInterest(self.fd, [])
    }

    /// Accepts again.
    public func resume() {
        self.paused = false
        self.loop.setInterest(self.fd, .readable)
    }

    /// Closes the socket; no more connections are accepted.
    public func close() {
        self.loop.unregister(self.fd)
        Glibc.close(self.fd)
    }

    public func handleEvent(readable: Bool, writable: Bool, failed: Bool) {
        for _ in 0..<64 where !self.paused {
            do {
                guard let fd = try Sockets.accept(from: self.fd) else { return }
                self.onAccept(fd)
            } catch {
                // Out of descriptors or similar: stop for now; the next turn retries.
                return
            }
        }
    }
}
