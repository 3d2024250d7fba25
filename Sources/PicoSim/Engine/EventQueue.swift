import PicoModel

/// The simulator's agenda: events ordered by (time, sequence), where the sequence is the order of
/// insertion, so events at the same instant run in the order they were scheduled. A binary heap:
/// O(log n) insert and removal, no dictionary anywhere (nothing hash-ordered can leak into a run).
///
/// The heap holds only (time, sequence, slot); events wait in a slab of slots, so sifting moves
/// 24 bytes per step instead of whole events (a simulated input carries byte arrays and strings).
public struct EventQueue<Event>: Sendable where Event: Sendable {
    struct Entry: Sendable {
        var time: Instant
        var sequence: UInt64
        var slot: Int

        func precedes(_ other: Entry) -> Bool {
            (self.time, self.sequence) < (other.time, other.sequence)
        }
    }

    private var heap: [Entry] = []
    private var slots: [Event?] = []
    /// Slots free for reuse, most recently freed last.
    private var freeSlots: [Int] = []
    private var nextSequence: UInt64 = 0

    /// Creates an empty queue.
    public init() {}

    /// Number of pending events.
    public var count: Int { self.heap.count }

    /// True when nothing is pending.
    public var isEmpty: Bool { self.heap.isEmpty }

    /// The time of the next event, if any.
    public var nextTime: Instant? { self.heap.first?.time }

    /// Schedules `event` at `time`; returns its sequence number.
    @discardableResult
    public mutating func schedule(_ event: Event, at time: Instant) -> UInt64 {
        let sequence = self.nextSequence
        self.nextSequence += 1
        let slot: Int
        if let free = self.freeSlots.popLast() {
            slot = free
            self.slots[slot] = event
        } else {
            slot = self.slots.count
            self.slots.append(event)
        }
        // Sift up through a hole: parents move down and the new entry is written once.
        let entry = Entry(time: time, sequence: sequence, slot: slot)
        self.heap.append(entry)
        self.heap.withUnsafeMutableBufferPointer { heap in
            var hole = heap.count - 1
            while hole > 0 {
                let parent = (hole - 1) / 2
                guard entry.precedes(heap[parent]) else { break }
                heap[hole] = heap[parent]
                hole = parent
            }
            heap[hole] = entry
        }
        return sequence
    }

    /// Removes and returns the earliest event (ties: the one scheduled first).
    public mutating func pop() -> (time: Instant, sequence: UInt64, event: Event)? {
        guard let entry = self.removeFirstEntry() else { return nil }
        return (entry.time, entry.sequence, self.takeEvent(of: entry))
    }

    /// Removes and returns the earliest event, as `pop` does, without its time and sequence (read
    /// `nextTime` first): a run loop then handles the bare event, not a tuple holding it.
    public mutating func popEvent() -> Event? {
        guard let entry = self.removeFirstEntry() else { return nil }
        return self.takeEvent(of: entry)
    }

    /// Takes the event out of `entry`'s slot and frees the slot.
    private mutating func takeEvent(of entry: Entry) -> Event {
        let event = self.slots[entry.slot].take()!
        self.freeSlots.append(entry.slot)
        return event
    }

    /// Removes the earliest entry from the heap (its event stays in its slot). The last entry
    /// sifts down from the root through a hole: smaller children move up, and it is written once.
    private mutating func removeFirstEntry() -> Entry? {
        guard let last = self.heap.popLast() else { return nil }
        guard !self.heap.isEmpty else { return last }
        return self.heap.withUnsafeMutableBufferPointer { heap in
            let first = heap[0]
            var hole = 0
            while true {
                let left = 2 * hole + 1
                guard left < heap.count else { break }
                let right = left + 1
                let child = right < heap.count && heap[right].precedes(heap[left]) ? right : left
                guard heap[child].precedes(last) else { break }
                heap[hole] = heap[child]
                hole = child
            }
            heap[hole] = last
            return first
        }
    }
}
