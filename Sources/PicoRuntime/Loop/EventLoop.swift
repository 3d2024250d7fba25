import CEpoll
import Glibc
import PicoModel
import Synchronization

/// Receives readiness for one descriptor registered with an `EventLoop`; called on the loop's thread.
public protocol LoopHandler: AnyObject {
    /// The descriptor is readable (or at end of input), writable, or in error.
    func handleEvent(readable: Bool, writable: Bool, failed: Bool)
}

/// Work a loop runs once at the end of the current turn, after every event and due timer of the
/// turn: output produced by many events is written with one system call instead of one each.
public protocol TurnEndHandler: AnyObject {
    /// Called once per `EventLoop.runAtEndOfTurn` registration, on the loop's thread.
    func loopTurnEnded()
}

/// Which readiness a handler wants.
public struct LoopInterest: OptionSet, Hashable, Sendable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    /// Wake when readable.
    public static let readable = LoopInterest(rawValue: 1)
    /// Wake when writable (register only while writes are pending).
    public static let writable = LoopInterest(rawValue: 2)
}

/// One epoll event loop on one thread: level-triggered readiness for registered descriptors,
/// timers (a heap; the epoll timeout is the next deadline), and an inbox other threads post work to
/// through an `eventfd`.
///
/// Everything but `execute` and `stop` must be called on the loop's thread: the loop owns every
/// handler, timer and buffer it serves, so nothing inside needs a lock.
public final class EventLoop: @unchecked Sendable {
    private let epollFD: Int32
    private let wakeFD: Int32
    private var handlers: [Int32: LoopHandler] = [:]
    private var interests: [Int32: LoopInterest] = [:]
    private let timers = TimerHeap()
    private var timerSequence: UInt64 = 0
    private let inbox = Mutex<[@Sendable () -> Void]>([])
    private let stopRequested = Atomic<Bool>(false)
    private var events = [epoll_event](repeating: epoll_event(), count: 256)
    private var turnEndHandlers: [TurnEndHandler] = []
    private var turnEndSpare: [TurnEndHandler] = []
    /// The clock reading taken when the loop last woke (cheap "now" for handlers).
    public private(set) var now: Instant = MonotonicClock.now()
    /// A read buffer shared by every handler of this loop (valid until the handler returns).
    public let readBuffer: UnsafeMutableRawBufferPointer

