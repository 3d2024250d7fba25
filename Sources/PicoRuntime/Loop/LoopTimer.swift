import PicoModel

/// A timer armed on an `EventLoop`. Cancelling is idempotent; a cancelled timer never fires.
/// Touch it only on its loop's thread.
public final class LoopTimer {
    /// When it fires.
    public let deadline: Instant
    let sequence: UInt64
    var action: (() -> Void)?

    init(deadline: Instant, sequence: UInt64, action: @escaping () -> Void) {
        self.deadline = deadline
        self.sequence = sequence
        self.action = action
    }

    /// Stops it from firing.
    public func cancel() { self.action = nil }

    /// True until it fired or was cancelled.
    public var isPending: Bool { self.action != nil }
}

/// A binary min-heap of timers ordered by deadline, then by arming order.
struct TimerHeap {
    private var timers: [LoopTimer] = []

    var isEmpty: Bool { self.timers.isEmpty }
    var count: Int { self.timers.count }
    var earliest: LoopTimer? { self.timers.first }

    static func before(_ left: LoopTimer, _ right: LoopTimer) -> Bool {
        left.deadline != right.deadline ? left.deadline < right.deadline : left.sequence < right.sequence
    }

    mutating func insert(_ timer: LoopTimer) {
        self.timers.append(timer)
        var child = self.timers.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard Self.before(self.timers[child], self.timers[parent]) else { break }
            self.timers.swapAt(child, parent)
            child = parent
        }
    }

    mutating func popEarliest() -> LoopTimer? {
        guard !self.timers.isEmpty else { return nil }
        self.timers.swapAt(0, self.timers.count - 1)
        let earliest = self.timers.removeLast()
        var parent = 0
        while true {
            let left = 2 * parent + 1
            let right = left + 1
            var smallest = parent
            if left < self.timers.count, Self.before(self.timers[left], self.timers[smallest]) { smallest = left }
            if right < self.timers.count, Self.before(self.timers[right], self.timers[smallest]) { smallest = right }
            guard smallest != parent else { break }
            self.timers.swapAt(parent, smallest)
            parent = smallest
        }
        return earliest
    }
}
