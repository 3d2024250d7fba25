import PicoModel

/// The control loop's gossip and membership figures for `/metrics`.
struct GossipMetrics {
    /// Datagrams or state exchanges refused as malformed.
    var malformed: UInt64 = 0
    /// Messages about this node dropped as forged (an incarnation above its own).
    var forged: UInt64 = 0
    /// Datagrams and state exchanges that did not authenticate under the gossip keys.
    var unauthenticated: UInt64 = 0
    /// State exchanges we opened that failed, and those peers opened.
    var exchangesFailed: UInt64 = 0
    var exchangesServed: UInt64 = 0

    /// The exposition lines: gossip traffic (`traffic`, counted by the node on plain text), and
    /// members by status (`statuses`, this node included).
    func exposition(socket: GossipSocket.Figures, traffic: GossipTraffic, statuses: [String: Int]) -> String {
        var out = PrometheusText()
        out.family("pico_cluster_nodes", "gauge", "Cluster members known to this node (itself included), by status.")
        for status in ["joining", "active", "draining", "suspect", "dead", "left"] {
            out.sample("pico_cluster_nodes", [("status", status)], statuses[status] ?? 0)
        }
        func inOut(_ name: String, _ help: String, _ inbound: UInt64, _ outbound: UInt64) {
            out.family(name, "counter", help)
            out.sample(name, [("direction", "in")], inbound)
            out.sample(name, [("direction", "out")], outbound)
        }
        inOut("pico_gossip_packets_total", "Gossip datagrams, by direction.", socket.packetsIn, socket.packetsOut)
        inOut("pico_gossip_bytes_total", "Gossip datagram bytes, by direction.", socket.bytesIn, socket.bytesOut)
        out.family("pico_gossip_messages_total", "counter", "Gossip messages, by direction and kind.")
        for (direction, counts) in [("in", traffic.received), ("out", traffic.sent)] {
            for (index, kind) in GossipTraffic.kindNames.enumerated().sorted(by: { $0.element < $1.element }) where counts[index] > 0 {
                out.sample("pico_gossip_messages_total", [("direction", direction), ("kind", kind)], counts[index])
            }
        }
        out.family("pico_gossip_send_failures_total", "counter", "Gossip datagrams that could not be sent.")
        out.sample("pico_gossip_send_failures_total", [], socket.sendFailures)
        out.family("pico_gossip_malformed_total", "counter", "Gossip datagrams and state exchanges refused as malformed.")
        out.sample("pico_gossip_malformed_total", [], self.malformed)
        out.family("pico_gossip_unauthenticated_total", "counter", "Gossip datagrams and state exchanges dropped unread: they did not authenticate under this node's gossip keys (or were plain text where only sealed gossip is taken).")
        out.sample("pico_gossip_unauthenticated_total", [], self.unauthenticated)
        out.family("pico_gossip_forged_total", "counter", "Gossip messages about this node dropped as forged (claiming an incarnation above its own).")
        out.sample("pico_gossip_forged_total", [], self.forged)
        out.family("pico_gossip_state_exchanges_total", "counter", "Full-state exchanges: served for peers, and ours that failed.")
        out.sample("pico_gossip_state_exchanges_total", [("result", "served")], self.exchangesServed)
        out.sample("pico_gossip_state_exchanges_total", [("result", "failed")], self.exchangesFailed)
        return out.text
    }
}
