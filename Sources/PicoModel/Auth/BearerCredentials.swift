/// Where a request's token is found: `x-pico-authorization`, else Piko's
/// `x-piko-authorization`, else `Authorization`, each `Bearer <token>` (RFC 6750 §2.1). The
/// first two let a client send its own `Authorization` through to the upstream.
public struct BearerCredentials: Hashable, Sendable {
    /// The header fields read, first match wins.
    public static let headerNames = ["x-pico-authorization", "x-piko-authorization", "authorization"]

    /// The token's bytes.
    public var token: Substring
    /// The field it came from (lower case): the one Pico consumes and does not pass on.
    public var headerName: String

    /// True when `token` can travel as a bearer token: 1 to `CompactToken.maxBytes` visible
    /// ASCII characters (a line break would end the header and start another).
    public static func isSendable(_ token: String) -> Bool {
        !token.isEmpty && token.utf8.count <= CompactToken.maxBytes && token.utf8.allSatisfy { (0x21...0x7E).contains($0) }
    }

    /// The token in `headers`, or why there is none: no field (`missing authorization`), a
    /// field given twice or without a space after its scheme (`invalid authorization`), or a
    /// scheme other than Bearer, compared without case (`unsupported auth type`).
    public static func find(in headers: HTTPHeaders) -> Result<BearerCredentials, AuthFailure> {
        // One pass over the fields (this runs for every request on a port with auth): the first
        // field of the highest-ranked name, and how many fields carry that name.
        var best: (rank: Int, value: String, count: Int)?
        for field in headers {
            let length = field.name.utf8.count
            guard length == 13 || length == 20 else { continue }
            for rank in Self.headerNames.indices where HTTPHeaders.sameName(field.name, Self.headerNames[rank]) {
                if let current = best, current.rank == rank {
                    best = (rank, current.value, current.count + 1)
                } else if best.map({ rank < $0.rank }) ?? true {
                    best = (rank, field.value, 1)
                }
            }
        }
        guard let (rank, value, count) = best else { return .failure(AuthFailure(.missingAuthorization)) }
        let name = Self.headerNames[rank]
        guard count == 1 else { return .failure(AuthFailure(.invalidAuthorization, "\(name) given \(count) times")) }
        guard let space = value.utf8.firstIndex(of: UInt8(ascii: " ")) else { return .failure(AuthFailure(.invalidAuthorization, "\(name) has no scheme")) }
        let scheme = value[..<space]
        guard HTTPHeaders.sameName(String(scheme), "bearer") else {
            return .failure(AuthFailure(.unsupportedAuthType, "\(name) scheme \(TokenText.printable(String(scheme)))"))
        }
        let token = value[value.utf8.index(after: space)...].trimmingHTTPWhitespace()
        guard !token.isEmpty else { return .failure(AuthFailure(.invalidAuthorization, "\(name) has no token")) }
        return .success(BearerCredentials(token: token, headerName: name))
    }
}
