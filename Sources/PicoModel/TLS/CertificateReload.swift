/// When a TLS role (a port's certificate, a client's trust and certificate) loads its PEM files
/// again, decided from fingerprints of the files' contents alone (the runtime reads the files
/// and loads them; this machine never touches a file).
///
/// Kubernetes Secrets and cert-manager replace files in place, sometimes one file at a time (the
/// certificate first, its key a moment later). So:
/// - a periodic check loads files only once the same new contents were seen on two checks in a
///   row, so a half-replaced pair is not tried (and not logged as broken) in between;
/// - SIGHUP (`Trigger.signal`) loads at once, whatever the contents: the operator asked;
/// - files that failed to load are not tried again until their contents change (or SIGHUP),
///   so a broken file is logged once, not every period, and the old certificate stays in use;
/// - files changed back to what is in use end the wait without a load.
public struct CertificateReload: Hashable, Sendable {
    /// What asked for a check.
    public enum Trigger: Hashable, Sendable {
        /// The periodic check.
        case periodic
        /// SIGHUP: load now.
        case signal
    }

    public enum State: Hashable, Sendable {
        /// The files hold what is in use.
        case steady(inUse: UInt64)
        /// The files changed to `seen` at the last check; loaded if the next check sees the same.
        case settling(inUse: UInt64, seen: UInt64)
        /// The files' contents `broken` failed to load; `inUse` stays until they change again.
        case refused(inUse: UInt64, broken: UInt64)
    }

    public private(set) var state: State

    /// A machine whose files, fingerprinted `inUse`, were just loaded.
    public init(inUse: UInt64) {
        self.state = .steady(inUse: inUse)
    }

    /// The fingerprint of the files in use.
    public var inUse: UInt64 {
        switch self.state {
        case .steady(let inUse), .settling(let inUse, _), .refused(let inUse, _): inUse
        }
    }

    /// One check: the files' contents now fingerprint `current`. True: load them now (then
    /// report `loaded` or `failed`).
    public mutating func check(_ current: UInt64, trigger: Trigger) -> Bool {
        if trigger == .signal { return true }
        switch self.state {
        case .steady(let inUse):
            if current != inUse { self.state = .settling(inUse: inUse, seen: current) }
            return false
        case .settling(let inUse, let seen):
            if current == inUse {
                self.state = .steady(inUse: inUse)
                return false
            }
            if current == seen { return true }
            self.state = .settling(inUse: inUse, seen: current)
            return false
        case .refused(let inUse, let broken):
            if current == inUse {
                self.state = .steady(inUse: inUse)
            } else if current != broken {
                self.state = .settling(inUse: inUse, seen: current)
            }
            return false
        }
    }

    /// The files fingerprinted `fingerprint` loaded and are now in use.
    public mutating func loaded(_ fingerprint: UInt64) {
        self.state = .steady(inUse: fingerprint)
    }

    /// The files fingerprinted `fingerprint` did not load; the old ones stay in use, and those
    /// contents are not tried again by a periodic check (so each failure is worth a log line:
    /// new contents, or the operator's SIGHUP).
    public mutating func failed(_ fingerprint: UInt64) {
        self.state = .refused(inUse: self.inUse, broken: fingerprint)
    }

    /// FNV-1a over each file's bytes (or nil for a file that could not be read, which counts as
    /// its own contents), each preceded by its length, so moving bytes between files changes it.
    public static func fingerprint(_ files: [[UInt8]?]) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        func mix(_ byte: UInt8) {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        for file in files {
            let length = file.map { UInt64($0.count) } ?? UInt64.max
            for shift in stride(from: 0, to: 64, by: 8) { mix(UInt8(truncatingIfNeeded: length >> UInt64(shift))) }
            for byte in file ?? [] { mix(byte) }
        }
        return hash
    }
}
