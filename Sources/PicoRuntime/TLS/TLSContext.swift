import COpenSSL
import Glibc

/// The lowest TLS version a port accepts.
public enum TLSMinimumVersion: String, Hashable, Sendable, CaseIterable {
    case tls12 = "1.2"
    case tls13 = "1.3"
}

/// What a TLS server port needs: its certificate chain and key (PEM files) and, for mTLS, the
/// CAs whose client certificates it accepts.
public struct TLSServerSettings: Hashable, Sendable {
    /// The certificate chain, leaf first (PEM).
    public var certificatePath: String
    /// The leaf's private key (PEM).
    public var keyPath: String
    /// When set, clients must present a certificate issued by one of these CAs (PEM bundle).
    public var clientCAsPath: String?
    /// TLS 1.2 unless 1.3 is asked for.
    public var minimumVersion: TLSMinimumVersion
    /// With client CAs: true refuses a client without a certificate in the handshake; false
    /// lets it finish (the session's `peerCertificateVerified` tells), while a certificate that is
    /// sent is still verified.
    public var requireClientCertificate: Bool

    public init(certificatePath: String, keyPath: String, clientCAsPath: String? = nil, minimumVersion: TLSMinimumVersion = .tls12,
                requireClientCertificate: Bool = true) {
        self.certificatePath = certificatePath
        self.keyPath = keyPath
        self.clientCAsPath = clientCAsPath
        self.minimumVersion = minimumVersion
        self.requireClientCertificate = requireClientCertificate
    }
}

/// What a TLS client needs: whom to trust and, for mTLS, what to present.
public struct TLSClientSettings: Hashable, Sendable {
    /// The CAs to trust (PEM bundle); nil: the system's roots.
    public var rootCAsPath: String?
    /// A client certificate chain and its key (PEM), presented when the server asks.
    public var certificatePath: String?
    public var keyPath: String?

    public init(rootCAsPath: String? = nil, certificatePath: String? = nil, keyPath: String? = nil) {
        self.rootCAsPath = rootCAsPath
        self.certificatePath = certificatePath
        self.keyPath = keyPath
    }
}

/// One configured OpenSSL context (`SSL_CTX`), from which each connection's `TLSSession` is
/// made. Built whole or not at all: a file that does not load throws a `TLSError` naming it,
/// and nothing half-configured is used. Immutable once built, so sessions may be made from it on
/// any thread (OpenSSL's contexts are safe for that once configured).
public final class TLSContext: @unchecked Sendable {
    let raw: OpaquePointer
    /// True for a server context.
    public let isServer: Bool
    /// When its own certificate (a server's, or a client's for mTLS) expires, in seconds since
    /// 1970; nil without one.
    public private(set) var certificateExpiry: Int64?

    /// Forward secrecy only, AEAD only (TLS 1.2; TLS 1.3's suites are all of that kind):
    /// Mozilla's "intermediate" list without the finite-field DHE suites.
    static let tls12Ciphers = [
        "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
    ].joined(separator: ":")
    static let groups = "X25519:P-256:P-384"

    private init(raw: OpaquePointer, isServer: Bool) {
        self.raw = raw
        self.isServer = isServer
    }

    deinit { SSL_CTX_free(self.raw) }

    /// A server context: `settings`' certificate and key, the version floor, the cipher list,
    /// ALPN `http/1.1`, session resumption (tickets and a session cache), no renegotiation, no
    /// compression, no 0-RTT; with client CAs, a client certificate is required and verified.
    public static func server(_ settings: TLSServerSettings) throws(TLSError) -> TLSContext {
        guard let raw = SSL_CTX_new(TLS_server_method()) else { throw TLSError.fromQueue("creating a TLS server context") }
        let context = TLSContext(raw: raw, isServer: true)
        try context.applyCommon(minimum: settings.minimumVersion)
        guard SSL_CTX_use_certificate_chain_file(raw, settings.certificatePath) == 1 else {
            throw TLSError.fromQueue("loading the certificate chain \(settings.certificatePath)")
        }
        guard SSL_CTX_use_PrivateKey_file(raw, settings.keyPath, SSL_FILETYPE_PEM) == 1 else {
            throw TLSError.fromQueue("loading the private key \(settings.keyPath)")
        }
        guard SSL_CTX_check_private_key(raw) == 1 else {
            throw TLSError.fromQueue("the private key \(settings.keyPath) does not match the certificate \(settings.certificatePath)")
        }
        context.certificateExpiry = context.readExpiry()
        // Resumed sessions must belong to this kind of port (required with client certificates).
        let sessionContext: [UInt8] = Array("pico".utf8)
        _ = SSL_CTX_set_session_id_context(raw, sessionContext, UInt32(sessionContext.count))
        _ = pico_SSL_CTX_set_session_cache_mode(raw, Int(SSL_SESS_CACHE_SERVER))
        _ = SSL_CTX_set_max_early_data(raw, 0)
        SSL_CTX_set_alpn_select_cb(raw, { _, out, outLength, offered, offeredLength, _ in
            TLSContext.selectHTTP11(out: out, outLength: outLength, offered: offered, offeredLength: offeredLength)
        }, nil)
        if let caPath = settings.clientCAsPath {
            guard SSL_CTX_load_verify_locations(raw, caPath, nil) == 1 else {
                throw TLSError.fromQueue("loading the client CAs \(caPath)")
            }
            guard let names = SSL_load_client_CA_file(caPath) else { throw TLSError.fromQueue("reading the client CA names in \(caPath)") }
            SSL_CTX_set_client_CA_list(raw, names)
            SSL_CTX_set_verify(raw, settings.requireClientCertificate ? SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT : SSL_VERIFY_PEER, nil)
        }
        return context
    }

