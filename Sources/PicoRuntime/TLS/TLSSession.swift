import COpenSSL
import PicoModel

/// One connection's TLS, driven byte-in/byte-out by its owner over memory BIOs: OpenSSL never
/// touches a socket. The owner feeds what it read (`receive`), writes what `takeOutput` gives,
/// and hands plaintext to `send`. Not thread-safe: one loop drives it.
///
/// What callers may rely on:
/// - `receive` delivers whole records' plaintext until its callback says stop; the rest (and a
///   partial record) waits inside, for a later `receive` (with no new bytes, to only deliver
///   it): `hasBufferedInput` says when some waits. It moves with the session.
/// - Plaintext sent before the handshake completes is kept (bounded by the caller's write
///   bounds) and encrypted once it does.
/// - A failed handshake or a corrupt record throws a `TLSError` naming why (OpenSSL's reasons,
///   and for a refused certificate the verification result); the session is then `failed` and
///   takes nothing more.
/// - A peer's `close_notify` ends input (`receive` returns `.peerClosed`); a peer that closes
///   without one is treated the same (`SSL_OP_IGNORE_UNEXPECTED_EOF`: HTTP framing, not TLS,
///   tells a cut answer).
public final class TLSSession {
    /// Where the session is.
    public enum State: Hashable, Sendable {
        case handshaking
        case established
        /// Our `close_notify` is queued: nothing more may be sent.
        case closing
        case failed
    }

    /// What one `receive` found besides plaintext.
    public enum Progress: Hashable, Sendable {
        /// More input is needed (or the handshake just completed and plaintext may follow).
        case open
        /// The peer sent `close_notify`.
        case peerClosed
    }

    public private(set) var state: State = .handshaking
    private let ssl: OpaquePointer
    /// Network to OpenSSL.
    private let input: OpaquePointer
    /// OpenSSL to network.
    private let output: OpaquePointer
    private var pendingPlaintext: [UInt8] = []
    /// What may be written before the handshake completes (a request head, an upgrade request).
    public static let maxPendingPlaintext = 256 * 1_024
    /// Who the peer is, for log lines (an address, or the server name dialled).
    public let peerDescription: String

    /// A server session of `context` (which must be a server context).
    public convenience init(server context: TLSContext, peer: String) throws(TLSError) {
        precondition(context.isServer, "a server session needs a server context")
        try self.init(context: context, peer: peer)
        SSL_set_accept_state(self.ssl)
    }

    /// A client session of `context` that sends SNI `serverName` (a DNS name; none for an
    /// address) and checks the server's certificate against `expectedName` (a DNS name or an IP
    /// address). The ClientHello is queued at once: call `takeOutput`.
    public convenience init(client context: TLSContext, serverName: String?, expectedName: String, peer: String) throws(TLSError) {
        precondition(!context.isServer, "a client session needs a client context")
        let serverName = serverName.map(TLSNames.withoutTrailingDot)
        let expectedName = TLSNames.withoutTrailingDot(expectedName)
        try self.init(context: context, peer: peer)
        SSL_set_connect_state(self.ssl)
        if let serverName, TLSNames.isDNSName(serverName) {
            guard pico_SSL_set_tlsext_host_name(self.ssl, serverName) == 1 else { throw TLSError.fromQueue("setting SNI \(serverName)") }
        }
        let parameters = SSL_get0_param(self.ssl)
        if TLSNames.isIPAddress(expectedName) {
            guard X509_VERIFY_PARAM_set1_ip_asc(parameters, expectedName) == 1 else { throw TLSError.fromQueue("expecting the address \(expectedName)") }
        } else {
            guard SSL_set1_host(self.ssl, expectedName) == 1 else { throw TLSError.fromQueue("expecting the name \(expectedName)") }
        }
        try self.advanceHandshake()
    }

    private init(context: TLSContext, peer: String) throws(TLSError) {
        self.peerDescription = peer
        guard let ssl = SSL_new(context.raw) else { throw TLSError.fromQueue("creating a TLS session for \(peer)") }
        guard let input = BIO_new(BIO_s_mem()), let output = BIO_new(BIO_s_mem()) else {
            SSL_free(ssl)
            throw TLSError.fromQueue("creating TLS buffers for \(peer)")
        }
        // An empty buffer means "more later", not end of stream.
        _ = pico_BIO_set_mem_eof_return(input, -1)
        _ = pico_BIO_set_mem_eof_return(output, -1)
        SSL_set_bio(ssl, input, output)
        self.ssl = ssl
        self.input = input
        self.output = output
    }

    deinit { SSL_free(self.ssl) }

