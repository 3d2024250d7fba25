import Glibc
import PicoModel

/// Resolves `cluster.join` entries off the event loop: IP literals, `host:port`, or DNS names
/// resolved to every A/AAAA record (a headless service's pods). An entry without a port gets the
/// node's gossip port.
enum SeedResolver {
    /// One entry as host and port (`defaultPort` when the entry names none).
    static func parse(_ entry: String, defaultPort: UInt16) -> Address? {
        let text = entry.trimmingCharacters(in: " \t")
        guard !text.isEmpty else { return nil }
        if let parsed = Address(parsing: text), !parsed.host.isEmpty { return parsed }
        if text.hasPrefix("["), text.hasSuffix("]") { return Address(host: String(text.dropFirst().dropLast()), port: defaultPort) }
        // A bare IPv6 literal has colons but no port; anything else with a colon is malformed.
        if text.contains(":"), Address(host: text, port: defaultPort).numeric() == nil { return nil }
        return Address(host: text, port: defaultPort)
    }

    /// Every address of every entry (blocking; call off the loop), sorted and without
    /// duplicates. A name with no records (a headless service before any pod is ready) adds
    /// nothing but is not a failure, as in Piko: the node then runs alone and looks again. The
    /// result is a failure only when no entry could be looked up at all (DNS unreachable,
    /// malformed entries).
    static func resolve(_ entries: [String], defaultPort: UInt16) -> Result<[Address], StateExchangeFailure> {
        var addresses: Set<Address> = []
        var problems: [String] = []
        var answered = false
        for entry in entries {
            guard let target = self.parse(entry, defaultPort: defaultPort) else {
                problems.append("\(entry): not a host, host:port or IP address")
                continue
            }
            switch self.lookUp(target) {
            case .success(let found):
                answered = true
                addresses.formUnion(found)
            case .failure(let problem):
                problems.append("\(entry): \(problem.description)")
            }
        }
        guard answered else { return .failure(StateExchangeFailure(problems.joined(separator: "; "))) }
        return .success(addresses.sorted())
    }

    /// The A/AAAA records of one host (none when the name does not exist).
    static func lookUp(_ target: Address) -> Result<[Address], StateExchangeFailure> {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(target.host, String(target.port), &hints, &list)
        // EAI_NODATA (-5, "no address associated with name") is behind _GNU_SOURCE in netdb.h.
        if status == EAI_NONAME || status == -5 { return .success([]) }
        guard status == 0 else { return .failure(StateExchangeFailure(String(cString: gai_strerror(status)))) }
        defer { freeaddrinfo(list) }
        var found: [Address] = []
        var cursor = list
        while let entry = cursor {
            if let address = entry.pointee.ai_addr {
                found.append(SocketAddressStorage(address, length: entry.pointee.ai_addrlen).address)
            }
            cursor = entry.pointee.ai_next
        }
        return .success(found)
    }
}
