/// The path an agent's tunnel handshake names its endpoint in: `/pico/v1/upstream/<endpoint>`,
/// or Piko's `/piko/v1/upstream/<endpoint>`, so Piko's agents and SDK dial a node unchanged.
public enum UpstreamPath {
    /// The accepted prefixes, Pico's first.
    public static let prefixes = ["/pico/v1/upstream/", "/piko/v1/upstream/"]

    /// What a handshake's path names.
    public enum Reading: Hashable, Sendable {
        /// An endpoint ID: non-empty, without `/`, at most `EndpointTable.maxEndpointLength` bytes.
        case endpoint(String)
        /// The handshake is refused with this status and message: 404 `not found` for a path
        /// under neither prefix, 400 `invalid endpoint id` for a bad ID.
        case refused(status: Int, message: String)
    }

    /// Reads `path` (the request target's path, query removed).
    public static func read(_ path: String) -> Reading {
        guard let prefix = self.prefixes.first(where: { path.hasPrefix($0) }) else { return .refused(status: 404, message: "not found") }
        let endpoint = String(path.dropFirst(prefix.count))
        guard !endpoint.isEmpty, !endpoint.contains("/"), endpoint.utf8.count <= EndpointTable.maxEndpointLength else {
            return .refused(status: 400, message: RouteRejection.invalidEndpoint.message)
        }
        return .endpoint(endpoint)
    }
}
