/// A loop's keep-alive client connections that wait for their next request, in the order they
/// became idle: an intrusive doubly linked list through the connections themselves, so entering
/// and leaving it (twice per keep-alive request) allocates nothing and costs O(1).
struct IdleConnections {
    private var head: ProxyConnection?
    private unowned(unsafe) var tail: ProxyConnection?

    /// The connection idle the longest.
    var oldest: ProxyConnection? { self.head }

    /// Adds `connection` as the newest idle one.
    mutating func append(_ connection: ProxyConnection) {
        connection.idleNext = nil
        connection.idlePrevious = self.tail
        if let tail = self.tail { tail.idleNext = connection } else { self.head = connection }
        self.tail = connection
    }

    /// Takes `connection` (which is in the list) out.
    mutating func remove(_ connection: ProxyConnection) {
        let next = connection.idleNext
        let previous = connection.idlePrevious
        if let previous { previous.idleNext = next } else { self.head = next }
        if let next { next.idlePrevious = previous } else { self.tail = previous }
        connection.idleNext = nil
        connection.idlePrevious = nil
    }
}