    /// Feeds bytes read from the network (none: only deliver what waits); calls `plaintext` with
    /// each piece decrypted, while it returns true.
    public func receive(_ bytes: UnsafeRawBufferPointer, plaintext: (UnsafeRawBufferPointer) -> Bool) throws(TLSError) -> Progress {
        guard self.state != .failed else { throw TLSError("TLS with \(self.peerDescription) failed already") }
        if let base = bytes.baseAddress, bytes.count > 0 {
            var offset = 0
            while offset < bytes.count {
                let chunk = Int32(clamping: bytes.count - offset)
                let written = BIO_write(self.input, base + offset, chunk)
                guard written > 0 else { return try self.fail("buffering TLS input from \(self.peerDescription)") }
                offset += Int(written)
            }
        }
        if self.state == .handshaking {
            try self.advanceHandshake()
            guard self.state != .handshaking else { return .open }
        }
        return try withUnsafeTemporaryAllocation(byteCount: 16_384, alignment: 1) { (scratch) throws(TLSError) -> Progress in
            while true {
                let count = SSL_read(self.ssl, scratch.baseAddress, Int32(scratch.count))
                if count > 0 {
                    guard plaintext(UnsafeRawBufferPointer(rebasing: scratch[0..<Int(count)])) else { return .open }
                    continue
                }
                switch SSL_get_error(self.ssl, count) {
                case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE:
                    return .open
                case SSL_ERROR_ZERO_RETURN:
                    return .peerClosed
                default:
                    return try self.fail("reading TLS from \(self.peerDescription)")
                }
            }
        }
    }

    /// Encrypts `bytes` for the peer (kept until the handshake completes).
    public func send(_ bytes: UnsafeRawBufferPointer) throws(TLSError) {
        switch self.state {
        case .handshaking:
            guard self.pendingPlaintext.count + bytes.count <= Self.maxPendingPlaintext else {
                throw TLSError("TLS with \(self.peerDescription): more than \(Self.maxPendingPlaintext) bytes written before the handshake completed")
            }
            self.pendingPlaintext.append(contentsOf: bytes)
        case .established:
            try self.write(bytes)
        case .closing, .failed:
            throw TLSError("TLS with \(self.peerDescription) is closed: \(bytes.count) bytes not sent")
        }
    }

    /// True when received bytes wait to be decrypted and delivered (`receive` stopped early).
    public var hasBufferedInput: Bool { BIO_ctrl_pending(self.input) > 0 || SSL_pending(self.ssl) > 0 }

    /// True when encrypted bytes wait for the network.
    public var hasOutput: Bool { BIO_ctrl_pending(self.output) > 0 }

    /// Appends the encrypted bytes waiting for the network to `buffer`.
    public func takeOutput(into buffer: inout [UInt8]) {
        let pending = Int(BIO_ctrl_pending(self.output))
        guard pending > 0 else { return }
        let start = buffer.count
        buffer.append(contentsOf: repeatElement(0, count: pending))
        let read = buffer.withUnsafeMutableBytes { BIO_read(self.output, $0.baseAddress! + start, Int32(clamping: pending)) }
        buffer.removeLast(pending - max(0, Int(read)))
    }

    /// Queues our `close_notify` (once established; a handshake that never finished just ends,
    /// and takes no more input).
    public func close() {
        guard self.state == .established else {
            if self.state == .handshaking { self.state = .failed }
            return
        }
        self.state = .closing
        _ = SSL_shutdown(self.ssl)
        ERR_clear_error()
    }

    /// The protocol version agreed, e.g. `TLSv1.3` (empty before the handshake completes).
    public var version: String {
        guard self.state != .handshaking, let name = SSL_get_version(self.ssl) else { return "" }
        return String(cString: name)
    }

    /// The ALPN protocol agreed, if any.
    public var alpn: String? {
        var data: UnsafePointer<UInt8>?
        var length: UInt32 = 0
        SSL_get0_alpn_selected(self.ssl, &data, &length)
        guard let data, length > 0 else { return nil }
        return String(decoding: UnsafeBufferPointer(start: data, count: Int(length)), as: UTF8.self)
    }

    /// True when the peer presented a certificate that verified (mTLS, or a server); a server
    /// session that asked for one without requiring it tells a client without one this way.
    public var peerCertificateVerified: Bool {
        guard let certificate = SSL_get1_peer_certificate(self.ssl) else { return false }
        X509_free(certificate)
        return SSL_get_verify_result(self.ssl) == X509_V_OK
    }

    private func advanceHandshake() throws(TLSError) {
        let result = SSL_do_handshake(self.ssl)
        if result == 1 {
            self.state = .established
            ERR_clear_error()
            if !self.pendingPlaintext.isEmpty {
                let pending = self.pendingPlaintext
                self.pendingPlaintext = []
                var failure: TLSError?
                pending.withUnsafeBytes { bytes in
                    do throws(TLSError) { try self.write(bytes) } catch { failure = error }
                }
                if let failure { throw failure }
            }
            return
        }
        switch SSL_get_error(self.ssl, result) {
        case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE:
            return
        default:
            _ = try self.fail("TLS handshake with \(self.peerDescription)")
        }
    }

    private func write(_ bytes: UnsafeRawBufferPointer) throws(TLSError) {
        guard let base = bytes.baseAddress else { return }
        var offset = 0
        while offset < bytes.count {
            let written = SSL_write(self.ssl, base + offset, Int32(clamping: bytes.count - offset))
            guard written > 0 else { return _ = try self.fail("writing TLS to \(self.peerDescription)") }
            offset += Int(written)
        }
    }

    private func fail(_ what: String) throws(TLSError) -> Progress {
        let duringHandshake = self.state == .handshaking
        self.state = .failed
        var error = TLSError.fromQueue(what)
        error.duringHandshake = duringHandshake
        let verification = SSL_get_verify_result(self.ssl)
        if verification != X509_V_OK, let reason = X509_verify_cert_error_string(Int(verification)) {
            error.reasons.append("certificate: \(String(cString: reason))")
        }
        throw error
    }
}
