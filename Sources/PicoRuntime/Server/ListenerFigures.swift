/// What the node's four listeners refused and how often they backed off (control loop only).
struct ListenerFigures {
    /// The listeners, as the `listener` label names them.
    enum Port: Int, CaseIterable {
        case proxy, upstream, admin, gossip
        var label: String { ["proxy", "upstream", "admin", "gossip"][self.rawValue] }
    }

    /// Connections refused at a port's cap.
    private(set) var refused = [UInt64](repeating: 0, count: Port.allCases.count)
    /// Accept failures (out of descriptors) after which the port stopped accepting briefly.
    private(set) var backOffs = [UInt64](repeating: 0, count: Port.allCases.count)
    /// Proxy connections closed while idle to make room for a new client at the cap.
    var idleEvictions: UInt64 = 0

    mutating func countRefusal(_ port: Port) { self.refused[port.rawValue] &+= 1 }
    mutating func countBackOff(_ port: Port) { self.backOffs[port.rawValue] &+= 1 }

    /// The exposition lines; `certificateExpiry` gives each TLS port's certificate expiry.
    func exposition(certificateExpiry: [(port: Port, expiry: Int64)] = []) -> String {
        var out = PrometheusText()
        // The family is always declared; only ports with TLS have a sample.
        out.family("pico_tls_certificate_expiry_timestamp_seconds", "gauge", "When the certificate a TLS port serves expires (seconds since 1970), by listener.")
        for (port, expiry) in certificateExpiry { out.sample("pico_tls_certificate_expiry_timestamp_seconds", [("listener", port.label)], expiry) }
        out.family("pico_listener_refused_total", "counter", "Connections refused at a port's connection cap, by listener.")
        for port in Port.allCases { out.sample("pico_listener_refused_total", [("listener", port.label)], self.refused[port.rawValue]) }
        out.family("pico_listener_accept_backoffs_total", "counter", "Failed accepts (out of descriptors) after which a listener stopped accepting briefly, by listener.")
        for port in Port.allCases { out.sample("pico_listener_accept_backoffs_total", [("listener", port.label)], self.backOffs[port.rawValue]) }
        out.family("pico_proxy_idle_evictions_total", "counter", "Idle keep-alive client connections closed to make room for a new client at proxy.http.max_connections.")
        out.sample("pico_proxy_idle_evictions_total", [], self.idleEvictions)
        return out.text
    }
}
