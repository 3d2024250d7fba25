/// What a proxy connection is owed by its client, and what Pico does when the client is too slow
/// to send it: the next request on a kept-alive connection (`idle_timeout`: the connection closes
/// without a word), the rest of a started head (`read_header_timeout`: 408), or the next bytes
/// of a request body (`read_timeout`: 408).
///
/// It performs no I/O and keeps no timer: its shell arms one timer at `deadline` (a timer that
/// fires early is harmless) and asks `expired(now:bodyHeldBack:)` what to do.
///
/// Rules callers may rely on:
/// - A new connection owes its whole first head within the header timeout of its accept, not
///   the idle one; one that sends nothing closes silently.
/// - A head that has started must be whole within the header timeout of its first byte; bytes
///   of it that trickle in do not extend that.
/// - A body may pause for at most the read timeout between two reads; time the client spends
///   held back by Pico (back-pressure from a full upstream) does not count.
/// - A client that sent `Expect: 100-continue` owes its body only once it was told to go on (a
///   `100`, or a final answer) or began sending anyway: the upstream's silence until then is
///   not the client's.
/// - While nothing is owed (the request is whole, the connection was upgraded, moved or
///   closed), the client may be silent for as long as it likes: the exchange's own deadlines
///   (the upstream's answer) are not this machine's.
/// - A 408 closes the connection lingering briefly: a client this slow gets little time to
///   read it.
public struct ClientReadWatch: Hashable, Sendable {
    /// The three timeouts (`proxy.http.*`).
    public struct Timeouts: Hashable, Sendable {
        /// How long a kept-alive connection may wait for its next request (`idle_timeout`).
        public var idle: Duration
        /// How long a started head may take (`read_header_timeout`).
        public var head: Duration
        /// How long a request body may stop arriving (`read_timeout`).
        public var body: Duration

        /// Piko's defaults: 5 minutes idle, 10 s for a head and between body bytes.
        public init(idle: Duration = .seconds(300), head: Duration = .seconds(10), body: Duration = .seconds(10)) {
            self.idle = idle
            self.head = head
            self.body = body
        }
    }

    /// What the client owes.
    public enum State: Hashable, Sendable {
        /// A connection just accepted: its first head, by `until` (then, with nothing of it
        /// read, the connection closes silently; with part of it read, 408).
        case firstHead(until: Instant)
        /// Its next request, by `until` (then the connection closes silently).
        case nextRequest(until: Instant)
        /// The rest of the head it started, by `until` (then 408).
        case restOfHead(until: Instant)
        /// More of the request body, within the body timeout of `lastRead` (then 408).
        case body(lastRead: Instant)
        /// Nothing yet: the client waits for a `100 Continue` before it sends its body.
        case continueAwaited
        /// Nothing.
        case nothing
    }

    /// What the shell does when the timer fires.
    public enum Expiry: Hashable, Sendable {
        /// Not yet: wait until this instant (re-arm the timer).
        case notYet(Instant)
        /// Close the connection without an answer (nothing of a request was read).
        case closeSilently
        /// Answer `status` with `message` (or, once an answer started, just close), and close
        /// lingering briefly.
        case answer(status: Int, message: String)
        /// Nothing is owed: let the timer go.
        case none
    }

    public private(set) var state: State
    public let timeouts: Timeouts

    /// A connection just accepted: its first byte is due within the header timeout.
    public init(acceptedAt now: Instant, timeouts: Timeouts) {
        self.timeouts = timeouts
        self.state = .firstHead(until: now + timeouts.head)
    }

    /// A connection that arrived with a request already begun (it moved from another loop).
    public init(owingNothing timeouts: Timeouts) {
        self.timeouts = timeouts
        self.state = .nothing
    }

    /// When the shell's timer should fire next, if anything is owed.
    public var deadline: Instant? {
        switch self.state {
        case .firstHead(let until), .nextRequest(let until), .restOfHead(let until): until
        case .body(let lastRead): lastRead + self.timeouts.body
        case .continueAwaited, .nothing: nil
        }
    }

    /// True between requests with nothing of the next one read (the connection is idle).
    public var awaitsNextRequest: Bool {
        if case .nextRequest = self.state { return true }
        return false
    }

    /// A request ended and the connection reads the next one: `headStarted` when bytes of it
    /// are buffered already (a pipelined request), so the header timeout applies.
    public mutating func awaitNextRequest(headStarted: Bool, now: Instant) {
        self.state = headStarted ? .restOfHead(until: now + self.timeouts.head) : .nextRequest(until: now + self.timeouts.idle)
    }

    /// Bytes of a head arrived with no request in progress: the header clock starts, unless it
    /// runs already (a new connection's runs from its accept).
    public mutating func headBytesRead(now: Instant) {
        switch self.state {
        case .restOfHead: return
        case .firstHead(let until): self.state = .restOfHead(until: until)
        case .nextRequest, .body, .continueAwaited, .nothing: self.state = .restOfHead(until: now + self.timeouts.head)
        }
    }

    /// A request's head is whole: its body is owed when one follows, at once unless the client
    /// `expectsContinue` (`HTTPRequestHead.expectsContinue`).
    public mutating func requestBegan(bodyFollows: Bool, expectsContinue: Bool = false, now: Instant) {
        self.state = !bodyFollows ? .nothing : expectsContinue ? .continueAwaited : .body(lastRead: now)
    }

    /// Bytes of the body arrived, or Pico stopped holding the client back: its clock restarts.
    public mutating func bodyProgressed(now: Instant) {
        switch self.state {
        case .body, .continueAwaited: self.state = .body(lastRead: now)
        case .firstHead, .nextRequest, .restOfHead, .nothing: return
        }
    }

    /// An answer head with `status` went to the client: a `100` or a final answer tells a
    /// client waiting to send its body to go on (or not), so its clock starts.
    public mutating func answerHeadSent(status: Int, now: Instant) {
        guard case .continueAwaited = self.state, status == 100 || status >= 200 else { return }
        self.state = .body(lastRead: now)
    }

    /// The body ended, or the request went away (moved, upgraded, answered and closing): nothing
    /// is owed until `awaitNextRequest`.
    public mutating func stopWatching() {
        self.state = .nothing
    }

    /// The timer fired at `now`. `bodyHeldBack`: Pico is not reading the body (the upstream is
    /// full), so the silence is ours and the clock restarts.
    public mutating func expired(now: Instant, bodyHeldBack: Bool) -> Expiry {
        switch self.state {
        case .nothing, .continueAwaited:
            return .none
        case .firstHead(let until), .nextRequest(let until):
            guard now >= until else { return .notYet(until) }
            self.state = .nothing
            return .closeSilently
        case .restOfHead(let until):
            guard now >= until else { return .notYet(until) }
            self.state = .nothing
            return .answer(status: 408, message: "request header timeout")
        case .body(let lastRead):
            if bodyHeldBack {
                self.state = .body(lastRead: now)
                return .notYet(now + self.timeouts.body)
            }
            let until = lastRead + self.timeouts.body
            guard now >= until else { return .notYet(until) }
            self.state = .nothing
            return .answer(status: 408, message: "request body timeout")
        }
    }
}
