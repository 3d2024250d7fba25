import PicoModel
@testable import PicoRuntime
import Testing

@Suite("Metrics text")
struct MetricsTextTests {
    @Test func test_samples_escapeLabelValues_andClusterNodesCountEveryStatus() {
        var out = PrometheusText()
        out.family("x_total", "counter", "Things.")
        out.sample("x_total", [("node_id", "a\"b\\c")], 3)
        #expect(out.text == "# HELP x_total Things.\n# TYPE x_total counter\nx_total{node_id=\"a\\\"b\\\\c\"} 3\n")
        let text = GossipMetrics().exposition(socket: GossipSocket.Figures(), traffic: GossipTraffic(), statuses: ["joining": 1, "active": 2])
        #expect(text.contains("pico_cluster_nodes{status=\"joining\"} 1\n"))
        #expect(text.contains("pico_cluster_nodes{status=\"active\"} 2\n"))
        #expect(text.contains("pico_gossip_packets_total{direction=\"out\"} 0\n"))
    }
}