    /// A client context: verifies the server's chain against `settings`' roots (the system's by
    /// default) and presents a client certificate when one is configured. Each session checks
    /// the server's name or address (`TLSSession(client:)`).
    public static func client(_ settings: TLSClientSettings) throws(TLSError) -> TLSContext {
        guard let raw = SSL_CTX_new(TLS_client_method()) else { throw TLSError.fromQueue("creating a TLS client context") }
        let context = TLSContext(raw: raw, isServer: false)
        try context.applyCommon(minimum: .tls12)
        if let roots = settings.rootCAsPath {
            guard SSL_CTX_load_verify_locations(raw, roots, nil) == 1 else { throw TLSError.fromQueue("loading the root CAs \(roots)") }
        } else {
            guard SSL_CTX_set_default_verify_paths(raw) == 1 else { throw TLSError.fromQueue("loading the system's root CAs") }
        }
        SSL_CTX_set_verify(raw, SSL_VERIFY_PEER, nil)
        switch (settings.certificatePath, settings.keyPath) {
        case (let certificate?, let key?):
            guard SSL_CTX_use_certificate_chain_file(raw, certificate) == 1 else {
                throw TLSError.fromQueue("loading the client certificate chain \(certificate)")
            }
            guard SSL_CTX_use_PrivateKey_file(raw, key, SSL_FILETYPE_PEM) == 1 else { throw TLSError.fromQueue("loading the client key \(key)") }
            guard SSL_CTX_check_private_key(raw) == 1 else {
                throw TLSError.fromQueue("the client key \(key) does not match the certificate \(certificate)")
            }
            context.certificateExpiry = context.readExpiry()
        case (nil, nil):
            break
        default:
            throw TLSError("a client certificate needs both a certificate and a key file")
        }
        let protocols: [UInt8] = [8] + Array("http/1.1".utf8)
        guard SSL_CTX_set_alpn_protos(raw, protocols, UInt32(protocols.count)) == 0 else { throw TLSError.fromQueue("setting ALPN") }
        return context
    }

    /// The loaded leaf certificate's notAfter, in seconds since 1970.
    private func readExpiry() -> Int64? {
        guard let certificate = SSL_CTX_get0_certificate(self.raw), let notAfter = X509_get0_notAfter(certificate) else { return nil }
        var parts = tm()
        guard ASN1_TIME_to_tm(notAfter, &parts) == 1 else { return nil }
        return Int64(timegm(&parts))
    }

    private func applyCommon(minimum: TLSMinimumVersion) throws(TLSError) {
        let floor = minimum == .tls13 ? TLS1_3_VERSION : TLS1_2_VERSION
        guard pico_SSL_CTX_set_min_proto_version(self.raw, Int32(floor)) == 1 else { throw TLSError.fromQueue("setting the TLS version floor") }
        guard SSL_CTX_set_cipher_list(self.raw, Self.tls12Ciphers) == 1 else { throw TLSError.fromQueue("setting the TLS 1.2 ciphers") }
        guard pico_SSL_CTX_set1_groups_list(self.raw, Self.groups) == 1 else { throw TLSError.fromQueue("setting the key exchange groups") }
        _ = SSL_CTX_set_options(self.raw, pico_SSL_OP_NO_RENEGOTIATION | pico_SSL_OP_NO_COMPRESSION
            | pico_SSL_OP_CIPHER_SERVER_PREFERENCE | pico_SSL_OP_IGNORE_UNEXPECTED_EOF)
        // An idle connection gives its read and write buffers back (about 34 KiB each).
        _ = pico_SSL_CTX_set_mode(self.raw, Int(SSL_MODE_RELEASE_BUFFERS))
    }

    /// ALPN: `http/1.1` when the client offers it; otherwise no protocol is chosen (the client
    /// decides whether to go on without one).
    private static func selectHTTP11(out: UnsafeMutablePointer<UnsafePointer<UInt8>?>?, outLength: UnsafeMutablePointer<UInt8>?,
                                     offered: UnsafePointer<UInt8>?, offeredLength: UInt32) -> Int32 {
        guard let out, let outLength, let offered else { return SSL_TLSEXT_ERR_NOACK }
        let wanted: [UInt8] = Array("http/1.1".utf8)
        var index = 0
        let total = Int(offeredLength)
        while index < total {
            let length = Int(offered[index])
            let start = index + 1
            guard length > 0, start + length <= total else { return SSL_TLSEXT_ERR_NOACK }
            if length == wanted.count, (0..<length).allSatisfy({ offered[start + $0] == wanted[$0] }) {
                out.pointee = offered + start
                outLength.pointee = UInt8(length)
                return SSL_TLSEXT_ERR_OK
            }
            index = start + length
        }
        return SSL_TLSEXT_ERR_NOACK
    }
}
