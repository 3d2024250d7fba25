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

    public init(_ context: String, reasons: [String] = []) {
        self.context = context
        self.reasons = reasons
    }

    /// `context` with the reasons OpenSSL queued on this thread (the queue is emptied, so a
    /// later error does not carry stale reasons).
    static func fromQueue(_ context: String) -> TLSError {
        TLSError(context, reasons: Self.drainQueue())
    }

    /// OpenSSL 3's mark on an error code that carries `errno` (`ERR_SYSTEM_FLAG`).
    static let systemErrorFlag: UInt = 1 << 31

    /// Empties this thread's OpenSSL error queue, returning its reasons (at most 8; the rest are
    /// dropped: a hostile peer cannot make a log line grow without bound).
    static func drainQueue() -> [String] {
        var reasons: [String] = []
        while true {
            let code = ERR_get_error()
            if code == 0 { break }
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
