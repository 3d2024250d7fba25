/// UIDs in the order something happened to them (a tombstone recorded, a member departed), so
/// the oldest is found in O(1) when a table is full: a flood of `dead` messages about made-up
/// UIDs costs constant work each, not a scan of the table (10,000 tombstones per message stalled
/// the node).
///
/// Entries that no longer describe the table (the UID was reaped, or its record replaced) stay
/// until they reach the front, where the caller skips them; the storage is compacted when stale
/// entries outnumber live ones.
struct AgeQueue: Hashable, Sendable {
    struct Entry: Hashable, Sendable {
        var uid: NodeUID
        /// When it happened (or, for tombstones, when it expires: the same order).
        var at: Instant
    }

    private var entries: [Entry] = []
    private var head = 0

    /// Entries held, stale ones included.
    var storedCount: Int { self.entries.count - self.head }

    /// Records that something happened to `uid` (the newest entry).
    mutating func append(_ uid: NodeUID, at: Instant) {
        self.entries.append(Entry(uid: uid, at: at))
    }

    /// The oldest entry (possibly stale: the caller checks), without removing it.
    var first: Entry? {
        self.head < self.entries.count ? self.entries[self.head] : nil
    }

    /// Removes and returns the oldest entry (possibly stale: the caller checks).
    mutating func popFirst() -> Entry? {
        guard self.head < self.entries.count else { return nil }
        let entry = self.entries[self.head]
        self.head += 1
        self.compactIfMostlyStale()
        return entry
    }

    /// Drops stale entries at the front, and compacts the storage when stale entries outnumber
    /// the `liveCount` entries the table holds (so it stays within twice the table, plus a little).
    mutating func trim(liveCount: Int, where isCurrent: (Entry) -> Bool) {
        while self.head < self.entries.count, !isCurrent(self.entries[self.head]) { self.head += 1 }
        if self.storedCount > 2 * liveCount + 64 {
            self.entries = self.entries[self.head...].filter(isCurrent)
            self.head = 0
        } else {
            self.compactIfMostlyStale()
        }
    }

    /// Gives back the space of popped entries once they are most of the storage (amortized O(1)).
    private mutating func compactIfMostlyStale() {
        guard self.head > 64, self.head * 2 > self.entries.count else { return }
        self.entries.removeFirst(self.head)
        self.head = 0
    }
}
