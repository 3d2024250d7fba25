import PicoModel

// ==== ---- What each node counts against what the world holds -----------------------------------------

extension SimWorld {
    /// The first running node whose counts differ from the exchanges the world holds on it: the
    /// requests in flight on each of its tunnels (`.routedByLoop` less `.streamFinished`) and the
    /// forwarded upgrades it relays (`.relayStarted` less `.relayEnded`). A count the node never
    /// got back keeps its drain waiting until the deadline, so a leak hides an early cut. Frozen
    /// pods and their inboxes are skipped (their accounting waits for the thaw). Nil when every
    /// count agrees.
    mutating func accountingMismatch() -> (pod: String, message: String)? {
        for pod in self.pods.indices where self.pods[pod].state == .running && self.pods[pod].inbox.isEmpty {
            let boot = self.pods[pod].boot
            var relays = 0
            var inFlight: [TunnelID: Int] = [:]
            for key in self.traffic.exchanges.keys(where: { _, exchange in exchange.pod == pod && exchange.boot == boot }) {
                guard let exchange = self.traffic.exchanges[key] else { continue }
                if exchange.relaying { relays += 1 }
                if let tunnel = exchange.countedTunnel { inFlight[tunnel, default: 0] += 1 }
            }
            guard let node = self.pods[pod].node else { continue }
            if node.relays != relays {
                return (self.pods[pod].name, "the node counts \(node.relays) relayed streams; \(relays) pass through it")
            }
            for tunnel in node.upstreams.allTunnels where tunnel.inFlight != (inFlight[tunnel.id] ?? 0) {
                return (self.pods[pod].name, "the node counts \(tunnel.inFlight) requests in flight on tunnel \(tunnel.id.rawValue); \(inFlight[tunnel.id] ?? 0) are")
            }
        }
        return nil
    }
}
