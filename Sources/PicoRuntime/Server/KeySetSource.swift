import PicoModel

/// A port's or a tenant's JSON Web Key Set (`<port>.auth.jwks.*`, `upstream.tenants[i].auth.jwks.*`): fetched at start (the node does not start
/// without it), then again every `cache_ttl` and when a token names an unknown `kid` (at most
/// every `unknownKeyInterval`), each fetch on a thread of its own, bounded in size and time. A
/// fetch that fails, or yields no usable key, keeps the keys in use and is logged. The node's
/// control loop owns it.
final class KeySetSource {
    /// The least time between fetches asked for by unknown `kid`s (a flood of made-up `kid`s
    /// costs one fetch per interval).
    static let unknownKeyInterval: Duration = .seconds(10)

    /// Whose keys: the settings' prefix (`proxy`, `upstream.tenants[0]`), in errors and logs.
    let label: String
    let location: JWKSLocation
    let holder: VerifierHolder
    private let rules: TokenRules
    private let timeout: Duration
    let cacheTTL: Duration
    private let tls: TLSContext?
    private var fetching = false
    private var lastFetch: Instant
    /// Called on the control loop after a fetched set replaced the keys.
    var onLoaded: (() -> Void)?

    /// Fetches the set now (blocking: the node is starting); throws naming the setting.
    init(label: String, location: JWKSLocation, settings: PortAuthSettings, log: Logger) throws(ConfigError) {
        self.label = label
        self.location = location
        self.rules = settings.rules
        self.timeout = settings.jwksTimeout
        self.cacheTTL = settings.jwksCacheTTL
        if case .https = location {
            do {
                self.tls = try TLSContext.client(TLSClientSettings(rootCAsPath: settings.jwksRootCAs))
            } catch {
                throw ConfigError("\(label).auth.jwks.root_cas: \(error)")
            }
        } else {
            self.tls = nil
        }
        self.lastFetch = MonotonicClock.now()
        switch Self.fetch(location, timeout: self.timeout, tls: self.tls, rules: self.rules) {
        case .success(let (verifier, skipped)):
            self.holder = VerifierHolder(verifier)
            Self.logLoaded(verifier, skipped: skipped, label: label, location: location, log: log)
        case .failure(let error):
            throw ConfigError("\(label).auth.jwks.endpoint \(location): \(error.message)")
        }
    }

    /// Starts a fetch on a thread of its own unless one runs, or (`unknownKey`) one started
    /// within `unknownKeyInterval`; `completion` runs on `loop` with the outcome logged.
    func refresh(unknownKey: Bool, loop: EventLoop, log: Logger) {
        let now = MonotonicClock.now()
        guard !self.fetching, !unknownKey || now - self.lastFetch >= Self.unknownKeyInterval else { return }
        self.fetching = true
        self.lastFetch = now
        let (location, timeout, tls, rules, label, holder) = (self.location, self.timeout, self.tls, self.rules, self.label, self.holder)
        nonisolated(unsafe) let source = self
        let work: @Sendable () -> Void = {
            let outcome = Self.fetch(location, timeout: timeout, tls: tls, rules: rules)
            loop.execute {
                source.fetching = false
                switch outcome {
                case .success(let (verifier, skipped)):
                    holder.replace(with: verifier)
                    Self.logLoaded(verifier, skipped: skipped, label: label, location: location, log: log)
                    source.onLoaded?()
                case .failure(let error):
                    log.warn("key set not fetched; the keys in use stay", [("auth", .string(label)), ("jwks", .string("\(location)")), ("error", .string(error.message))])
                }
            }
        }
        do { try Threads.detach(work) } catch {
            self.fetching = false
            log.warn("key set not fetched; the keys in use stay", [("auth", .string(label)), ("error", .string("\(error)"))])
        }
    }

    private static func logLoaded(_ verifier: TokenVerifier, skipped: [String], label: String, location: JWKSLocation, log: Logger) {
        var fields: [(String, LogValue)] = [("auth", .string(label)), ("jwks", .string("\(location)")), ("keys", .int(verifier.keys.count)),
                                            ("kids", .string(verifier.keys.compactMap(\.info.keyID).map { TokenText.printable($0) }.joined(separator: ",")))]
        if !skipped.isEmpty { fields.append(("skipped", .string(skipped.prefix(8).joined(separator: "; ")))) }
        log.info("key set loaded", fields)
    }

    /// One fetch and parse: the verifier of the set's usable keys and the reasons others were
    /// skipped, or why there is none.
    static func fetch(_ location: JWKSLocation, timeout: Duration, tls: TLSContext?, rules: TokenRules) -> Result<(TokenVerifier, [String]), ConfigError> {
        let bytes: [UInt8]
        do {
            switch location {
            case .file(let path):
                bytes = try SmallFile.read(path, limit: JWKSet.maxBytes)
            case .https(let address, let path):
                let response = try AdminClient.get(address, path: path, timeout: timeout, tls: tls, maxBody: JWKSet.maxBytes)
                guard response.status == 200 else { return .failure(ConfigError("the server answered \(response.status)")) }
                bytes = Array(response.body.utf8)
            }
        } catch {
            return .failure(ConfigError("\(error)"))
        }
        let contents: JWKSet.Contents
        switch JWKSet.parse(bytes) {
        case .success(let parsed): contents = parsed
        case .failure(let refusal): return .failure(ConfigError(refusal.message))
        }
        var keys: [VerificationKey] = []
        var skipped = contents.skipped
        for key in contents.keys {
            do {
                keys.append(try VerificationKey(jwk: key, describing: "kid \(key.keyID.map(TokenText.printable) ?? "none")"))
            } catch {
                skipped.append("\(error)")
            }
        }
        guard !keys.isEmpty else {
            return .failure(ConfigError("no usable key\(skipped.isEmpty ? "" : " (\(skipped.prefix(4).joined(separator: "; ")))")"))
        }
        return .success((TokenVerifier(keys: keys, rules: rules), skipped))
    }
}

