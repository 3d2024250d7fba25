import Glibc

/// Detached threads for work that must not run on an event loop (the loops themselves, and
/// blocking name resolution).
public enum Threads {
    /// Runs `body` on a new detached thread; throws when the system refuses one.
    public static func detach(_ body: @escaping @Sendable () -> Void) throws(SocketError) {
        let box = Unmanaged.passRetained(Work(body))
        var thread = pthread_t()
        let created = pthread_create(&thread, nil, { raw in
            Unmanaged<Work>.fromOpaque(raw!).takeRetainedValue().body()
            return nil
        }, box.toOpaque())
        guard created == 0 else {
            box.release()
            throw SocketError("pthread_create", code: created)
        }
        pthread_detach(thread)
    }

    private final class Work {
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }
}
