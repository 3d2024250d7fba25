/// How a reverse proxy rewrites messages between a client and an upstream (RFC 9110 §7.6):
/// hop-by-hop fields removed, `X-Forwarded-*` added, and a body framing chosen for each side.
/// Shared by the node (client → tunnel) and the agent (tunnel → local service).
public enum HTTPProxyRules {
    /// Fields that describe one connection, never forwarded (plus any a `Connection` field names),
    /// and Pico's per-hop mark `UnservedForward.header` (only the node that sets it may).
    public static let hopByHopFields = [
        "connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization",
        "te", "trailer", "transfer-encoding", "upgrade", UnservedForward.header,
    ]

    /// The fields that name a request's endpoint: Pico's, then Piko's (a Piko client or SDK sends
    /// the second unchanged).
    public static let endpointFields = ["x-pico-endpoint", "x-piko-endpoint"]

    /// The endpoint a request names (Piko's `EndpointIDFromRequest`): on the TCP route
    /// (`TCPRoute`), the path's (a field naming another is a conflict); otherwise a non-empty
    /// `x-pico-endpoint` or `x-piko-endpoint` wins; otherwise the first label of `Host` (port
    /// stripped) when the host has a dot and is not an IP literal; otherwise nil. Nil too when
    /// the two fields name different endpoints (`endpointNaming` says so).
    public static func endpoint(of head: HTTPRequestHead) -> String? {
        if case .named(let endpoint) = self.endpointNaming(of: head) { return endpoint }
        return nil
    }

    /// The 400 message for a request whose `x-pico-authorization` and Piko's
    /// `x-piko-authorization` fields (every one of each) do not all carry the same credentials
    /// (scheme compared without case, the rest without surrounding whitespace); nil when they
    /// agree or only one field is given. Only a port that reads tokens asks: elsewhere both fields
    /// are the upstream's business.
    public static func authorizationDisagreement(in headers: HTTPHeaders) -> String? {
        var first: (scheme: String, credentials: Substring)?
        var fields = 0
        for field in headers where HTTPHeaders.sameName(field.name, "x-pico-authorization") || HTTPHeaders.sameName(field.name, "x-piko-authorization") {
            fields += 1
            let value = Substring(field.value).trimmingHTTPWhitespace()
            let space = value.firstIndex(of: " ") ?? value.endIndex
            let parsed = (scheme: value[..<space].lowercased(), credentials: value[space...].trimmingHTTPWhitespace())
            guard let known = first else {
                first = parsed
                continue
            }
            if known.scheme != parsed.scheme || known.credentials != parsed.credentials {
                return "x-pico-authorization and x-piko-authorization carry different tokens"
            }
        }
        return nil
    }

    /// How a request names its endpoint, as `endpoint(of:)` reads it, telling a request with no
    /// name apart from one whose Pico and Piko fields disagree (answered 400, never routed by
    /// either name).
    public static func endpointNaming(of head: HTTPRequestHead) -> EndpointNaming {
        let pico = head.headers.first("x-pico-endpoint")?.trimmingHTTPWhitespace() ?? ""
        let piko = head.headers.first("x-piko-endpoint")?.trimmingHTTPWhitespace() ?? ""
        // The TCP route's path names its endpoint; a field may only repeat it.
        let path = head.target.hasPrefix("/") ? Substring(head.target) : Substring(head.path)
        if TCPRoute.isRoute(path) {
            guard let routed = TCPRoute.endpoint(ofPath: Substring(head.path)) else { return .unnamed }
            for (name, value) in [("x-pico-endpoint", pico), ("x-piko-endpoint", piko)] where !value.isEmpty && value != routed {
                return .conflicting("the TCP route's path and \(name) name different endpoints")
            }
            return .named(routed)
        }
        switch (pico.isEmpty, piko.isEmpty) {
        case (false, false):
            return pico == piko ? .named(pico) : .conflicting("x-pico-endpoint and x-piko-endpoint name different endpoints")
        case (false, true): return .named(pico)
        case (true, false): return .named(piko)
        case (true, true): break
        }
        guard var host = head.headers.first("host")?.trimmingHTTPWhitespace(), !host.isEmpty else { return .unnamed }
        if host.hasPrefix("[") { return .unnamed }  // an IPv6 literal
        if let colon = host.lastIndex(of: ":") { host = String(host[..<colon]) }
        guard host.contains("."), !Self.isIPv4Literal(host) else { return .unnamed }
        let label = host.prefix { $0 != "." }
        return label.isEmpty ? .unnamed : .named(String(label))
    }

    static func isIPv4Literal(_ host: String) -> Bool {
        let parts = host.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts.allSatisfy { !$0.isEmpty && $0.count <= 3 && $0.allSatisfy(\.isASCII) && UInt8($0) != nil }
    }