    /// Creates a loop; throws when the kernel refuses an epoll or eventfd descriptor.
    public init(readBufferSize: Int = 64 * 1_024) throws(SocketError) {
        let epoll = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard epoll >= 0 else { throw SocketError("epoll_create1") }
        let wake = eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC))
        guard wake >= 0 else {
            close(epoll)
            throw SocketError("eventfd")
        }
        self.epollFD = epoll
        self.wakeFD = wake
        self.readBuffer = .allocate(byteCount: readBufferSize, alignment: 16)
        var event = epoll_event()
        event.events = EPOLLIN.rawValue
        event.data.fd = wake
        epoll_ctl(epoll, EPOLL_CTL_ADD, wake, &event)
    }

    deinit {
        self.timers.removeAll()
        close(self.epollFD)
        close(self.wakeFD)
        self.readBuffer.deallocate()
    }

    /// Starts watching `fd` for `interest`, reporting to `handler` (held strongly until `unregister`).
    public func register(_ fd: Int32, handler: LoopHandler, interest: LoopInterest) {
        self.handlers[fd] = handler
        self.interests[fd] = interest
        var event = epoll_event()
        event.events = Self.mask(interest)
        event.data.fd = fd
        epoll_ctl(self.epollFD, EPOLL_CTL_ADD, fd, &event)
    }

    /// Changes what `fd` is watched for; a no-op when unchanged.
    public func setInterest(_ fd: Int32, _ interest: LoopInterest) {
        guard let current = self.interests[fd], current != interest else { return }
        self.interests[fd] = interest
        var event = epoll_event()
        event.events = Self.mask(interest)
        event.data.fd = fd
        epoll_ctl(self.epollFD, EPOLL_CTL_MOD, fd, &event)
    }

    /// The interest `fd` is registered with, nil when it is not registered.
    public func interest(of fd: Int32) -> LoopInterest? { self.interests[fd] }

    /// Stops watching `fd` (before closing it).
    public func unregister(_ fd: Int32) {
        guard self.handlers.removeValue(forKey: fd) != nil else { return }
        self.interests[fd] = nil
        epoll_ctl(self.epollFD, EPOLL_CTL_DEL, fd, nil)
    }

    /// Timers armed and neither fired nor cancelled.
    public var armedTimerCount: Int { self.timers.count }

    /// Descriptors registered (listeners and connections).
    public var registeredCount: Int { self.handlers.count }

    /// Runs `action` on this loop at `deadline` (or on the next turn if it has passed).
    @discardableResult
    public func schedule(at deadline: Instant, _ action: @escaping () -> Void) -> LoopTimer {
        self.timerSequence += 1
        let timer = LoopTimer(deadline: deadline, sequence: self.timerSequence, action: action)
        self.timers.insert(timer)
        return timer
    }

    /// Runs `action` after `delay` from the loop's current time.
    @discardableResult
    public func schedule(after delay: Duration, _ action: @escaping () -> Void) -> LoopTimer {
        self.schedule(at: self.now + delay, action)
    }

    /// Calls `handler.loopTurnEnded()` at the end of this turn (held strongly until then). A
    /// handler registered while turn-end handlers run is called in the same turn, after them.
    /// Callers keep their own flag so they register at most once per turn.
    public func runAtEndOfTurn(_ handler: TurnEndHandler) {
        self.turnEndHandlers.append(handler)
    }

    /// Posts `work` to run on the loop's thread; safe from any thread.
    /// Work runs in the order it was posted, at the start of the loop's next turn, before the
    /// socket events of that turn (so a change posted before a peer's bytes arrived is applied
    /// before they are read).
    public func execute(_ work: @escaping @Sendable () -> Void) {
        let wasEmpty = self.inbox.withLock { pending in
            pending.append(work)
            return pending.count == 1
        }
        // The loop empties the inbox under the same lock, so only the first poster must wake it.
        guard wasEmpty else { return }
        var one: UInt64 = 1
        _ = write(self.wakeFD, &one, 8)
    }

    /// Makes `run` return after its current turn; safe from any thread.
    public func stop() {
        self.stopRequested.store(true, ordering: .releasing)
        self.execute {}
    }

    /// Serves events, timers and posted work on the calling thread until `stop`.
    public func run() {
        while !self.stopRequested.load(ordering: .acquiring) {
            self.turn()
        }
    }

    /// One wait-and-dispatch turn (exposed for tests that drive a loop step by step).
    public func turn(maximumWait: Duration? = nil) {
        self.now = MonotonicClock.now()
        var timeout: Int32 = -1
        if let earliest = self.timers.earliest {
            let wait = max(.zero, earliest.deadline - self.now)
            timeout = Int32(clamping: (wait.nanosecondsClamped + 999_999) / 1_000_000)
        }
        if !self.turnEndHandlers.isEmpty { timeout = 0 }
        if let maximumWait {
            let cap = Int32(clamping: maximumWait.nanosecondsClamped / 1_000_000)
            timeout = timeout < 0 ? cap : min(timeout, cap)
        }
        let count = self.events.withUnsafeMutableBufferPointer { buffer in
            epoll_wait(self.epollFD, buffer.baseAddress, Int32(buffer.count), timeout)
        }
        self.now = MonotonicClock.now()
        // The wake-up is consumed before the inbox is emptied: a poster that finds the inbox
        // empty after that writes the eventfd again, so no posted work waits for a later event.
        if count > 0, (0..<Int(count)).contains(where: { self.events[$0].data.fd == self.wakeFD }) {
            var value: UInt64 = 0
            _ = read(self.wakeFD, &value, 8)
        }
        self.runInbox()
        if count > 0 {
            for index in 0..<Int(count) {
                let event = self.events[index]
                let fd = event.data.fd
                if fd == self.wakeFD { continue }
                guard let handler = self.handlers[fd] else { continue }
                let bits = event.events
                handler.handleEvent(
                    readable: bits & (EPOLLIN.rawValue | EPOLLHUP.rawValue | EPOLLRDHUP.rawValue) != 0,
                    writable: bits & EPOLLOUT.rawValue != 0,
                    failed: bits & EPOLLERR.rawValue != 0)
            }
        }
        self.runDueTimers()
        self.runTurnEndHandlers()
    }

    private func runTurnEndHandlers() {
        while !self.turnEndHandlers.isEmpty {
            swap(&self.turnEndHandlers, &self.turnEndSpare)
            for handler in self.turnEndSpare { handler.loopTurnEnded() }
            self.turnEndSpare.removeAll(keepingCapacity: true)
        }
    }

    private func runDueTimers() {
        while let earliest = self.timers.earliest, earliest.deadline <= self.now {
            _ = self.timers.popEarliest()
            guard let action = earliest.action else { continue }
            earliest.action = nil
            action()
        }
    }

    private func runInbox() {
        let work = self.inbox.withLock { pending -> [@Sendable () -> Void] in
            let taken = pending
            pending.removeAll()
            return taken
        }
        for item in work { item() }
    }

    private static func mask(_ interest: LoopInterest) -> UInt32 {
        var bits: UInt32 = 0
        if interest.contains(.readable) { bits |= EPOLLIN.rawValue | EPOLLRDHUP.rawValue }
        if interest.contains(.writable) { bits |= EPOLLOUT.rawValue }
        return bits
    }
}
