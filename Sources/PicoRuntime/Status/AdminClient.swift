import Glibc
import PicoModel

/// A small blocking HTTP/1.1 client for one `GET` to a node's admin port (`pico status`). Every
/// step is bounded: the connect, each send and receive by `timeout`, the body by `maxBody`.
public enum AdminClient {
    /// The answer: status and body.
    public struct Response: Sendable {
        public var status: Int
        public var body: String
    }

    /// Largest body read.
    public static let maxBody = 16 * 1_024 * 1_024

    /// `GET path` from `target`; throws with the reason when no answer arrives.
    public static func get(_ target: Address, path: String, timeout: Duration) throws(SocketError) -> Response {
        let addresses = try target.resolve()
        var lastError = SocketError("connect \(target): no address", code: 0)
        for address in addresses {
            let fd = socket(address.family, Int32(SOCK_STREAM.rawValue), 0)
            guard fd >= 0 else { throw SocketError("socket") }
            defer { close(fd) }
            var limit = timeval(tv_sec: Int(timeout.components.seconds), tv_usec: Int(timeout.components.attoseconds / 1_000_000_000_000))
            setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
            let connected = address.withSockaddr { connect(fd, $0, $1) }
            guard connected == 0 else {
                lastError = SocketError("connect \(target)")
                continue
            }
            return try Self.exchange(fd, host: target.description, path: path)
        }
        throw lastError
    }

    static func exchange(_ fd: Int32, host: String, path: String) throws(SocketError) -> Response {
        let request = "GET \(path) HTTP/1.1\r\nHost: \(host)\r\nAccept: application/json\r\nConnection: close\r\nUser-Agent: pico-status\r\n\r\n"
        var bytes = Array(request.utf8)[...]
        while !bytes.isEmpty {
            let sent = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if sent < 0 {
                if errno == EINTR { continue }
                throw SocketError("send")
            }
            bytes = bytes.dropFirst(sent)
        }
        var decoder = HTTP1ResponseDecoder()
        decoder.expectResponse(to: "GET")
        var status: Int?
        var body: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        var closed = false
        while true {
            do {
                while let part = try decoder.next() {
                    switch part {
                    case .head(let head):
                        if !head.isInterim { status = head.status }
                    case .body(let piece):
                        body += piece
                        guard body.count <= Self.maxBody else { throw SocketError("response body over \(Self.maxBody) bytes", code: 0) }
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
            let count = recv(fd, &buffer, buffer.count, 0)
            if count < 0 {
                if errno == EINTR { continue }
                throw SocketError(errno == EAGAIN || errno == EWOULDBLOCK ? "receive: timed out" : "receive")
            }
            if count == 0 {
                closed = true
                decoder.feedEOF()
            } else {
                buffer.withUnsafeBytes { decoder.feed(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
            }
        }
    }
}
