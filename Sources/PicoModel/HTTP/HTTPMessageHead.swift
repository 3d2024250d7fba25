/// An HTTP/1.x protocol version.
public struct HTTPVersion: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// Major and minor version numbers.
    public var major: Int
    public var minor: Int

    /// HTTP/1.0.
    public static let http1_0 = HTTPVersion(major: 1, minor: 0)
    /// HTTP/1.1.
    public static let http1_1 = HTTPVersion(major: 1, minor: 1)

    /// Creates a version.
    public init(major: Int, minor: Int) {
        self.major = major
        self.minor = minor
    }

    public static func < (left: HTTPVersion, right: HTTPVersion) -> Bool {
        (left.major, left.minor) < (right.major, right.minor)
    }

    public var description: String { "HTTP/\(self.major).\(self.minor)" }
}

/// A request line and its header fields.
public struct HTTPRequestHead: Hashable, Sendable {
    /// The method token, case-sensitive (`GET`, `POST`, ...).
    public var method: String
    /// The request target as sent (origin form `/path?query`, or absolute form).
    public var target: String
    /// The protocol version.
    public var version: HTTPVersion
    /// The header fields, in order.
    public var headers: HTTPHeaders

    /// Creates a head.
    public init(method: String, target: String, version: HTTPVersion = .http1_1, headers: HTTPHeaders = [:]) {
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
    }

    /// True when the connection may carry another request after this one (RFC 9112 §9.3):
    /// HTTP/1.1 unless `Connection: close`, HTTP/1.0 only with `Connection: keep-alive`.
    public var keepAlive: Bool {
        if self.headers.hasToken("connection", "close") { return false }
        return self.version >= .http1_1 || self.headers.hasToken("connection", "keep-alive")
    }

    /// True when the client asks to switch protocols (`Connection: upgrade` plus `Upgrade`), as a
    /// WebSocket handshake does.
    public var isUpgrade: Bool {
        self.headers.hasToken("connection", "upgrade") && self.headers.contains("upgrade")
    }

    /// True when the client waits for `100 Continue` before it sends its body (`Expect:
    /// 100-continue`; ignored from HTTP/1.0 clients, RFC 9110 §10.1.1).
    public var expectsContinue: Bool {
        self.version >= .http1_1 && self.headers.hasToken("expect", "100-continue")
    }

    /// The path part of the target, without the query (for an absolute-form target, the path
    /// after the authority; `/` when empty).
    public var path: String {
        var rest = Substring(self.target)
        if !rest.hasPrefix("/"), let colon = rest.firstIndex(of: ":"), rest[colon...].hasPrefix("://") {
            rest = rest[rest.index(colon, offsetBy: 3)...]
            rest = rest.firstIndex(of: "/").map { rest[$0...] } ?? "/"
        }
        let path = rest.prefix { $0 != "?" && $0 != "#" }
        return path.isEmpty ? "/" : String(path)
    }
}

/// A status line and its header fields.
public struct HTTPResponseHead: Hashable, Sendable {
    /// The protocol version.
    public var version: HTTPVersion
    /// The three-digit status code.
    public var status: Int
    /// The reason phrase (informational only).
    public var reason: String
    /// The header fields, in order.
    public var headers: HTTPHeaders

    /// Creates a head.
    public init(version: HTTPVersion = .http1_1, status: Int, reason: String? = nil, headers: HTTPHeaders = [:]) {
        self.version = version
        self.status = status
        self.reason = reason ?? HTTPResponseHead.standardReason(status)
        self.headers = headers
    }

    /// True for 1xx interim responses other than 101 (another head follows).
    public var isInterim: Bool { (100..<200).contains(self.status) && self.status != 101 }

    /// The usual reason phrase for `status` (empty for codes it does not know).
    public static func standardReason(_ status: Int) -> String {
        switch status {
        case 100: "Continue"
        case 101: "Switching Protocols"
        case 200: "OK"
        case 201: "Created"
        case 204: "No Content"
        case 206: "Partial Content"
        case 301: "Moved Permanently"
        case 302: "Found"
        case 304: "Not Modified"
        case 400: "Bad Request"
        case 401: "Unauthorized"
        case 403: "Forbidden"
        case 404: "Not Found"
        case 405: "Method Not Allowed"
        case 408: "Request Timeout"
        case 409: "Conflict"
        case 413: "Content Too Large"
        case 414: "URI Too Long"
        case 417: "Expectation Failed"
        case 429: "Too Many Requests"
        case 431: "Request Header Fields Too Large"
        case 500: "Internal Server Error"
        case 501: "Not Implemented"
        case 502: "Bad Gateway"
        case 503: "Service Unavailable"
        case 504: "Gateway Timeout"
        case 505: "HTTP Version Not Supported"
        default: ""
        }
    }
}
