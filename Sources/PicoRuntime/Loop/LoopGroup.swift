import Glibc

/// Event loops, one per thread: loop 0 is run by the caller (it owns the `ClusterNode` in a
/// server); `start()` runs the others on threads of their own.
public final class LoopGroup: Sendable {
    /// The loops; `loops[0]` is the caller's.
    public let loops: [EventLoop]

    /// Creates `count` loops (at least one).
    public init(count: Int) throws(SocketError) {
        var loops: [EventLoop] = []
        for _ in 0..<max(1, count) { loops.append(try EventLoop()) }
        self.loops = loops
    }

    /// Online processors: the default loop count.
    public static var processorCount: Int { max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))) }

    /// Runs loops 1… on threads of their own, until `stop`; throws when the system refuses a thread.
    public func start() throws(SocketError) {
        for loop in self.loops.dropFirst() {
            try Threads.detach { loop.run() }
        }
    }

    /// Stops loops 1… (loop 0 is the caller's to stop).
    public func stop() {
        for loop in self.loops.dropFirst() { loop.stop() }
    }
}
