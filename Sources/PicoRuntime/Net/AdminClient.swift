import Glibc
import PicoModel

/// A small blocking HTTP/1.1 client for one `GET`: to a node's admin port (`pico status`), or to
/// an identity provider's key set (`*.auth.jwks.endpoint`, on a thread of its own). Every step
/// is bounded: the connect, each send and receive by `timeout`, the whole answer (a server
/// that drips bytes, or sends endless interim answers) by `timeout` too, the body by `maxBody`.
public enum AdminClient {
    /// The answer: status and body.
    public struct Response: Sendable {
        public var status: Int
        public var body: String
    }

    /// Largest body read.
    public static let maxBody = 16 * 1_024 * 1_024

    /// `GET path` from `target` (over TLS with `tls`: the server's certificate is checked
    /// against the target's host name or address, sent as SNI when it is a name); throws with
    /// the reason when no answer arrives.
    /// `token`, when given, goes as `Authorization: Bearer <token>`.
    /// `maxBody` bounds the body (default `maxBody`).
    public static func get(_ target: Address, path: String, timeout: Duration, tls: TLSContext? = nil, token: String? = nil,
                           maxBody: Int = AdminClient.maxBody) throws(SocketError) -> Response {
        let addresses = try target.resolve()
        var lastError = SocketError("connect \(target): no address", code: 0)
        for address in addresses {
            let fd = socket(address.family, Int32(SOCK_STREAM.rawValue), 0)
            guard fd >= 0 else { throw SocketError("socket") }
            defer { close(fd) }
            BlockingChannel.setTimeout(fd, SO_SNDTIMEO, timeout)
            BlockingChannel.setTimeout(fd, SO_RCVTIMEO, timeout)
            let connected = address.withSockaddr { connect(fd, $0, $1) }
            guard connected == 0 else {
                lastError = SocketError("connect \(target)")
                continue
            }
            var session: TLSSession?
            if let tls {
                do {
                    session = try TLSSession(client: tls, serverName: target.host, expectedName: target.host, peer: target.description)
                } catch {
                    throw SocketError("TLS: \(error)", code: 0)
                }
            }
            return try Self.exchange(BlockingChannel(fd: fd, tls: session), host: target.description, path: path, token: token,
                                     maxBody: maxBody, deadline: MonotonicClock.now() + timeout)
        }
        throw lastError
    }

    static func exchange(_ channel: BlockingChannel, host: String, path: String, token: String? = nil, maxBody: Int = AdminClient.maxBody,
                         deadline: Instant) throws(SocketError) -> Response {
        let authorization = token.map { "Authorization: Bearer \($0)\r\n" } ?? ""
        let request = "GET \(path) HTTP/1.1\r\nHost: \(host)\r\nAccept: application/json\r\nConnection: close\r\nUser-Agent: pico-status\r\n\(authorization)\r\n"
        try channel.send(Array(request.utf8))
        var decoder = HTTP1ResponseDecoder()
        decoder.expectResponse(to: "GET")
        var status: Int?
        var body: [UInt8] = []
        var closed = false
        while true {
            do {
                while let part = try decoder.next() {
                    switch part {
                    case .head(let head):
                        if !head.isInterim { status = head.status }
                    case .body(let piece):
                        body += piece
                        guard body.count <= maxBody else { throw SocketError("response body over \(maxBody) bytes", code: 0) }
                    case .end:
                        return Response(status: status ?? 0, body: String(decoding: body, as: UTF8.self))
                    }
                }
            } catch let error as SocketError {
                throw error
            } catch {
                throw SocketError("malformed response: \(error)", code: 0)
            }
            guard !closed else { throw SocketError("connection closed before the response ended", code: 0) }
            guard MonotonicClock.now() < deadline else { throw SocketError("receive: the answer did not end in time", code: 0) }
            closed = try channel.receive(before: deadline) { decoder.feed($0) }
            if closed { decoder.feedEOF() }
        }
    }
}

/// One blocking socket, in plain text or through a TLS client session (whose handshake runs
/// inside `send` and `receive`); every call is bounded by the socket's timeouts.
struct BlockingChannel {
    let fd: Int32
    let tls: TLSSession?

    /// Sends all of `bytes` (through TLS: encrypted, after the handshake's messages).
    func send(_ bytes: [UInt8]) throws(SocketError) {
        guard let tls else { return try self.sendRaw(bytes) }
        var failure: TLSError?
        bytes.withUnsafeBytes { raw in
            do throws(TLSError) { try tls.send(raw) } catch { failure = error }
        }
        if let failure { throw SocketError("TLS: \(failure)", code: 0) }
        try self.flushTLS()
    }

    /// Waits for bytes until `deadline` and hands their plaintext to `deliver`; true when the
    /// peer closed.
    func receive(before deadline: Instant, _ deliver: (UnsafeRawBufferPointer) -> Void) throws(SocketError) -> Bool {
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            // The socket's receive timeout is what is left of the whole answer's time.
            Self.setTimeout(self.fd, SO_RCVTIMEO, max(deadline - MonotonicClock.now(), .milliseconds(1)))
            let count = recv(self.fd, &buffer, buffer.count, 0)
            if count < 0 {
                if errno == EINTR { continue }
                throw SocketError(errno == EAGAIN || errno == EWOULDBLOCK ? "receive: timed out" : "receive")
            }
            guard let tls else {
                buffer.withUnsafeBytes { deliver(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
                return count == 0
            }
            if count == 0 { return true }
            var outcome: Result<TLSSession.Progress, TLSError> = .success(.open)
            buffer.withUnsafeBytes { raw in
                do throws(TLSError) {
                    outcome = .success(try tls.receive(UnsafeRawBufferPointer(rebasing: raw[0..<count])) { plaintext in
                        deliver(plaintext)
                        return true
                    })
                } catch {
                    outcome = .failure(error)
                }
            }
            guard case .success(let progress) = outcome else {
                if case .failure(let error) = outcome { throw SocketError("TLS: \(error)", code: 0) }
                return true
            }
            // Handshake messages (and the request, once the handshake completes) go out now.
            try self.flushTLS()
            return progress == .peerClosed
        }
    }

    /// Sets a socket's send or receive timeout (`SO_SNDTIMEO`, `SO_RCVTIMEO`).
    static func setTimeout(_ fd: Int32, _ option: Int32, _ duration: Duration) {
        var limit = timeval(tv_sec: Int(duration.components.seconds), tv_usec: Int(duration.components.attoseconds / 1_000_000_000_000))
        setsockopt(fd, SOL_SOCKET, option, &limit, socklen_t(MemoryLayout<timeval>.size))
    }

    private func flushTLS() throws(SocketError) {
        var output: [UInt8] = []
        self.tls?.takeOutput(into: &output)
        try self.sendRaw(output)
    }

    private func sendRaw(_ bytes: [UInt8]) throws(SocketError) {
        var rest = bytes[...]
        while !rest.isEmpty {
            let sent = rest.withUnsafeBytes { Glibc.send(self.fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if sent < 0 {
                if errno == EINTR { continue }
                throw SocketError("send")
            }
            rest = rest.dropFirst(sent)
        }
    }
}
