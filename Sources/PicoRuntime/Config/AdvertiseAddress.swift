import Glibc
import PicoModel

/// One address of a network interface that is up.
public struct InterfaceAddress: Hashable, Sendable {
    /// The interface name, e.g. `eth0`.
    public var interface: String
    /// The numeric address, e.g. `10.0.0.7` or `fd00::2`.
    public var host: String
    /// True for loopback interfaces.
    public var isLoopback: Bool
    /// True for IPv6.
    public var isIPv6: Bool

    public init(interface: String, host: String, isLoopback: Bool, isIPv6: Bool) {
        self.interface = interface
        self.host = host
        self.isLoopback = isLoopback
        self.isIPv6 = isIPv6
    }

    /// The addresses of every interface that is up, in the kernel's order (`getifaddrs`).
    public static func current() -> [InterfaceAddress] {
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0, let first = list else { return [] }
        defer { freeifaddrs(list) }
        var result: [InterfaceAddress] = []
        var cursor: UnsafeMutablePointer<ifaddrs>? = first
        while let entry = cursor {
            cursor = entry.pointee.ifa_next
            let flags = Int32(entry.pointee.ifa_flags)
            guard flags & Int32(IFF_UP) != 0, let address = entry.pointee.ifa_addr else { continue }
            let family = Int32(address.pointee.sa_family)
            guard family == AF_INET || family == AF_INET6 else { continue }
            var text = [CChar](repeating: 0, count: Int(NI_MAXHOST))
            let length = socklen_t(family == AF_INET ? MemoryLayout<sockaddr_in>.size : MemoryLayout<sockaddr_in6>.size)
            guard getnameinfo(address, length, &text, socklen_t(text.count), nil, 0, NI_NUMERICHOST) == 0 else { continue }
            let host = String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            result.append(InterfaceAddress(interface: String(cString: entry.pointee.ifa_name), host: host,
                                           isLoopback: flags & Int32(IFF_LOOPBACK) != 0, isIPv6: family == AF_INET6))
        }
        return result
    }
}

/// Piko's advertise-address rule without its panic: an explicit address wins; a bind to a
/// specific host advertises that host; a wildcard bind (`:8000`, `0.0.0.0`, `::`) advertises the
/// first private IPv4 address (RFC 1918 or RFC 6598), else the first other non-loopback IPv4
/// address, else the first global IPv6 address, always with the bound port.
public enum AdvertiseAddress {
    /// The address to advertise for `key` (used in the error), or a `ConfigError` asking for
    /// an explicit `key` when the host has no usable address.
    public static func derive(explicit: Address?, bound: Address, interfaces: [InterfaceAddress], key: String) throws(ConfigError) -> Address {
        if let explicit { return explicit }
        guard Self.isWildcard(bound.host) else { return bound }
        let usable = interfaces.filter { !$0.isLoopback }
        let v4 = usable.filter { !$0.isIPv6 }
        let v6 = usable.filter { $0.isIPv6 && !$0.host.lowercased().hasPrefix("fe80") }
        guard let chosen = v4.first(where: { Self.isPrivateIPv4($0.host) }) ?? v4.first ?? v6.first else {
            throw ConfigError("\(key): cannot derive an address to advertise from \(bound): this host has no non-loopback address; set \(key)")
        }
        return Address(host: chosen.host, port: bound.port)
    }

    static func isWildcard(_ host: String) -> Bool {
        host.isEmpty || host == "0.0.0.0" || host == "::" || host == "[::]"
    }

    /// 10/8, 172.16/12, 192.168/16 and the shared 100.64/10.
    static func isPrivateIPv4(_ host: String) -> Bool {
        let parts = host.split(separator: ".").compactMap { UInt8($0) }
        guard parts.count == 4 else { return false }
        switch (parts[0], parts[1]) {
        case (10, _): return true
        case (172, 16...31): return true
        case (192, 168): return true
        case (100, 64...127): return true
        default: return false
        }
    }
}
