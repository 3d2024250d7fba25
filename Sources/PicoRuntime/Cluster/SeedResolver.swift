import Glibc
import PicoModel

/// Resolves `cluster.join` entries off the event loop: IP literals, `host:port`, or DNS names
/// resolved to every A/AAAA record (a headless service's pods). An entry without a port gets the
/// node's gossip port.
enum SeedResolver {
    /// One entry as host and port (`defaultPort` when the entry names none).
    static func parse(_ entry: String, defaultPort: UInt16) -> HostPort? {
        let text = entry.trimmingCharacters(in: " \t")
        guard !text.isEmpty else { return nil }
        if let parsed = HostPort(parsing: text), !parsed.host.isEmpty { return parsed }
        if text.hasPrefix("["), text.hasSuffix("]") { return HostPort(host: String(text.dropFirst().dropLast()), port: defaultPort) }
        // A bare IPv6 literal has colons but no port; anything else with a colon is malformed.
        if text.contains(":"), HostPort(host: text, port: defaultPort).numeric() == nil { return nil }
        return HostPort(host: text, port: defaultPort)
    }

    /// Every address of every entry (blocking; call off the loop), sorted and without duplicates,
    /// or the reasons nothing resolved.
    static func resolve(_ entries: [String], defaultPort: UInt16) -> Result<[Address], StateExchangeFailure> {
        var addresses: Set<Address> = []
        var problems: [String] = []
        for entry in entries {
            guard let target = self.parse(entry, defaultPort: defaultPort) else {
                problems.append("\(entry): not a host, host:port or IP address")
                continue
            }
            do {
                for resolved in try target.resolve() {
                    let hostPort = resolved.hostPort
                    addresses.insert(Address(host: hostPort.host, port: hostPort.port))
                }
            } catch {
                problems.append("\(entry): \(error)")
            }
        }
        guard !addresses.isEmpty else { return .failure(StateExchangeFailure(problems.joined(separator: "; "))) }
        return .success(addresses.sorted())
    }
}
