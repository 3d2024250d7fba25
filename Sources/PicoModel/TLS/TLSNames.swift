/// Which name a TLS client sends and checks, decided without OpenSSL: SNI carries DNS names only
/// (RFC 6066 §3 forbids literal addresses), and a server reached by address is checked against
/// the address in its certificate instead of a DNS name.
public enum TLSNames {
    /// `name` without the one trailing dot of a fully qualified DNS name (`pico.default.svc.`):
    /// SNI carries names without it, and certificates name hosts without it.
    public static func withoutTrailingDot(_ name: String) -> String {
        name.count > 1 && name.hasSuffix(".") ? String(name.dropLast()) : name
    }

    /// True for a dotted-quad IPv4 address or an IPv6 address (brackets allowed).
    public static func isIPAddress(_ text: String) -> Bool {
        Self.isIPv4(text) || Self.isIPv6(text)
    }

    /// True for a name SNI may carry: 1–253 bytes of letters, digits, hyphens and dots, labels
    /// of 1–63 bytes, not an address.
    public static func isDNSName(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        guard !bytes.isEmpty, bytes.count <= 253, !Self.isIPAddress(text) else { return false }
        var label = 0
        for byte in bytes {
            switch byte {
            case UInt8(ascii: "."):
                guard label > 0 else { return false }
                label = 0
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"):
                label += 1
                guard label <= 63 else { return false }
            default:
                return false
            }
        }
        return true
    }

    static func isIPv4(_ text: String) -> Bool {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return false }
        return parts.allSatisfy { part in
            part.count >= 1 && part.count <= 3 && part.utf8.allSatisfy { $0 >= 48 && $0 <= 57 } && (Int(part) ?? 256) <= 255
        }
    }

    /// RFC 4291 text form: up to eight groups of 1–4 hex digits, one `::` at most, an IPv4
    /// address allowed as the last two groups.
    static func isIPv6(_ text: String) -> Bool {
        var bytes = Array(text.utf8)
        if bytes.first == UInt8(ascii: "["), bytes.last == UInt8(ascii: "]") { bytes = Array(bytes.dropFirst().dropLast()) }
        guard bytes.count >= 2, bytes.count <= 45, bytes.contains(UInt8(ascii: ":")) else { return false }
        // A run of three colons is never an address (`::` is the longest).
        guard !bytes.indices.dropLast(2).contains(where: { bytes[$0] == 0x3A && bytes[$0 + 1] == 0x3A && bytes[$0 + 2] == 0x3A }) else { return false }
        let parts = bytes.split(separator: UInt8(ascii: ":"), omittingEmptySubsequences: false)
        var groups = 0
        var compressed = false
        for (index, part) in parts.enumerated() {
            if part.isEmpty {
                // Empty parts come only from a `::` (two at its start or end, one inside).
                let atEdge = index == 0 || index == parts.count - 1
                let neighbourEmpty = (index > 0 && parts[index - 1].isEmpty) || (index + 1 < parts.count && parts[index + 1].isEmpty)
                guard atEdge ? neighbourEmpty : true else { return false }
                if !(index > 0 && parts[index - 1].isEmpty) {
                    guard !compressed else { return false }
                    compressed = true
                }
                continue
            }
            if index == parts.count - 1, part.contains(UInt8(ascii: ".")) {
                guard Self.isIPv4(String(decoding: part, as: UTF8.self)) else { return false }
                groups += 2
                continue
            }
            guard part.count <= 4, part.allSatisfy(Self.isHexDigit) else { return false }
            groups += 1
        }
        return compressed ? groups <= 7 : groups == 8
    }

    private static func isHexDigit(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "a")...UInt8(ascii: "f"), UInt8(ascii: "A")...UInt8(ascii: "F"): true
        default: false
        }
    }
}
