import PicoModel

/// Which headers an access-log line shows: every one but the secrets, only those on an allow
/// list, or all but the secrets and those on a block list. Names compare case-insensitively.
///
/// The secrets (`Authorization`, `Proxy-Authorization`, `Cookie`, `Set-Cookie`,
/// `x-pico-authorization`, Piko's `x-piko-authorization` and a forward's `x-pico-forward-proof`)
/// are left out unless an allow list names them on purpose.
public enum HeaderLogFilter: Hashable, Sendable {
    /// Every header but the secrets (the default).
    case all
    /// Only these (lowercased) names, secrets included when named.
    case allow(Set<String>)
    /// Every header but the secrets and these (lowercased) names.
    case block(Set<String>)

    /// The header names left out of access-log lines unless an allow list names them.
    public static let secretNames = ["authorization", "proxy-authorization", "cookie", "set-cookie", "x-pico-authorization",
                                     "x-piko-authorization", "x-pico-forward-proof"]

    /// The filter for `allow` and `block` lists; nil when both are non-empty (Piko's
    /// configuration error, "cannot define both allow list and block list").
    public static func make(allow: [String], block: [String]) -> HeaderLogFilter? {
        let allowed = allow.map { $0.lowercased() }.filter { !$0.isEmpty }
        let blocked = block.map { $0.lowercased() }.filter { !$0.isEmpty }
        switch (allowed.isEmpty, blocked.isEmpty) {
        case (false, false): return nil
        case (false, true): return .allow(Set(allowed))
        case (true, false): return .block(Set(blocked))
        case (true, true): return .all
        }
    }

    /// Whether the header `name` is shown.
    public func shows(_ name: String) -> Bool {
        switch self {
        case .all: return !Self.isSecret(name)
        case .allow(let names): return names.contains(name.lowercased())
        case .block(let names): return !Self.isSecret(name) && !names.contains(name.lowercased())
        }
    }

    /// Whether `name` is one of `secretNames`, case-insensitively, without building a string
    /// (the default filter asks this of every header of every logged request).
    static func isSecret(_ name: String) -> Bool {
        switch name.utf8.count {
        case 6: return Self.equalsFolded(name, "cookie")
        case 10: return Self.equalsFolded(name, "set-cookie")
        case 13: return Self.equalsFolded(name, "authorization")
        case 19: return Self.equalsFolded(name, "proxy-authorization")
        case 20: return Self.equalsFolded(name, "x-pico-authorization") || Self.equalsFolded(name, "x-piko-authorization") || Self.equalsFolded(name, "x-pico-forward-proof")
        default: return false
        }
    }

    /// Whether `name` equals `candidate` (lower case, of the same length) with ASCII letters folded.
    private static func equalsFolded(_ name: String, _ candidate: StaticString) -> Bool {
        var expected = candidate.utf8Start
        for byte in name.utf8 {
            // ASCII letters fold to lower case; the names' other bytes ('-') are unchanged by it.
            let folded = (byte >= 0x41 && byte <= 0x5A) ? byte | 0x20 : byte
            guard folded == expected.pointee else { return false }
            expected += 1
        }
        return true
    }

    /// The shown headers as a log object, in arrival order; repeated names are joined by `, `.
    public func logValue(_ headers: HTTPHeaders) -> LogValue {
        var pairs: [(String, LogValue)] = []
        var positions: [String: Int] = [:]
        for field in headers where self.shows(field.name) {
            let key = field.name.lowercased()
            if let position = positions[key], case .string(let earlier) = pairs[position].1 {
                pairs[position].1 = .string(earlier + ", " + field.value)
            } else {
                positions[key] = pairs.count
                pairs.append((field.name, .string(field.value)))
            }
        }
        return .object(pairs)
    }
}
