import PicoModel

// ==== ---- The checkers' rules -----------------------------------------------------------------------

extension Checker {
    /// With `excuseUnreachable`, a request whose entry pod could reach no holder of its endpoint
    /// (by the network's real state) when it arrived, or still could not when it ended, may fail:
    /// nothing reachable could serve it in time. One whose holders were cut off for a while but
    /// reachable again before its client gave up is not excused.
    static func noFailedRequests(_ world: SimWorld, windows: [ClosedRange<Instant>], excuseUnreachable: Bool, name: String) -> CheckResult {
        for record in world.traffic.history where windows.contains(where: { $0.contains(record.issuedAt) }) {
            if excuseUnreachable, record.holderReachable == false { continue }
            // A TCP connection that outlived its holder's grace period ends at the drain deadline
            // by design; `streams-not-cut-early` judges cuts.
            if let cut = record.stream?.cut, !cut.crashed, !cut.early { continue }
            switch record.outcome {
            case .failed(let reason):
                return .fail(name, at: record.finishedAt ?? record.issuedAt, subject: "request \(record.id)", "failed: \(reason) (path \(record.path))")
            case .unknown(let reason):
                return .fail(name, at: record.finishedAt ?? record.issuedAt, subject: "request \(record.id)", "outcome unknown: \(reason) (path \(record.path))")
            case .ok, nil:
                continue
            }
        }
        return .pass(name)
    }

    static func routeOnlyToLiveOwners(_ world: SimWorld, detection: Duration, name: String) -> CheckResult {
        for record in world.traffic.history {
            guard case .failed(let reason) = record.outcome, let finished = record.finishedAt else { continue }
            // A request that reached no pod (nobody behind the load balancer) was never routed by
            // Pico; no-failed-requests judges those (seeds 6588, 8466: every pod was shutting down).
            guard !record.path.isEmpty else { continue }
            // A failure is excused only shortly after a pod stopped: one on its path, or the one
            // that held the endpoint's tunnel (the agent is re-homing, the others still learning).
            // So is one during a nemesis attack or within `detection` after it: forged gossip is
            // accepted until gossip is authenticated, so requests may fail while it lasts.
            let excused = world.stops.contains { $0.time <= finished && finished <= $0.time + detection }
                || world.nemesis.attackRanges(end: world.now).contains { $0.lowerBound <= finished && finished <= $0.upperBound + detection }
            if !excused {
                return .fail(name, at: finished, subject: "request \(record.id)", "failed outside any detection window: \(reason) (path \(record.path))")
            }
        }
        return .pass(name)
    }

    static func atMostOneHop(_ world: SimWorld, name: String) -> CheckResult {
        for record in world.traffic.history where record.hops > 1 {
            return .fail(name, at: record.finishedAt ?? record.issuedAt, subject: "request \(record.id)", "forwarded \(record.hops) times in a row (path \(record.path))")
        }
        return .pass(name)
    }

    /// A bounded check is conclusive only when the run lasted until its bound after the last
    /// disturbance (TigerBeetle's liveness rule: report only when convergence was possible).
    static func inconclusive(_ world: SimWorld, within: Duration?, name: String, from disturbance: Instant? = nil) -> CheckResult? {
        guard let within, world.observations.samples > 0 else { return nil }
        let last = disturbance ?? world.observations.lastDisturbance
        let deadline = last + within
        guard world.now < deadline else { return nil }
        return .pass(
            name,
            note: "inconclusive: the run ended \(DurationText.format(world.now - last)) after the last disturbance, before the \(DurationText.format(within)) bound")
    }

    static func membershipConverged(_ world: SimWorld, within: Duration?, name: String) -> CheckResult {
        let seen = world.observations
        return Self.converged(world.membershipDifference(), since: seen.membershipConvergedSince, last: seen.lastMembershipDifference, within: within, world, name: name)
    }

    /// Measured from the last disturbance or tunnel change, whichever came later: a table can
    /// only follow a tunnel once it exists (or is gone).
    static func endpointTablesConverged(_ world: SimWorld, within: Duration?, name: String) -> CheckResult {
        let seen = world.observations
        let since = max(seen.lastDisturbance, seen.lastTunnelChange)
        return Self.converged(world.endpointDifference(), since: seen.endpointsConvergedSince, last: seen.lastEndpointDifference, within: within, world, name: name, from: since)
    }

    /// Fails on a difference at the end (unless the bound falls after the end: inconclusive),
    /// else checks the bound.
    static func converged(
        _ difference: (pod: String, message: String)?, since: Instant?, last: Observations.Difference?, within: Duration?, _ world: SimWorld, name: String,
        from disturbance: Instant? = nil
    ) -> CheckResult {
        if let difference {
            return Self.inconclusive(world, within: within, name: name, from: disturbance) ?? .fail(name, at: world.now, subject: difference.pod, difference.message)
        }
        return Self.convergedInTime(since, last: last, within: within, world, name: name, from: disturbance)
    }

