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

    /// The fingerprint of whole files (nil: a file that could not be read).
    public static func fingerprint(_ files: [[UInt8]?]) -> UInt64 {
        var fingerprint = ContentFingerprint()
        for file in files {
            if let file {
                file.withUnsafeBytes { fingerprint.add($0) }
                fingerprint.endFile(length: file.count)
            } else {
                fingerprint.endFile(length: nil)
            }
        }
        return fingerprint.value
    }
}

/// FNV-1a over files' contents, fed piece by piece (a file need not be held whole), each file
/// followed by its length (or a mark for a file that could not be read), so moving bytes from
/// one file to the next changes the value.
public struct ContentFingerprint: Hashable, Sendable {
    public private(set) var value: UInt64 = 0xcbf2_9ce4_8422_2325

    public init() {}

    private mutating func mix(_ byte: UInt8) {
        self.value ^= UInt64(byte)
        self.value = self.value &* 0x0000_0100_0000_01b3
    }

    /// The next piece of the current file.
    public mutating func add(_ bytes: UnsafeRawBufferPointer) {
        for byte in bytes { self.mix(byte) }
    }

    /// The current file ended after `length` bytes (nil: it could not be read).
    public mutating func endFile(length: Int?) {
        let mark = length.map { UInt64(truncatingIfNeeded: $0) } ?? UInt64.max
        for shift in stride(from: 0, to: 64, by: 8) { self.mix(UInt8(truncatingIfNeeded: mark >> UInt64(shift))) }
    }
}