    /// `headers` without hop-by-hop fields; `keepUpgrade` keeps `Upgrade` and sets
    /// `Connection: Upgrade` (an upgrade handshake passed through). One pass over the fields;
    /// headers with nothing to remove come back as they are, without a copy.
    public static func endToEnd(_ headers: HTTPHeaders, keepUpgrade: Bool) -> HTTPHeaders {
        // No lists are built: most heads have no Connection field, and a name it lists is found
        // with `hasToken` (Connection's "upgrade" token only matters for the Upgrade field, which
        // is hop-by-hop anyway).
        let hasConnection = headers.contains("connection")
        func dropped(_ field: HTTPHeaders.Field) -> Bool {
            if Self.isHopByHop(field.name) { return !(keepUpgrade && HTTPHeaders.sameName(field.name, "upgrade")) }
            // The endpoint fields stay, whatever `Connection` lists: a forward must name the
            // endpoint the forwarding node checked the token against and signed its proof for.
            if Self.endpointFields.contains(where: { HTTPHeaders.sameName(field.name, $0) }) { return false }
            return hasConnection && headers.hasToken("connection", field.name)
        }
        var result = headers
        if headers.fields.contains(where: dropped) {
            result = HTTPHeaders(headers.fields.filter { !dropped($0) })
        }
        if keepUpgrade, result.contains("upgrade") { result.add(name: "Connection", value: "Upgrade") }
        return result
    }

    /// True for the names in `hopByHopFields` (ASCII case-insensitively), checked by length first.
    static func isHopByHop(_ name: String) -> Bool {
        switch name.utf8.count {
        case 2: HTTPHeaders.sameName(name, "te")
        case 7: HTTPHeaders.sameName(name, "trailer") || HTTPHeaders.sameName(name, "upgrade")
        case 10: HTTPHeaders.sameName(name, "connection") || HTTPHeaders.sameName(name, "keep-alive")
        case 15: HTTPHeaders.sameName(name, UnservedForward.header)
        case 16: HTTPHeaders.sameName(name, "proxy-connection")
        case 17: HTTPHeaders.sameName(name, "transfer-encoding")
        case 18: HTTPHeaders.sameName(name, "proxy-authenticate")
        case 19: HTTPHeaders.sameName(name, "proxy-authorization")
        default: false
        }
    }

    /// The body framing a validated request head announces.
    public static func framing(ofRequest head: HTTPRequestHead) -> HTTPBodyFraming {
        (try? HTTP1Framing.request(head, offset: 0)) ?? .none
    }

    /// The body framing a validated response head announces, given its request's method.
    public static func framing(ofResponse head: HTTPResponseHead, requestMethod: String) -> HTTPBodyFraming {
        (try? HTTP1Framing.response(head, requestMethod: requestMethod, offset: 0)) ?? .untilClose
    }

    /// Where a node sends a request next.
    public enum NextHop: Hashable, Sendable {
        /// Into one of its own tunnels, to the agent and the upstream service.
        case tunnel
        /// To another node that has a tunnel (a forward, at most one per request).
        case peer
    }

    /// The request as sent to `hop`: HTTP/1.1, end-to-end fields, the body framing restated once
    /// (one `Content-Length` field, or chunked re-chunked), `X-Forwarded-For` appended with
    /// `clientIP`. `X-Forwarded-Proto` and `X-Forwarded-Host` state what this node saw (`scheme`
    /// and `Host`), replacing the client's own, except on a request a peer forwarded
    /// (`arrivedFromPeer`), whose values the peer set. `x-pico-forward: true` marks a request
    /// to a peer and nothing else: it never reaches an upstream service, and a client's own is
    /// dropped. `framing` is the request's, when the caller has it from the decoder. A forward
    /// asks for a heartbeat every `heartbeat` when given (`ForwardHeartbeat`); the field never
    /// reaches an upstream service, and a client's own is dropped. `credentialHeader`, the field
    /// whose token the port verified, never reaches an upstream service; it goes to a peer,
    /// which verifies it again. A forward carries this node's `ForwardProof` (`proof`, the
    /// field's value); a client's own proof is dropped.
    public static func upstreamRequest(
        _ head: HTTPRequestHead, clientIP: String?, scheme: String, to hop: NextHop, arrivedFromPeer: Bool = false,
        framing: HTTPBodyFraming? = nil, heartbeat: Duration? = nil, credentialHeader: String? = nil, proof: String? = nil
    ) -> HTTPRequestHead {
        var headers = Self.endToEnd(head.headers, keepUpgrade: head.isUpgrade)
        if hop == .tunnel, let credentialHeader {
            // The consumed field, and Pico's and Piko's own token fields whichever was consumed
            // (a client's `Authorization` goes through when the token came in one of those).
            let consumedAuthorization = credentialHeader == "authorization"
            if headers.contains(where: { Self.isTokenField($0.name, authorization: consumedAuthorization) }) {
                headers.removeAll { Self.isTokenField($0.name, authorization: consumedAuthorization) }
            }
        }
        // A client's own proof never travels (one pass, and nothing copied when there is none).
        if headers.contains(where: { $0.name.utf8.count == 20 && HTTPHeaders.sameName($0.name, ForwardProof.header) }) { headers.remove(ForwardProof.header) }
        if hop == .peer, let proof { headers.add(name: ForwardProof.header, value: proof) }
        let framing = framing ?? Self.framing(ofRequest: head)
        if framing == .chunked { headers.add(name: "Transfer-Encoding", value: "chunked") }
        Self.restateContentLength(framing, in: &headers)
        if let clientIP {
            let prior = head.headers["x-forwarded-for"].joined(separator: ", ")
            headers.replaceOrAdd(name: "X-Forwarded-For", value: prior.isEmpty ? clientIP : "\(prior), \(clientIP)")
        }
        if !arrivedFromPeer || !headers.contains("x-forwarded-proto") { headers.replaceOrAdd(name: "X-Forwarded-Proto", value: scheme) }
        if !arrivedFromPeer || !headers.contains("x-forwarded-host") {
            if let host = head.headers.first("host") {
                headers.replaceOrAdd(name: "X-Forwarded-Host", value: host)
            } else {
                headers.remove("x-forwarded-host")
            }
        }
        switch hop {
        case .peer: headers.replaceOrAdd(name: "x-pico-forward", value: "true")
        case .tunnel: if headers.contains("x-pico-forward") { headers.remove("x-pico-forward") }
        }
        if hop == .peer, let heartbeat {
            headers.replaceOrAdd(name: ForwardHeartbeat.header, value: ForwardHeartbeat.requestValue(every: heartbeat))
        } else if headers.contains(ForwardHeartbeat.header) {
            headers.remove(ForwardHeartbeat.header)
        }
        return HTTPRequestHead(method: head.method, target: head.target, version: .http1_1, headers: headers)
    }

