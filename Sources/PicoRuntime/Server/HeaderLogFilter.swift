import PicoModel

/// Which headers an access-log line shows: every one, only those on an allow list, or all but
/// those on a block list. Names compare case-insensitively.
public enum HeaderLogFilter: Hashable, Sendable {
    case all
    case allow(Set<String>)
    case block(Set<String>)

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
        case .all: return true
        case .allow(let names): return names.contains(name.lowercased())
        case .block(let names): return !names.contains(name.lowercased())
        }
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
