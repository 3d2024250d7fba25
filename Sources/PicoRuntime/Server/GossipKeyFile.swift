import PicoModel

/// `cluster.gossip.secret_keys_file`: the gossip key ring read from a file, and read again as
/// the file changes (the same rule as certificate files: a periodic check loads new contents
/// once two checks in a row see them; SIGHUP loads at once; a broken file keeps the keys in use
/// and is logged once). On the control loop only.
final class GossipKeyFile {
    /// The largest key file read (4 keys need under 300 bytes; comments are welcome).
    static let maxBytes = 64 * 1_024

    /// What a check did.
    enum Outcome: Equatable {
        case unchanged
        case loaded(GossipKeyring)
        case refused(String)
    }

    let path: String
    private(set) var keyring: GossipKeyring
    private var reload: CertificateReload

    /// Reads the file now; throws naming the setting, the file and the problem.
    init(path: String) throws(ConfigError) {
        self.path = path
        let bytes: [UInt8]
        do { bytes = try SmallFile.read(path, limit: Self.maxBytes) } catch { throw ConfigError("cluster.gossip.secret_keys_file: \(error)") }
        switch GossipKeyring.parse(String(decoding: bytes, as: UTF8.self)) {
        case .success(let keyring): self.keyring = keyring
        case .failure(let error): throw ConfigError("cluster.gossip.secret_keys_file \(path): \(error)")
        }
        self.reload = CertificateReload(inUse: CertificateReload.fingerprint([bytes]))
    }

    /// Checks the file for new contents (`trigger` as for certificates).
    func check(_ trigger: CertificateReload.Trigger) -> Outcome {
        let bytes = try? SmallFile.read(self.path, limit: Self.maxBytes)
        let fingerprint = CertificateReload.fingerprint([bytes])
        guard self.reload.check(fingerprint, trigger: trigger) else { return .unchanged }
        guard let bytes else {
            self.reload.failed(fingerprint)
            return .refused("cannot read \(self.path)")
        }
        switch GossipKeyring.parse(String(decoding: bytes, as: UTF8.self)) {
        case .success(let keyring):
            self.reload.loaded(fingerprint)
            guard keyring != self.keyring else { return .unchanged }
            self.keyring = keyring
            return .loaded(keyring)
        case .failure(let error):
            self.reload.failed(fingerprint)
            return .refused("\(self.path): \(error)")
        }
    }
}
