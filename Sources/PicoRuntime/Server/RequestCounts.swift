/// Proxied requests by (method, status) in a fixed table, so no value a client or an upstream
/// chooses can add a metric series: methods outside the standard set count as `OTHER`, and
/// statuses outside the registered codes count under their class (`2xx` … `5xx`, or `other`
/// outside 100–599). At most `methodLabels.count × statusLabels.count` series exist (660), and
/// counting one request is a switch, a table lookup and an increment.
struct RequestCounts: Sendable {
    /// Method labels by index; `OTHER` is last.
    static let methodLabels = ["CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE", "OTHER"]
    /// The registered status codes that keep their own label (IANA's registry, plus 499, the
    /// client-closed status of the access log).
    static let registeredStatuses: [Int] = [100, 101, 102, 103]
        + Array(200...208) + [226] + Array(300...308)
        + Array(400...418) + Array(421...426) + [428, 429, 431, 451, 499]
        + Array(500...508) + [510, 511]
    /// Status labels by slot: the registered codes, then the classes, then `other`.
    static let statusLabels: [String] = registeredStatuses.map { String($0) } + ["1xx", "2xx", "3xx", "4xx", "5xx", "other"]
    /// The slot of every status 0..<1000 (statuses have three digits; anything else is `other`).
    private static let statusSlots: [UInt16] = {
        var slots = [UInt16](repeating: UInt16(statusLabels.count - 1), count: 1_000)
        for status in 100...599 { slots[status] = UInt16(registeredStatuses.count + status / 100 - 1) }
        for (slot, status) in registeredStatuses.enumerated() { slots[status] = UInt16(slot) }
        return slots
    }()

    private var counts = [UInt64](repeating: 0, count: RequestCounts.methodLabels.count * RequestCounts.statusLabels.count)

    /// The method label's index: a switch on the length, then at most two comparisons.
    static func methodIndex(_ method: String) -> Int {
        switch method.utf8.count {
        case 3: return method == "GET" ? 2 : method == "PUT" ? 7 : 9
        case 4: return method == "POST" ? 6 : method == "HEAD" ? 3 : 9
        case 5: return method == "PATCH" ? 5 : method == "TRACE" ? 8 : 9
        case 6: return method == "DELETE" ? 1 : 9
        case 7: return method == "OPTIONS" ? 4 : method == "CONNECT" ? 0 : 9
        default: return 9
        }
    }

    /// The status label's slot.
    static func statusSlot(_ status: Int) -> Int {
        guard status >= 0, status < 1_000 else { return statusLabels.count - 1 }
        return Int(statusSlots[status])
    }

    /// Counts one request.
    mutating func record(method: String, status: Int) {
        self.counts[Self.methodIndex(method) * Self.statusLabels.count + Self.statusSlot(status)] &+= 1
    }

    /// Adds another table.
    mutating func add(_ other: RequestCounts) {
        for index in self.counts.indices { self.counts[index] &+= other.counts[index] }
    }

    /// The requests counted under `method` and `status` (labels as exposed).
    func count(method: String, status: String) -> UInt64 {
        guard let row = Self.methodLabels.firstIndex(of: method), let column = Self.statusLabels.firstIndex(of: status) else { return 0 }
        return self.counts[row * Self.statusLabels.count + column]
    }

    /// Every non-zero (method, status, count), methods in label order, then statuses in slot order.
    var nonZero: [(method: String, status: String, count: UInt64)] {
        var rows: [(method: String, status: String, count: UInt64)] = []
        for (row, method) in Self.methodLabels.enumerated() {
            for (column, status) in Self.statusLabels.enumerated() {
                let count = self.counts[row * Self.statusLabels.count + column]
                if count > 0 { rows.append((method, status, count)) }
            }
        }
        return rows
    }
}

/// Counters by a name that comes from elsewhere (another node's ID), with at most `limit` names:
/// once full, a new name first folds every count into `overflowLabel` (sums are kept; the named
/// series restart from zero, which Prometheus reads as a counter reset), so nodes that come and
/// go over a long life (every boot has a new ID) cannot grow the table or the exposition.
struct BoundedCounts: Sendable {
    /// The label of counts folded away.
    static let overflowLabel = "_other"
    /// Names kept at once.
    static let limit = 64

    private(set) var named: [String: UInt64] = [:]
    private(set) var overflow: UInt64 = 0

    /// Adds `amount` under `name`.
    mutating func add(_ amount: UInt64, to name: String) {
        if self.named.count >= Self.limit, self.named[name] == nil {
            for count in self.named.values { self.overflow &+= count }
            self.named.removeAll(keepingCapacity: true)
        }
        self.named[name, default: 0] &+= amount
    }

    /// Adds another table's counts.
    mutating func add(_ other: BoundedCounts) {
        self.overflow &+= other.overflow
        for (name, count) in other.named.sorted(by: { $0.key < $1.key }) { self.add(count, to: name) }
    }

    /// The series to expose: named ones sorted, then the overflow when non-zero.
    var series: [(String, UInt64)] {
        self.named.sorted { $0.key < $1.key } + (self.overflow > 0 ? [(Self.overflowLabel, self.overflow)] : [])
    }
}
