import Glibc
import PicoModel
import Synchronization

/// One TLS role's current context (a port's server context, or a client's trust and
/// certificate), swapped whole when its PEM files change (`CertificateReload` decides when).
/// Any loop may take `current` for a new connection; connections keep the context they started
/// with, so a reload never touches an open one.
public final class TLSCredentials: Sendable {
    /// What an operator calls it in settings and logs, e.g. `proxy.tls` or `connect.tls`.
    public let name: String
    /// The files it loads, in a fixed order (fingerprinted together).
    public let paths: [String]
    private let build: @Sendable () throws(TLSError) -> TLSContext
    private let state: Mutex<(context: TLSContext, reload: CertificateReload)>

    /// Largest file read for a fingerprint (read in pieces, never held whole); a larger one
    /// counts as unreadable, so it is not reloaded. Far above any certificate or CA bundle.
    static let maxFileBytes = 64 * 1_048_576

    /// Loads the files once; throws (naming the file and why) when they do not load.
    public init(name: String, paths: [String], build: @escaping @Sendable () throws(TLSError) -> TLSContext) throws(TLSError) {
        self.name = name
        self.paths = paths
        self.build = build
        let fingerprint = Self.fingerprint(paths)
        self.state = Mutex((try build(), CertificateReload(inUse: fingerprint)))
    }

    /// A server port's credentials (`<port>.tls`).
    public static func server(_ settings: TLSServerSettings, name: String) throws(TLSError) -> TLSCredentials {
        try TLSCredentials(name: name, paths: [settings.certificatePath, settings.keyPath] + (settings.clientCAsPath.map { [$0] } ?? [])) { () throws(TLSError) in
            try TLSContext.server(settings)
        }
    }

    /// A client's credentials (roots and an optional certificate).
    public static func client(_ settings: TLSClientSettings, name: String) throws(TLSError) -> TLSCredentials {
        let paths = [settings.rootCAsPath, settings.certificatePath, settings.keyPath].compactMap { $0 }
        return try TLSCredentials(name: name, paths: paths) { () throws(TLSError) in try TLSContext.client(settings) }
    }

    /// The context new connections use.
    public var current: TLSContext { self.state.withLock { $0.context } }

    /// What a reload check did.
    public enum ReloadOutcome: Sendable {
        /// Nothing to load (unchanged, or still settling).
        case unchanged
        /// New files are in use; their certificate expires then (seconds since 1970), if any.
        case loaded(expiry: Int64?)
        /// New files did not load; the old ones stay in use.
        case refused(TLSError)
    }

    /// Reads the files and, when `CertificateReload` says so, loads them and swaps the context.
    /// Called on one thread at a time (the node's control loop, or the agent's loop).
    public func checkForReload(_ trigger: CertificateReload.Trigger) -> ReloadOutcome {
        let fingerprint = Self.fingerprint(self.paths)
        guard self.state.withLock({ $0.reload.check(fingerprint, trigger: trigger) }) else { return .unchanged }
        // A file rewritten in place while it is loaded may be caught half-written: a load that
        // fails is tried once more, and its files refused only if they held still meanwhile.
        var lastError: TLSError?
        for _ in 0..<2 {
            do {
                let context = try self.build()
                self.state.withLock {
                    $0.context = context
                    $0.reload.loaded(fingerprint)
                }
                return .loaded(expiry: context.certificateExpiry)
            } catch {
                lastError = error
                guard Self.fingerprint(self.paths) == fingerprint else { break }
            }
        }
        self.state.withLock { $0.reload.failed(fingerprint) }
        return .refused(lastError ?? TLSError("loading \(self.name)"))
    }

    /// Checks each of `all` (`checkForReload`) and logs what changed: a load at info with the
    /// new certificate's expiry, a refusal at warn with the reason.
    public static func reload(_ all: [TLSCredentials], _ trigger: CertificateReload.Trigger, log: Logger) {
        for credentials in all {
            switch credentials.checkForReload(trigger) {
            case .unchanged:
                break
            case .loaded(let expiry):
                var fields: [(String, LogValue)] = [("tls", .string(credentials.name)), ("files", .string(credentials.paths.joined(separator: ",")))]
                if let expiry { fields.append(("not_after", .int(Int(expiry)))) }
                log.info("TLS certificate files loaded", fields)
            case .refused(let error):
                log.warn("TLS certificate files not loaded; the ones in use stay", [("tls", .string(credentials.name)), ("error", .string("\(error)"))])
            }
        }
    }

    /// The fingerprint of the files' contents now.
    static func fingerprint(_ paths: [String]) -> UInt64 {
        var fingerprint = ContentFingerprint()
        var buffer = [UInt8](repeating: 0, count: 65_536)
        for path in paths {
            fingerprint.endFile(length: Self.add(path, to: &fingerprint, buffer: &buffer))
        }
        return fingerprint.value
    }

    /// Feeds a file's bytes to `fingerprint`; returns its length, or nil when it cannot be read
    /// or is over `maxFileBytes` (what was fed then still differs from a readable file's).
    static func add(_ path: String, to fingerprint: inout ContentFingerprint, buffer: inout [UInt8]) -> Int? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var length = 0
        while true {
            let count = Glibc.read(fd, &buffer, buffer.count)
            if count < 0, errno == EINTR { continue }
            guard count >= 0 else { return nil }
            if count == 0 { return length }
            buffer.withUnsafeBytes { fingerprint.add(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
            length += count
            if length > Self.maxFileBytes { return nil }
        }
    }
}
