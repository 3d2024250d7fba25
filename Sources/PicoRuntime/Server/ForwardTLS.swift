import PicoModel

/// How a node dials other nodes' TLS ports (`proxy.tls.client.*`): forwards to peers' proxy
/// ports when this node's proxy port serves TLS, admin `?forward=` when its admin port does
/// (every node runs the same configuration, so a peer's port speaks what ours speaks).
struct ForwardTLS: Sendable {
    /// The roots peers are checked against, and the certificate presented to them.
    let credentials: TLSCredentials
    /// The name peers' certificates must carry (and SNI); nil: their advertised IP address.
    let serverName: String?
    /// Whether peers' proxy ports, and their admin ports, are dialled over TLS.
    let proxy: Bool
    let admin: Bool

    /// Nil when neither port serves TLS; throws when the client files do not load.
    init?(_ files: ForwardTLSFiles, proxy: Bool, admin: Bool) throws {
        guard proxy || admin else { return nil }
        do {
            self.credentials = try TLSCredentials.client(try files.clientSettings(), name: "proxy.tls.client")
        } catch let error as TLSError {
            throw ConfigError("proxy.tls.client: \(error)")
        }
        self.serverName = files.serverName
        self.proxy = proxy
        self.admin = admin
    }

    /// A client session to the node at `address`, checked against `serverName` or the address.
    func session(to address: Address) throws(TLSError) -> TLSSession {
        try TLSSession(client: self.credentials.current, serverName: self.serverName, expectedName: self.serverName ?? address.host, peer: address.description)
    }
}
