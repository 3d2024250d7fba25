/// The agent side of one TCP connection (`pico agent tcp`, a `protocol: tcp` listener): the node
/// opened a stream on the tunnel, and the agent connects to the local service, acknowledges the
/// stream once the service accepted (so the node answers the client's handshake only then), and
/// pipes bytes both ways until both directions ended. Pure: the shell dials, pipes and closes as
/// the returned actions say.
///
/// Rules:
/// - The stream is acknowledged only once the service accepted the connection. A refused or
///   failed dial, or none within the timeout, resets the stream (the node answers 502).
/// - Each direction ends on its own: the node's FIN shuts the service's write side, the
///   service's end of stream finishes the stream. When both ended, the connection closes.
/// - A reset stream closes the service's connection; a service connection that broke resets the
///   stream. Either ends the connection at once.
public struct AgentTCPConnection: Hashable, Sendable {
    /// One direction of the piped connection.
    public enum Direction: Hashable, Sendable {
        /// Bytes flow.
        case open
        /// Its sender ended it.
        case ended
    }

    /// How the connection ended.
    public enum Outcome: Hashable, Sendable {
        /// Both directions ended.
        case closed
        /// No connection to the service (refused, failed, or `timeout` passed): the reason.
        case dialFailed(String)
        /// The node reset the stream.
        case streamFailed
        /// The service's connection broke.
        case serviceFailed(String)
    }

    /// Where it is.
    public enum State: Hashable, Sendable {
        /// Connecting to the service; the stream is not acknowledged yet.
        case connecting(deadline: Instant?)
        /// Bytes flow: `fromNode` is the stream's direction, `fromService` the service's.
        case piping(fromNode: Direction, fromService: Direction)
        /// Over.
        case finished(Outcome)
    }

    /// What the shell does next.
    public enum Action: Hashable, Sendable {
        /// Connect to the service; offer `timerFired` at `deadline` when given.
        case dial(deadline: Instant?)
        /// The service accepted: acknowledge the stream and pipe bytes both ways.
        case acknowledgeAndPipe
        /// The node ended its direction: shut the service's write side once flushed.
        case shutdownServiceWrite
        /// The service ended its direction: finish the stream (FIN) after what it sent.
        case finishStream
        /// Both directions ended: close the service's connection once written.
        case close
        /// Reset the stream and close the service's connection (or abandon the dial).
        case resetAndClose
        /// The stream is gone: close the service's connection (or abandon the dial).
        case closeService
    }

    /// How long connecting may take (zero: no limit beyond the system's).
    public let timeout: Duration
    /// Where it is.
    public private(set) var state: State = .connecting(deadline: nil)

    /// A connection whose service has `timeout` to accept.
    public init(timeout: Duration) {
        self.timeout = timeout
    }

    /// True once over.
    public var isFinished: Bool {
        if case .finished = self.state { true } else { false }
    }

    /// The stream was opened: dial the service.
    public mutating func start(now: Instant) -> Action {
        let deadline = self.timeout > .zero ? now + self.timeout : nil
        self.state = .connecting(deadline: deadline)
        return .dial(deadline: deadline)
    }

    /// The service accepted the connection.
    public mutating func connected() -> Action? {
        guard case .connecting = self.state else { return nil }
        self.state = .piping(fromNode: .open, fromService: .open)
        return .acknowledgeAndPipe
    }

    /// The dial failed (`reason`: refused, unreachable, …).
    public mutating func dialFailed(_ reason: String) -> Action? {
        guard case .connecting = self.state else { return nil }
        self.state = .finished(.dialFailed(reason))
        return .resetAndClose
    }

    /// The dial timeout fired.
    public mutating func timerFired(now: Instant) -> Action? {
        guard case .connecting(let deadline?) = self.state, now >= deadline else { return nil }
        self.state = .finished(.dialFailed("no connection within \(self.timeout)"))
        return .resetAndClose
    }

    /// The node finished its side of the stream (FIN).
    public mutating func streamEnded() -> Action? {
        guard case .piping(.open, let fromService) = self.state else { return nil }
        guard fromService == .open else {
            self.state = .finished(.closed)
            return .close
        }
        self.state = .piping(fromNode: .ended, fromService: .open)
        return .shutdownServiceWrite
    }

    /// The service ended its side (end of stream).
    public mutating func serviceEnded() -> [Action] {
        guard case .piping(let fromNode, .open) = self.state else { return [] }
        guard fromNode == .open else {
            self.state = .finished(.closed)
            return [.finishStream, .close]
        }
        self.state = .piping(fromNode: .open, fromService: .ended)
        return [.finishStream]
    }

    /// The node reset the stream (or the tunnel closed).
    public mutating func streamFailed() -> Action? {
        guard !self.isFinished else { return nil }
        self.state = .finished(.streamFailed)
        return .closeService
    }

    /// The service's connection broke (`reason`) while piping.
    public mutating func serviceFailed(_ reason: String) -> Action? {
        switch self.state {
        case .connecting:
            return self.dialFailed(reason)
        case .piping:
            self.state = .finished(.serviceFailed(reason))
            return .resetAndClose
        case .finished:
            return nil
        }
    }
}
