import PicoModel

// ==== ---- tunnels-balanced and no-oscillation -------------------------------------------------------

extension Checker {
    /// The pods become balanced within `within` of the last disturbance, and any imbalance after
    /// that is corrected within `within` too: no stretch of tunnel samples in which some active
    /// pod (running and ready) holds more than `ratio` × the mean over active pods, and more than
    /// `floor` (rebalancing leaves a node under `min_conns` alone), lasts longer than `within`,
    /// counting the imbalance at the last disturbance from the disturbance. (Agents that reconnect
    /// late after a restart, or moved agents landing while others left, may push a pod over for a
    /// while; rebalancing must then bring it back.) With `moves`, rebalancing asked for at most
    /// `moves` × the fewest moves that would have brought every active pod down to the mean at
    /// the first sample after the last disturbance.
    static func tunnelsBalanced(_ world: SimWorld, within: Duration, ratio: Double, moves: Double?, floor: Int, name: String) -> CheckResult {
        if let inconclusive = Self.inconclusive(world, within: within, name: name) { return inconclusive }
        let last = world.observations.lastDisturbance
        let samples = world.observations.tunnelSamples
        var unbalancedSince: Instant? = last
        for sample in samples where sample.time >= last {
            let counts = sample.counts
            guard let most = counts.max(), Double(most) > max(ratio * sample.mean, Double(floor)),
                  let pod = sample.perPod.firstIndex(where: { $0 == most }) else {
                unbalancedSince = nil
                continue
            }
            let since = unbalancedSince ?? sample.time
            unbalancedSince = since
            guard sample.time - since > within else { continue }
            return .fail(
                name, at: sample.time, subject: world.pods[pod].name,
                "holds \(most) tunnels, \(Self.ratioText(Double(most) / sample.mean)) × the mean of \(Self.ratioText(sample.mean)) over \(counts.count) active pods, "
                    + "and some pod has held more than \(Self.ratioText(ratio)) × the mean since \(ReportTime.text(since)) (bound \(DurationText.format(within)))")
        }
        guard let moves else { return .pass(name) }
        let asked = world.traffic.rebalanceMoves.filter { $0.time >= last }.count
        let fewest = samples.first { $0.time >= last }?.excessOverMean ?? 0
        if Double(asked) > moves * Double(fewest) {
            return .fail(
                name, at: world.now, subject: "rebalancing",
                "asked \(asked) agents to move after the last disturbance, more than \(Self.ratioText(moves)) × the \(fewest) moves that balance the pods")
        }
        return .pass(name, note: "\(asked) moves asked after the last disturbance; \(fewest) would balance the pods")
    }

    /// Rebalancing settles and stays settled: every move it asks for starts at most `within` after
    /// a disturbance or after a tunnel sample in which some active pod held more than `ratio` ×
    /// the mean (and more than `floor`): once the pods are balanced, moves stop (a round that
    /// began over the threshold may go on down to the mean). And no agent is moved twice with no
    /// disturbance between within `within` (no tunnel flows back and forth; a pod that drifted
    /// over later may move an agent again).
    static func noOscillation(_ world: SimWorld, within: Duration, ratio: Double, floor: Int, name: String) -> CheckResult {
        let disturbances = world.disturbanceTimes
        let unbalanced = world.observations.tunnelSamples.filter { sample in
            Double(sample.counts.max() ?? 0) > max(ratio * sample.mean, Double(floor))
        }.map(\.time)
        var lastMove: [Int: Instant] = [:]
        for move in world.traffic.rebalanceMoves {
            let agent = world.traffic.agents[move.agent].spec.name
            let disturbed = disturbances.last { $0 <= move.time } ?? .zero
            let over = unbalanced.last { $0 <= move.time } ?? .zero
            let reason = max(disturbed, over)
            if move.time - reason > within {
                return .fail(
                    name, at: move.time, subject: world.pods[move.pod].name,
                    "asked \(agent) to move \(DurationText.format(move.time - disturbed)) after the last disturbance and "
                        + "\(DurationText.format(move.time - over)) after a pod last held more than \(Self.ratioText(ratio)) × the mean (bound \(DurationText.format(within)))")
            }
            if let previous = lastMove[move.agent], move.time - previous <= within, !disturbances.contains(where: { $0 > previous && $0 <= move.time }) {
                return .fail(
                    name, at: move.time, subject: world.pods[move.pod].name,
                    "asked \(agent) to move again: rebalancing already moved it at \(ReportTime.text(previous)), with no disturbance since")
            }
            lastMove[move.agent] = move.time
        }
        return .pass(name)
    }

    /// `1.23`: a ratio with two decimals.
    static func ratioText(_ value: Double) -> String {
        let hundredths = Int((value * 100).rounded())
        let fraction = hundredths % 100
        return "\(hundredths / 100).\(fraction < 10 ? "0" : "")\(fraction)"
    }
}
