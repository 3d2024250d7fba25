import PicoModel

/// The control loop's gossip and membership figures for `/metrics`.
struct GossipMetrics {
    /// Messages received and sent, by kind (`GossipMessage.kindName`).
    var messagesIn: [String: UInt64] = [:]
    var messagesOut: [String: UInt64] = [:]
    /// Datagrams or state exchanges refused as malformed.
    var malformed: UInt64 = 0
    /// State exchanges we opened that failed, and those peers opened.
    var exchangesFailed: UInt64 = 0
    var exchangesServed: UInt64 = 0

    /// Counts the messages of a datagram (received when `incoming`).
    mutating func count(datagram bytes: [UInt8], incoming: Bool) {
        guard let datagram = try? GossipCodec.decodeDatagram(bytes) else { return }
        for message in datagram.messages {
            if incoming {
                self.messagesIn[message.kindName, default: 0] += 1
            } else {
                self.messagesOut[message.kindName, default: 0] += 1
            }
        }
    }

    /// The exposition lines: gossip traffic, and members by status (`statuses`, this node
    /// included).
    func exposition(socket: GossipSocket.Figures, statuses: [String: Int]) -> String {
        var text = ""
        func header(_ name: String, _ type: String, _ help: String) { text += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n" }
        header("pico_cluster_nodes", "gauge", "Cluster members known to this node (itself included), by status.")
        for status in ["active", "draining", "suspect", "dead", "left"] {
            text += "pico_cluster_nodes{status=\"\(status)\"} \(statuses[status] ?? 0)\n"
        }
        header("pico_gossip_packets_total", "counter", "Gossip datagrams, by direction.")
        text += "pico_gossip_packets_total{direction=\"in\"} \(socket.packetsIn)\npico_gossip_packets_total{direction=\"out\"} \(socket.packetsOut)\n"
        header("pico_gossip_bytes_total", "counter", "Gossip datagram bytes, by direction.")
        text += "pico_gossip_bytes_total{direction=\"in\"} \(socket.bytesIn)\npico_gossip_bytes_total{direction=\"out\"} \(socket.bytesOut)\n"
        header("pico_gossip_messages_total", "counter", "Gossip messages, by direction and kind.")
        for (kind, count) in self.messagesIn.sorted(by: { $0.key < $1.key }) { text += "pico_gossip_messages_total{direction=\"in\",kind=\"\(kind)\"} \(count)\n" }
        for (kind, count) in self.messagesOut.sorted(by: { $0.key < $1.key }) { text += "pico_gossip_messages_total{direction=\"out\",kind=\"\(kind)\"} \(count)\n" }
        header("pico_gossip_send_failures_total", "counter", "Gossip datagrams that could not be sent.")
        text += "pico_gossip_send_failures_total \(socket.sendFailures)\n"
        header("pico_gossip_malformed_total", "counter", "Gossip datagrams and state exchanges refused as malformed.")
        text += "pico_gossip_malformed_total \(self.malformed)\n"
        header("pico_gossip_state_exchanges_total", "counter", "Full-state exchanges: served for peers, and ours that failed.")
        text += "pico_gossip_state_exchanges_total{result=\"served\"} \(self.exchangesServed)\npico_gossip_state_exchanges_total{result=\"failed\"} \(self.exchangesFailed)\n"
        return text
    }
}