    /// Pico's or Piko's token field, or `Authorization` when that is the one consumed.
    static func isTokenField(_ name: String, authorization: Bool) -> Bool {
        switch name.utf8.count {
        case 20: return HTTPHeaders.sameName(name, "x-pico-authorization") || HTTPHeaders.sameName(name, "x-piko-authorization")
        case 13: return authorization && HTTPHeaders.sameName(name, "authorization")
        default: return false
        }
    }

    /// A `Content-Length` the decoder accepted as several equal fields or a list (`2, 2`) is
    /// sent on as one field with one value; the next hop may read the list form differently
    /// (RFC 9110 §8.6). One plain field, the usual case, is left as it is without a copy.
    static func restateContentLength(_ framing: HTTPBodyFraming, in headers: inout HTTPHeaders) {
        guard case .length(let length) = framing else { return }
        var fields = 0
        var listed = false
        for field in headers.fields where HTTPHeaders.sameName(field.name, "content-length") {
            fields += 1
            if field.value.utf8.contains(0x2C) { listed = true }
        }
        if fields > 1 || listed { headers.replaceOrAdd(name: "Content-Length", value: String(length)) }
    }

    /// How a response body is sent to a client.
    public enum ClientFraming: Hashable, Sendable {
        /// No body follows.
        case none
        /// Bytes copied as they come (`Content-Length` states the size).
        case length
        /// Re-chunked.
        case chunked
        /// Copied, then the connection closes (an HTTP/1.0 client and a close-delimited body).
        case untilClose
    }

    /// The response as sent to the client, its framing, and whether the client connection may
    /// carry another request afterwards. A close-delimited upstream body is chunked to an
    /// HTTP/1.1 client so the connection survives.
    /// `upstreamFraming` is the response's, when the caller has it from the decoder.
    public static func clientResponse(
        _ head: HTTPResponseHead, requestMethod: String, clientVersion: HTTPVersion, clientKeepAlive: Bool,
        upstreamFraming: HTTPBodyFraming? = nil
    ) -> (head: HTTPResponseHead, framing: ClientFraming, keepAlive: Bool) {
        var headers = Self.endToEnd(head.headers, keepUpgrade: head.status == 101)
        let framing: ClientFraming
        var keepAlive = clientKeepAlive
        let upstreamFraming = upstreamFraming ?? Self.framing(ofResponse: head, requestMethod: requestMethod)
        Self.restateContentLength(upstreamFraming, in: &headers)
        switch upstreamFraming {
        case .none: framing = .none
        case .length: framing = .length
        case .chunked, .untilClose:
            if clientVersion >= .http1_1 {
                framing = .chunked
                headers.add(name: "Transfer-Encoding", value: "chunked")
            } else {
                framing = .untilClose
                keepAlive = false
            }
        }
        if head.status == 101 {
            keepAlive = false
        } else if !keepAlive {
            headers.replaceOrAdd(name: "Connection", value: "close")
        } else if clientVersion < .http1_1 {
            headers.replaceOrAdd(name: "Connection", value: "keep-alive")
        }
        return (HTTPResponseHead(version: .http1_1, status: head.status, reason: head.reason, headers: headers), framing, keepAlive)
    }
}

/// How a request names its endpoint (`HTTPProxyRules.endpointNaming(of:)`).
public enum EndpointNaming: Hashable, Sendable {
    /// By a header field or the `Host` label.
    case named(String)
    /// Not at all (routing answers 400 `missing endpoint id`).
    case unnamed
    /// `x-pico-endpoint` and `x-piko-endpoint` disagree: 400 with this message.
    case conflicting(String)
}
