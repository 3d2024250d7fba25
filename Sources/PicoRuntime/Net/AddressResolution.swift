import Glibc
import PicoModel

/// Turning an address into socket addresses, which needs the system's resolver (`getaddrinfo`).
/// An empty host means every interface when binding (`passive`) and localhost when dialling.
extension Address {
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
