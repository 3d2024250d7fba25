/// The path an agent's tunnel handshake names its endpoint in: `/pico/v1/upstream/<endpoint>`,
/// or Piko's `/piko/v1/upstream/<endpoint>`, so Piko's agents and SDK dial a node unchanged.
public enum UpstreamPath {
    /// The accepted prefixes, Pico's first.
    public static let prefixes = ["/pico/v1/upstream/", "/piko/v1/upstream/"]

    /// What a handshake's path names.
    public enum Reading: Hashable, Sendable {
        /// An endpoint ID: non-empty, without `/`, at most `EndpointTable.maxEndpointLength` bytes.
        case endpoint(String)
        /// The handshake is refused with this status and message: 404 `not found` for a path
        /// under neither prefix, 400 `invalid endpoint id` for a bad ID.
        case refused(status: Int, message: String)
    }

    /// Reads `path` (the request target's path, query removed). The endpoint segment is
    /// percent-decoded, as Piko's SDK escapes it (`a%20b` names `a b`); a bad escape, invalid
    /// UTF-8, a control character or a `/` (escaped or not) is refused.
    public static func read(_ path: String) -> Reading {
        Self.read(path, prefixes: Self.prefixes)
    }

    /// Reads the endpoint segment that follows one of `prefixes` in `path` (see `read(_:)`); the
    /// TCP route (`TCPRoute`) names its endpoint the same way.
    static func read(_ path: String, prefixes: [String]) -> Reading {
        guard let prefix = prefixes.first(where: { path.hasPrefix($0) }) else { return .refused(status: 404, message: "not found") }
        let segment = path.utf8.dropFirst(prefix.utf8.count)
        guard !segment.contains(UInt8(ascii: "/")), let endpoint = Self.percentDecoded(segment), !endpoint.isEmpty,
              endpoint.utf8.count <= EndpointTable.maxEndpointLength,
              !endpoint.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F || $0 == UInt8(ascii: "/") }) else {
            return .refused(status: 400, message: RouteRejection.invalidEndpoint.message)
        }
        return .endpoint(endpoint)
    }

    /// `bytes` with every `%XX` replaced by its byte, as UTF-8 text; nil for a `%` without two hex
    /// digits or bytes that are not UTF-8.
    static func percentDecoded(_ bytes: Substring.UTF8View) -> String? {
        func hexValue(_ byte: UInt8) -> UInt8? {
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
            default: nil
            }
        }
        var decoded: [UInt8] = []
        decoded.reserveCapacity(bytes.count)
        var index = bytes.startIndex
        while index != bytes.endIndex {
            let byte = bytes[index]
            index = bytes.index(after: index)
            guard byte == UInt8(ascii: "%") else {
                decoded.append(byte)
                continue
            }
            guard index != bytes.endIndex, let high = hexValue(bytes[index]) else { return nil }
            index = bytes.index(after: index)
            guard index != bytes.endIndex, let low = hexValue(bytes[index]) else { return nil }
            index = bytes.index(after: index)
            decoded.append(high << 4 | low)
        }
        return String(validating: decoded, as: UTF8.self)
    }
}
