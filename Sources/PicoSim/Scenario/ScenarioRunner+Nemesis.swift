import PicoModel

// ==== ---- Report figures of a run with a nemesis --------------------------------------------------------

extension ScenarioRunner {
    /// What the nemesis sent, what the pods made of it, how long the cluster took to converge
    /// after the last attack stopped, and the largest size each table reached (nothing without a
    /// nemesis).
    static func nemesisFigures(_ world: SimWorld) -> [(String, String)] {
        let nemesis = world.nemesis
        guard let lastEnd = nemesis.windows.compactMap(\.to).max() else { return [] }
        let kinds = NemesisAttack.Kind.allCases.filter { nemesis.sent($0) > 0 }.map { "\($0.rawValue) \(nemesis.sent($0))" }
        var malformed = 0
        var forged = 0
        var reborn = 0
        var unauthenticated = 0
        for (_, _, event) in world.events {
            switch event {
            case .malformedMessage: malformed += 1
            case .unauthenticatedMessage: unauthenticated += 1
            case .membership(.forgedClaimDropped): forged += 1
            case .membership(.reborn): reborn += 1
            default: continue
            }
        }
        var figures: [(String, String)] = [
            ("nemesis", "\(nemesis.sent.reduce(0, +)) forged inputs sent (\(kinds.joined(separator: ", "))), \(nemesis.delivered) delivered"),
            ("pods under attack", "\(unauthenticated) unauthenticated inputs dropped unread, \(malformed) malformed inputs refused, \(forged) forged claims about themselves dropped, \(reborn) rebirths"),
        ]
        let membership = world.observations.membershipConvergedSince.map { "membership \(ReportTime.text(seconds: max(0, ($0 - lastEnd).secondsDouble)))" } ?? "membership never"
        let endpoints = world.observations.endpointsConvergedSince.map { "endpoint tables \(ReportTime.text(seconds: max(0, ($0 - lastEnd).secondsDouble)))" } ?? "endpoint tables never"
        figures.append(("converged after the attack", "\(membership), \(endpoints) after it stopped at \(ReportTime.text(lastEnd))"))
        let peaks = world.tablePeaks.filter { $0.size > 0 }.map { "\($0.name) \($0.size)\($0.bound.map { "/\($0)" } ?? " (no bound)")" }
        figures.append(("largest tables", peaks.joined(separator: ", ")))
        return figures
    }
}
