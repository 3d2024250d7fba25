import PicoModel

/// A timer armed on an `EventLoop`. Cancelling is idempotent; a cancelled timer never fires and
/// leaves the loop's heap at once, so a connection that re-arms a long timeout per request does
/// not pile up dead timers. Touch it only on its loop's thread.
public final class LoopTimer {
    /// When it fires.
    public let deadline: Instant
    let sequence: UInt64
    var action: (() -> Void)?
    /// The heap holding it while armed; its position there (-1 once fired or cancelled).
    var heap: TimerHeap?
    var heapIndex = -1

    init(deadline: Instant, sequence: UInt64, action: @escaping () -> Void) {
        self.deadline = deadline
        self.sequence = sequence
        self.action = action
    }

    /// Stops it from firing.
    public func cancel() {
        self.action = nil
        self.heap?.remove(self)
    }

    /// True until it fired or was cancelled.
    public var isPending: Bool { self.action != nil }
}

/// A binary min-heap of armed timers ordered by deadline, then by arming order; each timer knows
/// its position, so cancelling removes it in O(log n). Owned by one loop.
final class TimerHeap {
    private var timers: [LoopTimer] = []

    var isEmpty: Bool { self.timers.isEmpty }
    var count: Int { self.timers.count }
    var earliest: LoopTimer? { self.timers.first }

    static func before(_ left: LoopTimer, _ right: LoopTimer) -> Bool {
        left.deadline != right.deadline ? left.deadline < right.deadline : left.sequence < right.sequence
    }

    func insert(_ timer: LoopTimer) {
        timer.heap = self
        timer.heapIndex = self.timers.count
        self.timers.append(timer)
        self.siftUp(self.timers.count - 1)
    }

    /// Removes and returns the earliest timer.
    func popEarliest() -> LoopTimer? {
        guard let earliest = self.timers.first else { return nil }
        self.remove(earliest)
        return earliest
    }

    /// Removes `timer` when it is in this heap.
    func remove(_ timer: LoopTimer) {
        let index = timer.heapIndex
        guard index >= 0, index < self.timers.count, self.timers[index] === timer else { return }
        let last = self.timers.count - 1
        if index != last { self.swap(index, last) }
        self.timers.removeLast()
        timer.heapIndex = -1
        timer.heap = nil
        if index < self.timers.count {
            self.siftDown(index)
            self.siftUp(index)
        }
    }

    /// Drops every timer (the loop is going away; breaks the timer-heap reference cycle).
    func removeAll() {
        for timer in self.timers {
            timer.heap = nil
            timer.heapIndex = -1
        }
        self.timers.removeAll()
    }

    private func swap(_ a: Int, _ b: Int) {
        self.timers.swapAt(a, b)
        self.timers[a].heapIndex = a
        self.timers[b].heapIndex = b
    }

    private func siftUp(_ start: Int) {
        var child = start
        while child > 0 {
            let parent = (child - 1) / 2
            guard Self.before(self.timers[child], self.timers[parent]) else { break }
            self.swap(child, parent)
            child = parent
        }
    }

    private func siftDown(_ start: Int) {
        var parent = start
        while true {
            let left = 2 * parent + 1
            let right = left + 1
            var smallest = parent
            if left < self.timers.count, Self.before(self.timers[left], self.timers[smallest]) { smallest = left }
            if right < self.timers.count, Self.before(self.timers[right], self.timers[smallest]) { smallest = right }
            guard smallest != parent else { return }
            self.swap(parent, smallest)
            parent = smallest
        }
    }
}
