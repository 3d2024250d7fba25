import PicoModel

/// Piko's JSON error answers: `{"error":"<message>"}` with `Content-Type: application/json` and
/// `X-Content-Type-Options: nosniff`; a 401 also says `WWW-Authenticate: Bearer` (RFC 9110
/// §15.5.2 asks every 401 to name the scheme it wants).
enum ProxyErrors {
    /// The whole response, ready to write. `headOnly` (the answer to a `HEAD`) keeps the head,
    /// `Content-Length` included, and drops the body.
    static func response(status: Int, message: String, keepAlive: Bool, extra: HTTPHeaders = [:], headOnly: Bool = false) -> [UInt8] {
        let body = Array("{\"error\":\(JSONText.quote(message))}\n".utf8)
        var headers: HTTPHeaders = ["Content-Type": "application/json", "X-Content-Type-Options": "nosniff", "Content-Length": String(body.count)]
        for field in extra { headers.add(name: field.name, value: field.value) }
        if status == 401, !headers.contains("www-authenticate") { headers.add(name: "WWW-Authenticate", value: "Bearer") }
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        var bytes = HTTP1Encoder.encode(HTTPResponseHead(status: status, headers: headers))
        if !headOnly { bytes += body }
        return bytes
    }
}