    /// Converged at the end (checked by the caller); with a bound and samples, also converged
    /// since no later than `within` after the last disturbance (or `disturbance`, when given).
    static func convergedInTime(
        _ since: Instant?, last: Observations.Difference?, within: Duration?, _ world: SimWorld, name: String, from disturbance: Instant? = nil
    ) -> CheckResult {
        guard let within, world.observations.samples > 0 else { return .pass(name) }
        let lastDisturbance = disturbance ?? world.observations.lastDisturbance
        let deadline = lastDisturbance + within
        guard let since, since > deadline else { return .pass(name) }
        return .fail(
            name, at: deadline, subject: last?.pod ?? "?",
            "converged only \(DurationText.format(since - lastDisturbance)) after the last disturbance at \(DurationText.format(lastDisturbance - .zero)) (bound \(DurationText.format(within))): \(last?.message ?? "")")
    }

    static func noGhostMembers(_ world: SimWorld, name: String) -> CheckResult {
        // Per process: a restarted pod starts with no memory, so it may learn of a departed UID
        // from a peer that has not heard yet; only a process that saw it go must never take it back.
        var departed: [Int: Set<NodeUID>] = [:]
        var nextStart = 0
        for (time, pod, event) in world.events {
            while nextStart < world.starts.count, world.starts[nextStart].time <= time {
                departed[world.starts[nextStart].pod] = nil
                nextStart += 1
            }
            guard case .membership(let membership) = event else { continue }
            switch membership {
            case .memberStatusChanged(let uid, _, _, let to) where to.status.isTerminal:
                departed[pod, default: []].insert(uid)
            case .memberJoined(let info) where departed[pod]?.contains(info.uid) == true:
                return .fail(name, at: time, subject: world.pods[pod].name, "\(info.name) (\(info.uid)) came back after it was dead or left")
            case .memberStatusChanged(let uid, let memberName, _, let to) where !to.status.isTerminal && departed[pod]?.contains(uid) == true:
                return .fail(name, at: time, subject: world.pods[pod].name, "\(memberName) (\(uid)) is \(to) after it was dead or left")
            default:
                continue
            }
        }
        return .pass(name)
    }

    static func noFalseDeaths(_ world: SimWorld, name: String) -> CheckResult {
        for (time, pod, event) in world.events {
            guard case .membership(.memberStatusChanged(let uid, let member, _, let to)) = event, to.status == .dead else { continue }
            let stopped = world.stops.contains { $0.uid == uid && $0.time <= time }
            if !stopped { return .fail(name, at: time, subject: world.pods[pod].name, "declared \(member) (\(uid)) dead while it was running") }
        }
        return .pass(name)
    }

    static func agentsRehomed(_ world: SimWorld, within: Duration?, name: String) -> CheckResult {
        // With no pod behind the load balancer at the end, no agent can hold a tunnel: not a failure.
        for (index, agent) in world.traffic.agents.enumerated() where world.anyPodBehindLoadBalancer && !world.hasWorkingTunnel(index) {
            return Self.inconclusive(world, within: within, name: name) ?? .fail(name, at: world.now, subject: agent.spec.name, "has no working tunnel at the end")
        }
        if let within, let outage = world.observations.longestOutage, outage.length > within {
            return .fail(
                name, at: outage.from + within, subject: outage.agent,
                "had no working tunnel for \(DurationText.format(outage.length)) from \(DurationText.format(outage.from - .zero)) while a pod was ready (bound \(DurationText.format(within)))")
        }
        return .pass(name)
    }

    /// Every TCP connection cut before its lifetime ended was cut by a killed process, or by a
    /// shutting-down one at or after its drain deadline: a graceful shutdown never ends a
    /// connection it could have let finish.
    static func streamsNotCutEarly(_ world: SimWorld, name: String) -> CheckResult {
        for record in world.traffic.history {
            guard let stream = record.stream, let cut = stream.cut, cut.early else { continue }
            let deadline = cut.drainDeadline.map { "its drain deadline was \(ReportTime.text($0))" } ?? "it was not shutting down"
            return .fail(name, at: cut.at, subject: world.pods[cut.pod].name,
                         "cut TCP connection \(record.id) (opened \(stream.openedAt.map(ReportTime.text) ?? "?"), lifetime \(DurationText.format(stream.lifetime))); \(deadline)")
        }
        return .pass(name)
    }

    /// No new TCP connection opened on a shutting-down pod's tunnel once its agent's replacement
    /// tunnel, reachable from the connection's entry pod, had been open for the hand-over
    /// settle time (by then every node knows of it).
    static func newStreamsOnNewTunnels(_ world: SimWorld, name: String) -> CheckResult {
        guard let first = world.traffic.streamsOnOldTunnels.first else { return .pass(name) }
        return .fail(name, at: first.time, subject: world.pods[first.pod].name,
                     "TCP connection \(first.request) opened on the old tunnel; the agent's new one was open since \(ReportTime.text(first.replacementSince))")
    }
}
