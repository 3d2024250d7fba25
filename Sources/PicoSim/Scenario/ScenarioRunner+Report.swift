import PicoModel

// ==== ---- Turning a finished world into a report -----------------------------------------------------

extension ScenarioRunner {
    /// Lifecycle changes and the first sighting of each death, leave and rebirth.
    static func membershipNotes(_ world: SimWorld) -> [(Instant, String)] {
        var notes: [(Instant, String)] = []
        var seen: Set<String> = []
        for (time, pod, event) in world.events {
            let podName = world.pods[pod].name
            switch event {
            case .phaseChanged(_, let to) where to == .ready || to == .draining || to == .left:
                notes.append((time, "\(podName) is \(to)"))
            case .membership(.memberStatusChanged(let uid, let name, _, let to)) where to.status.isTerminal:
                if seen.insert("\(uid)-\(to.status)").inserted { notes.append((time, "\(name) \(to.status) (first seen by \(podName))")) }
            case .membership(.reborn(_, let new)):
                notes.append((time, "\(podName) was declared dead and rejoined as \(new)"))
            default:
                continue
            }
        }
        return notes
    }

    static func figures(_ world: SimWorld, scenario: Scenario, trafficStart: Instant?, membership: MembershipFigures) -> [(String, String)] {
        let tally = world.traffic.tally
        let seconds = max(scenario.duration.secondsDouble, 0.001)
        let bytes = world.bytesSent.reduce(0, +)
        let datagrams = world.datagramsSent.reduce(0, +)
        var figures: [(String, String)] = [
            (
                "requests",
                "\(world.traffic.history.count) sent: \(tally.ok) ok, \(tally.failed) failed, \(tally.unknown) unknown, "
                    + "\(tally.pending) pending (still waiting for an answer when the run ended; not a failure)"
            ),
            ("gossip", "\(datagrams) datagrams, \(Self.format(Double(bytes) / Double(max(1, world.pods.count)) / seconds)) bytes per pod per second"),
        ]
        if let trafficStart { figures.append(("traffic started", "at \(ReportTime.text(trafficStart))")) }
        let detected = membership.crashes.filter { $0.firstSuspicion != nil && !$0.known.isEmpty }
        if !detected.isEmpty {
            let first = detected.map { $0.known.min() ?? 0 }
            let every = detected.map { $0.known.max() ?? 0 }
            let known = detected.flatMap(\.known)
            figures.append((
                "crash detection",
                "first node \(ReportTime.text(seconds: Self.mean(first))), every node \(ReportTime.text(seconds: Self.mean(every))) "
                    + "(mean of \(detected.count)); known dead at each pod after \(ReportTime.text(seconds: Self.mean(known))) on average"))
        }
        if !membership.joins.isEmpty {
            figures.append((
                "join convergence",
                "known by every running pod \(ReportTime.text(seconds: Self.mean(membership.joins))) after start "
                    + "(mean of \(membership.joins.count), worst \(ReportTime.text(seconds: membership.joins.max() ?? 0)))"))
        }
        if membership.falseSuspicions > 0 || membership.falseDeathDeclarations > 0 {
            figures.append((
                "false suspicions",
                "\(membership.falseSuspicions) of running members, \(membership.refutations) refutations, "
                    + "\(membership.falselyDeclaredUIDs) running members declared dead"))
        }
        let forwarded = world.traffic.history.filter { $0.path.count == 2 }.count
        figures.append(("forwarded once", "\(forwarded) requests"))
        if let streams = Self.streamFigure(world) { figures.append(("TCP connections", streams)) }
        if let tunnels = Self.tunnelFigure(world) { figures.append(("tunnels", tunnels)) }
        return figures + self.nemesisFigures(world)
    }

    /// What became of the clients' TCP connections (nil when no client opened any).
    static func streamFigure(_ world: SimWorld) -> String? {
        let streams = world.traffic.history.compactMap { record in record.stream.map { (record, $0) } }
        guard !streams.isEmpty else { return nil }
        let opened = streams.filter { $0.1.openedAt != nil }
        let completed = opened.filter { $0.0.outcome == .ok }.count
        let cuts = opened.compactMap(\.1.cut)
        let atDeadline = cuts.filter { !$0.crashed && !$0.early }.count
        let early = cuts.filter(\.early).count
        let killed = cuts.filter(\.crashed).count
        let stillOpen = opened.filter { $0.0.outcome == nil }.count
        return "\(streams.count) opened by clients, \(opened.count) answered 101: \(completed) lived their lifetime, \(stillOpen) still open at the end, "
            + "\(atDeadline) cut at a drain deadline (lifetime beyond the grace period), \(early) cut early, \(killed) cut by a killed process"
    }

    /// How tunnels were spread over the active pods at the end and how rebalancing got there
    /// (nil without agents).
    static func tunnelFigure(_ world: SimWorld) -> String? {
        guard !world.traffic.agents.isEmpty, let last = world.observations.tunnelSamples.last, last.mean > 0 else { return nil }
        let ratio = { (sample: TunnelSample) in Double(sample.counts.max() ?? 0) / max(sample.mean, 0.001) }
        // The last time the most loaded pod held more than 1.2 × the mean.
        let lastOver = world.observations.tunnelSamples.last { ratio($0) > 1.2 }
        let asked = world.traffic.rebalanceMoves.count
        let done = world.events.filter { if case .rebalanceMoveDone = $0.2 { true } else { false } }.count
        let refused = world.events.filter { if case .tunnelRejected(_, let reason) = $0.2 { reason.hasPrefix("this node holds") } else { false } }.count
        let since = lastOver.map { "over 1.2 × the mean until \(ReportTime.text($0.time))" } ?? "never over 1.2 × the mean"
        return "\(Checker.ratioText(ratio(last))) × the mean on the busiest active pod at the end (\(last.counts.map(String.init).joined(separator: "/"))), \(since); "
            + "rebalancing asked \(asked) moves, \(done) done, \(refused) replacements refused"
    }

    static func mean(_ values: [Double]) -> Double {
        values.isEmpty ? 0 : values.reduce(0, +) / Double(values.count)
    }

    static func traceHash(_ world: SimWorld) -> String {
        var hasher = world.trace
        for (time, pod, event) in world.events { hasher.combine(time, pod: pod, event) }
        return hasher.hex
    }

    static func format(_ value: Double) -> String {
        let scaled = (value * 1_000).rounded() / 1_000
        return "\(scaled)"
    }
}
