import COpenSSL
import Glibc

/// A TLS failure, worded for an operator: what was being done (loading which file, which
/// handshake) and OpenSSL's reasons, oldest first.
public struct TLSError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What was being done, e.g. `loading the certificate /etc/pico/tls.crt`.
    public var context: String
    /// OpenSSL's reasons (its error queue, drained), e.g. `no certificate or crl found`.
    public var reasons: [String]
    /// True when the session failed before its handshake completed: nothing written to it
    /// reached the peer.
    public var duringHandshake = false
    /// True when the peer refused our certificate (a certificate alert: unknown CA, expired,
    /// required, ...). A server decides that in the handshake, before it reads any application
    /// data, even when TLS 1.3 lets the client consider the handshake complete and send first.
    public var peerRefusedOurCertificate = false

    /// True when nothing written to the session reached the peer's application.
    public var nothingDelivered: Bool { self.duringHandshake || self.peerRefusedOurCertificate }

    /// The TLS alerts that refuse a certificate (RFC 8446 §6.2): bad_certificate,
    /// unsupported_certificate, certificate_revoked, certificate_expired, certificate_unknown,
    /// unknown_ca, access_denied, certificate_required.
    static let certificateAlerts: Set<UInt> = [42, 43, 44, 45, 46, 48, 49, 116]
    /// OpenSSL's reason code for an alert the peer sent is the alert plus this (`SSL_AD_REASON_OFFSET`).
    static let alertReasonOffset: UInt = 1_000

    public init(_ context: String, reasons: [String] = []) {
        self.context = context
        self.reasons = reasons
    }

    /// `context` with the reasons OpenSSL queued on this thread (the queue is emptied, so a
    /// later error does not carry stale reasons).
    static func fromQueue(_ context: String) -> TLSError {
        var refused = false
        let reasons = Self.drainQueue { code in
            let reason = code & 0x7F_FFFF  // ERR_REASON_MASK
            if code & Self.systemErrorFlag == 0, reason >= Self.alertReasonOffset,
               Self.certificateAlerts.contains(reason - Self.alertReasonOffset) {
                refused = true
            }
        }
        var error = TLSError(context, reasons: reasons)
        error.peerRefusedOurCertificate = refused
        return error
    }

    /// OpenSSL 3's mark on an error code that carries `errno` (`ERR_SYSTEM_FLAG`).
    static let systemErrorFlag: UInt = 1 << 31

    /// Empties this thread's OpenSSL error queue, returning its reasons (at most 8; the rest are
    /// dropped: a hostile peer cannot make a log line grow without bound).
    static func drainQueue(_ inspect: (UInt) -> Void = { _ in }) -> [String] {
        var reasons: [String] = []
        while true {
            let code = ERR_get_error()
            if code == 0 { break }
            inspect(code)
            guard reasons.count < 8 else { continue }
            let reason: String
            if code & Self.systemErrorFlag != 0 {
                // A failed system call (ERR_SYSTEM_ERROR): the low bits are errno.
                reason = String(cString: strerror(Int32(truncatingIfNeeded: code & (Self.systemErrorFlag - 1))))
            } else if let text = ERR_reason_error_string(code) {
                reason = String(cString: text)
            } else {
                reason = "error \(code)"
            }
            if reasons.last != reason { reasons.append(reason) }
        }
        return reasons
    }

    public var description: String {
        self.reasons.isEmpty ? self.context : "\(self.context): \(self.reasons.joined(separator: "; "))"
    }
}
