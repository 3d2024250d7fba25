import Glibc
import PicoModel

/// The socket calls the runtime makes, with `EINTR` retried and `EAGAIN` reported as a value.
public enum Sockets {
    /// Ignores `SIGPIPE` for the process: a write to a closed peer returns `EPIPE` instead.
    public static func ignoreBrokenPipes() {
        signal(SIGPIPE, SIG_IGN)
    }

    /// A non-blocking listening TCP socket bound to `address` (`SO_REUSEADDR`).
    public static func listen(on address: Address, backlog: Int32 = 1_024) throws(SocketError) -> Int32 {
        try self.bound(to: address, type: SOCK_STREAM, name: "bind") { fd in
            Glibc.listen(fd, backlog) == 0 ? nil : SocketError("listen \(address)")
        }
    }

    /// A non-blocking UDP socket bound to `address` (`SO_REUSEADDR`).
    public static func bindUDP(_ address: Address) throws(SocketError) -> Int32 {
        try self.bound(to: address, type: SOCK_DGRAM, name: "bind udp") { _ in nil }
    }

    /// A non-blocking socket of `type` bound to the first address of `address` that works
    /// (dual-stack for IPv6), after `prepare` (which returns an error to try the next one).
    private static func bound(to address: Address, type: __socket_type, name: String, prepare: (Int32) -> SocketError?) throws(SocketError) -> Int32 {
        var lastError = SocketError("\(name) \(address): no address", code: 0)
        for candidate in try address.resolve(passive: true) {
            let fd = socket(candidate.family, Int32(type.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else {
                lastError = SocketError("socket")
                continue
            }
            var one: Int32 = 1
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
            if candidate.family == AF_INET6 {
                var zero: Int32 = 0
                setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &zero, socklen_t(MemoryLayout<Int32>.size))
            }
            guard candidate.withSockaddr({ bind(fd, $0, $1) }) == 0 else {
                lastError = SocketError("\(name) \(address)")
                close(fd)
                continue
            }
            if let problem = prepare(fd) {
                lastError = problem
                close(fd)
                continue
            }
            return fd
        }
        throw lastError
    }

    /// Accepts one connection, non-blocking with `TCP_NODELAY`; nil when none is waiting.
    public static func accept(from listener: Int32) throws(SocketError) -> Int32? {
        while true {
            let fd = Glibc.accept(listener, nil, nil)
            if fd >= 0 {
                self.configure(fd)
                return fd
            }
            switch errno {
            case EINTR: continue
            case EAGAIN, EWOULDBLOCK, ECONNABORTED, EPROTO: return nil
            default: throw SocketError("accept")
            }
        }
    }

    /// Starts a non-blocking connect to `address`; the socket becomes writable when it completes.
    /// With `source` (an IP address, port 0) the connection leaves from that address when it is
    /// one of this host's (else the kernel picks, as without it).
    /// With `unacknowledgedTimeout`, bytes sent that the peer leaves unacknowledged that long
    /// (a cut network) fail the connection (`TCP_USER_TIMEOUT`).
    public static func connect(to address: SocketAddressStorage, from source: SocketAddressStorage? = nil,
                               unacknowledgedTimeout: Duration? = nil) throws(SocketError) -> Int32 {
        let fd = socket(address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SocketError("socket") }
        self.configure(fd)
        if let unacknowledgedTimeout { self.setUnacknowledgedTimeout(fd, unacknowledgedTimeout) }
        if let source, source.family == address.family {
            // The port is chosen at connect, per destination, so binding first does not shrink
            // the ephemeral ports available (IP_BIND_ADDRESS_NO_PORT).
            var one: Int32 = 1
            setsockopt(fd, Int32(IPPROTO_IP), Self.bindAddressNoPort, &one, socklen_t(MemoryLayout<Int32>.size))
            _ = source.withSockaddr { bind(fd, $0, $1) }
        }
        let status = address.withSockaddr { Glibc.connect(fd, $0, $1) }
        if status != 0, errno != EINPROGRESS {
            let error = SocketError("connect \(address)")
            close(fd)
            throw error
        }
        return fd
    }

    /// Fails the connection when bytes it sent stay unacknowledged for `timeout`, or a zero
    /// window lasts that long (`TCP_USER_TIMEOUT`); nil restores the kernel's default.
    public static func setUnacknowledgedTimeout(_ fd: Int32, _ timeout: Duration?) {
        var milliseconds = UInt32(clamping: (timeout?.nanosecondsClamped ?? 0) / 1_000_000)
        setsockopt(fd, Int32(IPPROTO_TCP), Self.tcpUserTimeout, &milliseconds, socklen_t(MemoryLayout<UInt32>.size))
    }

    /// Probes an idle connection (`SO_KEEPALIVE`): after `idle` without traffic, a probe every
    /// `interval`; `count` unanswered ones fail the connection. Also fails it when sent bytes stay
    /// unacknowledged for `idle + interval * count` (`TCP_USER_TIMEOUT`), so a peer that vanished
    /// is noticed whether the connection was quiet or busy.
    public static func setKeepAlive(_ fd: Int32, idle: Duration, interval: Duration, count: Int32) {
        var one: Int32 = 1
        var idleSeconds = Int32(clamping: idle.nanosecondsClamped / 1_000_000_000)
        var intervalSeconds = Int32(clamping: interval.nanosecondsClamped / 1_000_000_000)
        var probes = count
        setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, socklen_t(MemoryLayout<Int32>.size))
        setsockopt(fd, Int32(IPPROTO_TCP), Self.tcpKeepIdle, &idleSeconds, socklen_t(MemoryLayout<Int32>.size))
        setsockopt(fd, Int32(IPPROTO_TCP), Self.tcpKeepInterval, &intervalSeconds, socklen_t(MemoryLayout<Int32>.size))
        setsockopt(fd, Int32(IPPROTO_TCP), Self.tcpKeepCount, &probes, socklen_t(MemoryLayout<Int32>.size))
        self.setUnacknowledgedTimeout(fd, idle + interval * Int(count))
    }

    /// `TCP_KEEPIDLE`, `TCP_KEEPINTVL` and `TCP_KEEPCNT` (Linux's values).
    private static let tcpKeepIdle: Int32 = 4
    private static let tcpKeepInterval: Int32 = 5
    private static let tcpKeepCount: Int32 = 6

    /// `TCP_USER_TIMEOUT` (Linux 2.6.37), which Glibc's module does not export.
    private static let tcpUserTimeout: Int32 = 18

    /// `IP_BIND_ADDRESS_NO_PORT` (Linux 4.2), which Glibc's module does not export.
    private static let bindAddressNoPort: Int32 = 24

    /// The pending error of a socket (after a non-blocking connect), 0 when none.
    public static func pendingError(_ fd: Int32) -> Int32 {
        var value: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &value, &length)
        return value
    }

    /// The local address a socket is bound to.
    public static func localAddress(_ fd: Int32) -> Address? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let status = withUnsafeMutablePointer(to: &storage) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard status == 0 else { return nil }
        return withUnsafePointer(to: &storage) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { SocketAddressStorage($0, length: length).address }
        }
    }

    /// The peer address of a connected socket.
    public static func peerAddress(_ fd: Int32) -> Address? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let status = withUnsafeMutablePointer(to: &storage) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(fd, $0, &length) }
        }
        guard status == 0 else { return nil }
        return withUnsafePointer(to: &storage) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { SocketAddressStorage($0, length: length).address }
        }
    }

    private static func configure(_ fd: Int32) {
        let flags = fcntl(fd, F_GETFL)
        _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    }
}
