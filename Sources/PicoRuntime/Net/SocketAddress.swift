import Glibc
import PicoModel

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
    public var address: Address {
        var host = [CChar](repeating: 0, count: Int(NI_MAXHOST))
        var service = [CChar](repeating: 0, count: Int(NI_MAXSERV))
        _ = self.withSockaddr { address, length in
            getnameinfo(address, length, &host, socklen_t(host.count), &service, socklen_t(service.count), NI_NUMERICHOST | NI_NUMERICSERV)
        }
        let hostText = String(decoding: host.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let serviceText = String(decoding: service.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return Address(host: hostText, port: UInt16(serviceText) ?? 0)
    }

    public var description: String { self.address.description }
}
