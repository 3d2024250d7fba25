/// An agent's check of the PROXY protocol v2 header (`ProxyProtocolV2`) at the start of a TCP
/// stream whose listener asked for it: the stream's first bytes are held until they make a whole
/// valid header, and go to the service only once it accepted the connection, so a service that
/// expects the header never reads a connection without it. Pure; bounded by
/// `ProxyProtocolV2.maxHeaderBytes`.
///
/// Rules: a malformed header, or client bytes after the header before the service accepted (the
/// node sends them only after its 101, which waits for the acceptance), refuse the stream.
public struct ProxyHeaderCheck: Hashable, Sendable {
    /// Where the check is.
    public enum State: Hashable, Sendable {
        /// The header is not whole yet: the bytes so far.
        case reading([UInt8])
        /// The header (and any bytes after it) is whole and valid, and waits for the service.
        case checked([UInt8])
        /// The header went to the service: the stream's bytes flow unchecked.
        case passed
        /// The stream carries no valid header: why.
        case refused(String)
    }

    /// What the shell does with the held bytes.
    public enum Verdict: Hashable, Sendable {
        /// Nothing yet.
        case wait
        /// Write these bytes to the service first (the header, and what followed it).
        case pass([UInt8])
        /// Reset the stream: it carries no valid header (the reason, for the log).
        case refuse(String)
    }

    /// Where it is.
    public private(set) var state: State = .reading([])

    /// A check that has seen nothing.
    public init() {}

    /// True once the header went to the service.
    public var isPassed: Bool { self.state == .passed }

    /// Stream bytes arrived; `serviceAccepted` when the service accepted the connection already.
    public mutating func received(_ bytes: some Collection<UInt8>, serviceAccepted: Bool) -> Verdict {
        guard case .reading(var held) = self.state else { return .wait }
        held += bytes
        switch ProxyProtocolV2.read(held) {
        case .needMore:
            self.state = .reading(held)
            return .wait
        case .header(let length):
            guard held.count == length || serviceAccepted else {
                return self.refuse("bytes after the PROXY protocol header before the service accepted")
            }
            self.state = .checked(held)
            return serviceAccepted ? self.serviceAccepted() : .wait
        case .invalid(let reason):
            return self.refuse(reason)
        }
    }

    /// The service accepted the connection: the checked header goes to it now (or, when it has not
    /// arrived whole yet, as soon as it does).
    public mutating func serviceAccepted() -> Verdict {
        guard case .checked(let held) = self.state else { return .wait }
        self.state = .passed
        return .pass(held)
    }

    private mutating func refuse(_ reason: String) -> Verdict {
        self.state = .refused(reason)
        return .refuse(reason)
    }
}
