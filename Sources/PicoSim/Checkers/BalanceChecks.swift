import PicoModel

// ==== ---- tunnels-balanced and no-oscillation -------------------------------------------------------

extension Checker {
    /// From `within` after the last disturbance to the end, at every tunnel sample, no active pod
    /// (running and ready) holds more than `ratio` × the mean over active pods, or `floor`
    /// tunnels, whichever is more (rebalancing leaves a node under `min_conns` alone). With
    /// `moves`, rebalancing asked for at most `moves` × the fewest moves that would have brought
    /// every active pod down to the mean at the first sample after the last disturbance.
    static func tunnelsBalanced(_ world: SimWorld, within: Duration, ratio: Double, moves: Double?, floor: Int, name: String) -> CheckResult {
        if let inconclusive = Self.inconclusive(world, within: within, name: name) { return inconclusive }
        let last = world.observations.lastDisturbance
        let samples = world.observations.tunnelSamples
        for sample in samples where sample.time >= last + within {
            let counts = sample.counts
            guard let most = counts.max(), !counts.isEmpty else { continue }
            let allowed = max(ratio * sample.mean, Double(floor))
            guard Double(most) > allowed, let pod = sample.perPod.firstIndex(where: { $0 == most }) else { continue }
            return .fail(
                name, at: sample.time, subject: world.pods[pod].name,
                "holds \(most) tunnels, \(Self.ratioText(Double(most) / sample.mean)) × the mean of \(Self.ratioText(sample.mean)) over \(counts.count) active pods "
                    + "(at most \(Self.ratioText(ratio)) × allowed \(DurationText.format(within)) after the last disturbance)")
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
    /// the disturbance before it (no moves once the cluster has converged), and no agent is
    /// moved twice with no disturbance between (no tunnel flows back and forth).
    static func noOscillation(_ world: SimWorld, within: Duration, name: String) -> CheckResult {
        let disturbances = world.disturbanceTimes
        var lastMove: [Int: Instant] = [:]
        for move in world.traffic.rebalanceMoves {
            let agent = world.traffic.agents[move.agent].spec.name
            let before = disturbances.last { $0 <= move.time } ?? .zero
            if move.time - before > within {
                return .fail(
                    name, at: move.time, subject: world.pods[move.pod].name,
                    "asked \(agent) to move \(DurationText.format(move.time - before)) after the last disturbance (bound \(DurationText.format(within)))")
            }
            if let previous = lastMove[move.agent], !disturbances.contains(where: { $0 > previous && $0 <= move.time }) {
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
