import Glibc

/// A host and port as written in configuration (`host:port`, `:port`, `[v6]:port`), resolved to
/// socket addresses when needed.
public struct HostPort: Hashable, Sendable, CustomStringConvertible {
    /// The host (empty: every interface when binding, localhost when dialling).
    public var host: String
    /// The port.
    public var port: UInt16

    /// Creates one.
    public init(host: String, port: UInt16) {
        self.host = host
        self.port = port
    }

    /// Parses `host:port`, `:port` or `[v6]:port`; nil when malformed.
    public init?(parsing text: String) {
        guard let colon = text.lastIndex(of: ":") else { return nil }
        var host = String(text[..<colon])
        guard let port = UInt16(text[text.index(after: colon)...]) else { return nil }
        if host.hasPrefix("[") {
            guard host.hasSuffix("]") else { return nil }
            host = String(host.dropFirst().dropLast())
        } else if host.contains(":") {
            return nil
        }
        self.init(host: host, port: port)
    }

    public var description: String {
        self.host.contains(":") ? "[\(self.host)]:\(self.port)" : "\(self.host):\(self.port)"
    }

    /// The socket address when the host is an IP literal (no name lookup, never blocks); nil for
    /// names.
    public func numeric() -> SocketAddressStorage? {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(self.host, String(self.port), &hints, &list) == 0, let first = list, let address = first.pointee.ai_addr else { return nil }
        defer { freeaddrinfo(list) }
        return SocketAddressStorage(address, length: first.pointee.ai_addrlen)
    }

    /// Every address the host resolves to (blocking `getaddrinfo`); `passive` for binding.
    public func resolve(passive: Bool = false) throws(SocketError) -> [SocketAddressStorage] {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        if passive { hints.ai_flags = AI_PASSIVE }
        var list: UnsafeMutablePointer<addrinfo>?
        let host: String? = self.host.isEmpty ? (passive ? nil : "localhost") : self.host
        let status = getaddrinfo(host, String(self.port), &hints, &list)
        guard status == 0, let first = list else {
            throw SocketError("resolve \(self.host.isEmpty ? "localhost" : self.host): \(String(cString: gai_strerror(status)))", code: 0)
        }
        defer { freeaddrinfo(list) }
        var result: [SocketAddressStorage] = []
        var cursor: UnsafeMutablePointer<addrinfo>? = first
        while let entry = cursor {
            if let address = entry.pointee.ai_addr {
                result.append(SocketAddressStorage(address, length: entry.pointee.ai_addrlen))
            }
            cursor = entry.pointee.ai_next
        }
        // Passive resolution of "every interface" prefers IPv6 (dual-stack) when offered.
        if passive, self.host.isEmpty { result.sort { $0.family == AF_INET6 && $1.family != AF_INET6 } }
        return result
    }
}

/// A resolved socket address (IPv4 or IPv6).
public struct SocketAddressStorage: Hashable, Sendable, CustomStringConvertible {
    var bytes: [UInt8]

    public init(_ address: UnsafePointer<sockaddr>, length: socklen_t) {
        self.bytes = Array(UnsafeRawBufferPointer(start: address, count: Int(length)))
    }

    /// The address family (`AF_INET` or `AF_INET6`).
    public var family: Int32 {
        self.bytes.withUnsafeBytes { Int32($0.load(as: sockaddr.self).sa_family) }
    }

    /// Runs `body` with a pointer to the address and its length.
    func withSockaddr<Result>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> Result) -> Result {
        self.bytes.withUnsafeBytes { raw in
            body(raw.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t(raw.count))
        }
    }

    /// The numeric host and the port.
    public var hostPort: HostPort {
        var host = [CChar](repeating: 0, count: Int(NI_MAXHOST))
        var service = [CChar](repeating: 0, count: Int(NI_MAXSERV))
        _ = self.withSockaddr { address, length in
            getnameinfo(address, length, &host, socklen_t(host.count), &service, socklen_t(service.count), NI_NUMERICHOST | NI_NUMERICSERV)
        }
        let hostText = String(decoding: host.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let serviceText = String(decoding: service.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return HostPort(host: hostText, port: UInt16(serviceText) ?? 0)
    }

    public var description: String { self.hostPort.description }
}
