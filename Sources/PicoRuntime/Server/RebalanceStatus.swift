import PicoModel

/// Rebalancing as this node sees it, for `/metrics` and `/status/cluster/tunnels`: every live
/// member's tunnels, the mean over active members, and this node's rule and moves.
struct RebalanceStatus {
    /// One live member (this node included).
    struct Row {
        var name: String
        var status: String
        var tunnels: Int
        /// Counted in the mean: alive, not suspect, not draining.
        var active: Bool
    }

    var rows: [Row]
    var mean: Double
    var state: Rebalancer.State
    var figures: RebalanceFigures
    var moving: Int

    init(_ cluster: ClusterNode, now: Instant) {
        let views = cluster.memberViews.filter { $0.isLocal || $0.state.status == .alive || $0.state.status == .suspect }
        self.rows = views.map { view in
            let status = view.isLocal ? AdminRoutes.status(of: cluster.lifecycle.phase) : view.state.status != .alive ? "\(view.state.status)" : view.draining ? "draining" : "active"
            return Row(name: view.info.name, status: status, tunnels: view.tunnels, active: status == "active")
        }
        // The census caches the membership's member lists; a copy keeps the caller's node as it is.
        var reader = cluster
        let census = reader.rebalanceCensus(now: now)
        self.mean = census.memberTotals.isEmpty ? 0 : Double(census.total) / Double(census.memberTotals.count)
        self.state = cluster.rebalancer.state
        self.figures = cluster.rebalanceFigures
        self.moving = census.moving
    }

    static func stateName(_ state: Rebalancer.State) -> String {
        switch state {
        case .off: "off"
        case .balanced: "balanced"
        case .above: "above"
        case .shedding: "shedding"
        case .cooling: "cooling"
        }
    }

    /// `[{id, status, tunnels, of_mean, rebalance}]`, this node first then by name: `of_mean` is
    /// the member's tunnels over the mean of active members (null for members not counted),
    /// `rebalance` this node's rule state (null on other rows).
    func json(localName: String) -> String {
        let ordered = self.rows.filter { $0.name == localName } + self.rows.filter { $0.name != localName }
        return "[" + ordered.map { row in
            let share = row.active && self.mean > 0 ? Self.decimal(Double(row.tunnels) / self.mean) : "null"
            let rule = row.name == localName ? JSONText.quote(Self.stateName(self.state)) : "null"
            return "{\"id\":\(JSONText.quote(row.name)),\"status\":\(JSONText.quote(row.status)),\"tunnels\":\(row.tunnels),\"of_mean\":\(share),\"rebalance\":\(rule)}"
        }.joined(separator: ",") + "]"
    }

    /// The exposition lines.
    func exposition() -> String {
        var out = PrometheusText()
        out.family("pico_cluster_member_tunnels", "gauge", "Tunnels each live member holds, as this node's endpoint table counts them (itself included).")
        for row in self.rows { out.sample("pico_cluster_member_tunnels", [("member", row.name)], row.tunnels) }
        out.family("pico_rebalance_mean_tunnels", "gauge", "Mean tunnels per active member (alive, not suspect, not draining), as rebalancing counts it.")
        out.sample("pico_rebalance_mean_tunnels", [], Self.decimal(self.mean))
        out.family("pico_rebalance_moves_total", "counter", "Agents this node asked to move because it held more than its share, and moved tunnels it released after their replacement.")
        out.sample("pico_rebalance_moves_total", [("result", "asked")], self.figures.movesAsked)
        out.sample("pico_rebalance_moves_total", [("result", "done")], self.figures.movesDone)
        out.family("pico_rebalance_moves_in_progress", "gauge", "Moves under way: tunnels asked to move and not yet released, less those whose replacement has not shown within 15 s or that carry streams after 60 s.")
        out.sample("pico_rebalance_moves_in_progress", [], self.moving)
        out.family("pico_rebalance_replacements_refused_total", "counter", "Tunnels this node refused while a member held less than the mean: replacements of moved tunnels when it was shedding or held more than the mean with settled members, and Piko agents when it was shedding or one more would take it over the threshold.")
        out.sample("pico_rebalance_replacements_refused_total", [], self.figures.tunnelsRefused)
        return out.text
    }

    /// Two decimals at most (`1.05`, `100`).
    static func decimal(_ value: Double) -> String {
        let hundredths = (value * 100).rounded()
        return hundredths == hundredths.rounded(.towardZero) && hundredths.truncatingRemainder(dividingBy: 100) == 0 ? "\(Int64(hundredths / 100))" : "\(hundredths / 100)"
    }
}
