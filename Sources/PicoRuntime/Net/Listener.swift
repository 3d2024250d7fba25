import Glibc
import PicoModel

/// A listening socket on an `EventLoop`; hands each accepted, configured descriptor to `onAccept`.
/// When accepting fails (out of descriptors: `EMFILE`, `ENFILE`; or out of memory) it stops
/// accepting for `backOff` instead of retrying at once, which with a level-triggered loop would
/// spin at full speed while the waiting connection stays in the backlog.
public final class Listener: LoopHandler {
    /// The socket.
    public let fd: Int32
    /// Where it listens (the actual port when bound to port 0).
    public let address: Address
    private let loop: EventLoop
    /// Receives each accepted descriptor (which it then owns); until set, connections are closed.
    public var onAccept: (Int32) -> Void
    /// Told each time accepting failed and the listener backs off (e.g. to log and count it).
    public var onBackOff: ((SocketError) -> Void)?
    /// How long accepting stops after a failed accept.
    public var backOff: Duration = .milliseconds(200)
    private var paused = false
    private var backOffTimer: LoopTimer?
    private var closed = false

    /// Binds and listens on `address`, then accepts on `loop`.
    public init(address: Address, loop: EventLoop, onAccept: @escaping (Int32) -> Void = { _ = Glibc.close($0) }) throws(SocketError) {
        self.fd = try Sockets.listen(on: address)
        self.address = Sockets.localAddress(self.fd) ?? address
        self.loop = loop
        self.onAccept = onAccept
        loop.register(self.fd, handler: self, interest: .readable)
    }

    /// Stops accepting (the kernel keeps queueing up to the backlog) until `resume`.
    public func pause() {
        self.paused = true
        self.updateInterest()
    }

    /// Accepts again (once a back-off in progress ends).
    public func resume() {
        self.paused = false
        self.updateInterest()
    }

    /// True while a failed accept holds accepting off.
    public var isBackingOff: Bool { self.backOffTimer != nil }

    /// Closes the socket; no more connections are accepted.
    public func close() {
        guard !self.closed else { return }
        self.closed = true
        self.backOffTimer?.cancel()
        self.backOffTimer = nil
        self.loop.unregister(self.fd)
        Glibc.close(self.fd)
    }

    private func updateInterest() {
        guard !self.closed else { return }
        self.loop.setInterest(self.fd, self.paused || self.backOffTimer != nil ? [] : .readable)
    }

    public func handleEvent(readable: Bool, writable: Bool, failed: Bool) {
        for _ in 0..<64 where !self.paused && self.backOffTimer == nil && !self.closed {
            do {
                guard let fd = try Sockets.accept(from: self.fd) else { return }
                self.onAccept(fd)
            } catch {
                self.startBackOff(error)
                return
            }
        }
    }

    private func startBackOff(_ error: SocketError) {
        self.backOffTimer = self.loop.schedule(after: self.backOff) { [weak self] in
            guard let self, !self.closed else { return }
            self.backOffTimer = nil
            self.updateInterest()
        }
        self.updateInterest()
        self.onBackOff?(error)
    }
}
