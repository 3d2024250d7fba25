/// What a port's token check said about one request: the shell verifies the signature (with
/// OpenSSL, through a cache) and the claims (`TokenRules`); the exchange acts on the result.
public enum RequestAccess: Hashable, Sendable {
    /// The port has no auth.
    case open
    /// The token verified; it came in `header` (lower case), which the exchange does not pass
    /// to the upstream service.
    case granted(TokenGrant, header: String)
    /// No usable token: the request is answered 401 with the failure's message.
    case refused(AuthFailure)

    /// The header the token came in, when one was consumed.
    public var consumedHeader: String? {
        if case .granted(_, let header) = self { return header }
        return nil
    }

    /// Refuses a granted request whose token does not list `endpoint` (`endpoint not
    /// permitted`); anything else is returned unchanged.
    public func restricted(to endpoint: String?) -> RequestAccess {
        guard case .granted(let grant, _) = self, let endpoint, !grant.permits(endpoint) else { return self }
        return .refused(AuthFailure(.endpointNotPermitted, "endpoint \(TokenText.printable(endpoint))"))
    }
}
