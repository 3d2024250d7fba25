/// The PROXY protocol, version 2 (HAProxy's `proxy-protocol.txt`, §2.2): a binary header at the
/// start of a TCP connection that tells the service the client's address. An agent's TCP
/// listener that asks for it (`proxy_protocol: true`) names `requestField` in its tunnel
/// handshake; the node that holds the tunnel then starts every TCP route stream with a header
/// for the client it serves, and the agent checks that header before passing it on, so a
/// service that expects one never reads a connection without it.
public enum ProxyProtocolV2 {
    /// The handshake field (and value) an agent sends to ask for the header on every stream.
    public static let requestField = "x-pico-client-address"
    /// The field's value.
    public static let requestValue = "proxy-v2"
    /// The signature every version 2 header starts with.
    public static let signature: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A]
    /// The longest header the agent accepts: the fixed 16 bytes and up to 240 bytes of addresses
    /// and TLVs (Pico sends 12 or 36).
    public static let maxHeaderBytes = 256

    /// True when an agent's tunnel handshake asks for the header.
    public static func isRequested(by head: HTTPRequestHead) -> Bool {
        head.headers.first(Self.requestField)?.trimmingHTTPWhitespace() == Self.requestValue
    }

    /// The header for a TCP connection from `source` to `destination`: `PROXY` over TCP/IPv4 or
    /// TCP/IPv6 when both are addresses of one family (an IPv4 address meets an IPv6 one as
    /// IPv4-mapped IPv6), else `LOCAL` (the service then uses the connection's own addresses).
    public static func header(source: Address?, destination: Address?) -> [UInt8] {
        var header = Self.signature
        guard let source, let destination, let from = IPAddressBytes.parse(source.host), let to = IPAddressBytes.parse(destination.host) else {
            header += [0x20, 0x00, 0x00, 0x00]
            return header
        }
        let (sourceBytes, destinationBytes): ([UInt8], [UInt8])
        if from.count == to.count {
            (sourceBytes, destinationBytes) = (from, to)
        } else {
            (sourceBytes, destinationBytes) = (IPAddressBytes.mapped(from), IPAddressBytes.mapped(to))
        }
        let family: UInt8 = sourceBytes.count == 4 ? 0x11 : 0x21
        let length = UInt16(sourceBytes.count * 2 + 4)
        header += [0x21, family, UInt8(length >> 8), UInt8(truncatingIfNeeded: length)]
        header += sourceBytes + destinationBytes
        header += [UInt8(source.port >> 8), UInt8(truncatingIfNeeded: source.port), UInt8(destination.port >> 8), UInt8(truncatingIfNeeded: destination.port)]
        return header
    }

    /// What the start of a stream holds.
    public enum Reading: Hashable, Sendable {
        /// Fewer bytes than the header needs so far.
        case needMore
        /// A valid header of this many bytes.
        case header(length: Int)
        /// Not a version 2 header, or one that breaks the format (the reason, naming the byte).
        case invalid(String)
    }

    /// Reads the header at the start of `bytes` (the first bytes of a stream, as many as
    /// arrived): checks the signature, version, command, family and length, bounded by
    /// `maxHeaderBytes`.
    public static func read(_ bytes: some Collection<UInt8>) -> Reading {
        let prefix = Array(bytes.prefix(16))
        for (index, byte) in prefix.prefix(Self.signature.count).enumerated() where byte != Self.signature[index] {
            return .invalid("no PROXY protocol v2 signature (byte \(index))")
        }
        guard prefix.count == 16 else { return .needMore }
        guard prefix[12] >> 4 == 2 else { return .invalid("PROXY protocol version \(prefix[12] >> 4), not 2 (byte 12)") }
        guard prefix[12] & 0x0F <= 1 else { return .invalid("unknown PROXY protocol command \(prefix[12] & 0x0F) (byte 12)") }
        let length = Int(prefix[14]) << 8 | Int(prefix[15])
        let minimum: Int
        switch prefix[13] {
        case 0x00: minimum = 0
        case 0x11: minimum = 12
        case 0x21: minimum = 36
        default: return .invalid("unsupported PROXY protocol family \(prefix[13]) (byte 13)")
        }
        guard length >= minimum, 16 + length <= Self.maxHeaderBytes else {
            return .invalid("PROXY protocol address length \(length) (bytes 14-15)")
        }
        return bytes.count >= 16 + length ? .header(length: 16 + length) : .needMore
    }
}

/// IP address text as network-order bytes, without the system's resolver.
public enum IPAddressBytes {
    /// 4 bytes for a dotted-quad IPv4 address, 16 for an IPv6 address (brackets allowed, a
    /// dotted-quad tail allowed); nil for anything else.
    public static func parse(_ text: String) -> [UInt8]? {
        var host = Substring(text)
        if host.hasPrefix("["), host.hasSuffix("]") { host = host.dropFirst().dropLast() }
        if let v4 = Self.ipv4(host) { return v4 }
        return Self.ipv6(host)
    }

    /// An IPv4 address as IPv4-mapped IPv6 (`::ffff:a.b.c.d`); IPv6 unchanged.
    public static func mapped(_ bytes: [UInt8]) -> [UInt8] {
        bytes.count == 4 ? [UInt8](repeating: 0, count: 10) + [0xFF, 0xFF] + bytes : bytes
    }

    static func ipv4(_ text: Substring) -> [UInt8]? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var bytes: [UInt8] = []
        for part in parts {
            guard (1...3).contains(part.count), part.allSatisfy({ $0 >= "0" && $0 <= "9" }), let value = UInt8(part) else { return nil }
            bytes.append(value)
        }
        return bytes
    }

    static func ipv6(_ text: Substring) -> [UInt8]? {
        guard !text.isEmpty, text.count <= 45 else { return nil }
        let halves = text.components(separatedBy: "::")
        guard halves.count <= 2 else { return nil }
        func groups(_ part: Substring, allowIPv4Tail: Bool) -> [UInt8]? {
            guard !part.isEmpty else { return [] }
            var bytes: [UInt8] = []
            let pieces = part.split(separator: ":", omittingEmptySubsequences: false)
            for (index, piece) in pieces.enumerated() {
                if allowIPv4Tail, index == pieces.count - 1, piece.contains(".") {
                    guard let v4 = Self.ipv4(piece) else { return nil }
                    bytes += v4
                    continue
                }
                guard (1...4).contains(piece.count), let value = UInt16(piece, radix: 16) else { return nil }
                bytes += [UInt8(value >> 8), UInt8(truncatingIfNeeded: value)]
            }
            return bytes
        }
        if halves.count == 1 {
            guard let bytes = groups(text, allowIPv4Tail: true), bytes.count == 16 else { return nil }
            return bytes
        }
        guard let head = groups(halves[0], allowIPv4Tail: false), let tail = groups(halves[1], allowIPv4Tail: true),
              head.count + tail.count <= 14 else { return nil }
        return head + [UInt8](repeating: 0, count: 16 - head.count - tail.count) + tail
    }
}

extension Substring {
    /// The pieces between occurrences of `separator` (a two-character separator such as `::`).
    fileprivate func components(separatedBy separator: String) -> [Substring] {
        var pieces: [Substring] = []
        var start = self.startIndex
        var index = self.startIndex
        let marker = Array(separator)
        while index < self.endIndex {
            if self[index...].starts(with: marker) {
                pieces.append(self[start..<index])
                index = self.index(index, offsetBy: marker.count)
                start = index
            } else {
                index = self.index(after: index)
            }
        }
        pieces.append(self[start..<self.endIndex])
        return pieces
    }
}
