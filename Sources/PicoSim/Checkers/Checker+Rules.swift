import PicoModel

// ==== ---- The checkers' rules -----------------------------------------------------------------------

extension Checker {
    static func noFailedRequests(_ world: SimWorld, windows: [ClosedRange<Instant>], name: String) -> CheckResult {
        for record in world.traffic.history where windows.contains(where: { $0.contains(record.issuedAt) }) {
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
            // A failure is excused only shortly after a pod on its path stopped.
            let excused = record.path.contains { pod in
                world.stops.contains { $0.pod == pod && $0.time <= finished && finished <= $0.time + detection }
            }
            if !excused {
                return .fail(name, at: finished, subject: "request \(record.id)", "failed outside any detection window: \(reason) (path \(record.path))")
            }
        }
        return .pass(name)
    }

    static func atMostOneHop(_ world: SimWorld, name: String) -> CheckResult {
        for record in world.traffic.history where record.path.count > 2 {
            return .fail(name, at: record.finishedAt ?? record.issuedAt, subject: "request \(record.id)", "visited \(record.path.count) pods")
        }
        return .pass(name)
    }

    static func membershipConverged(_ world: SimWorld, name: String) -> CheckResult {
        let running = world.pods.indices.filter { world.pods[$0].state == .running }
        let expected = running.compactMap { world.pods[$0].node?.me.uid }.sorted()
        for index in running {
            let seen = world.pods[index].node?.memberViews.filter { !$0.state.status.isTerminal }.map(\.info.uid).sorted() ?? []
            if seen != expected {
                return .fail(name, at: world.now, subject: world.pods[index].name, "sees \(seen.count) live members, \(expected.count) are running")
            }
        }
        return .pass(name)
    }

    static func endpointTablesConverged(_ world: SimWorld, name: String) -> CheckResult {
        var expected: [String: [NodeUID: UInt32]] = [:]
        for pod in world.pods where pod.state == .running {
            guard let node = pod.node else { continue }
            for tunnel in node.tunnelView { expected[tunnel.endpoint, default: [:]][node.me.uid, default: 0] += 1 }
        }
        for pod in world.pods where pod.state == .running {
            var seen: [String: [NodeUID: UInt32]] = [:]
            for row in pod.node?.endpointView ?? [] {
                for owner in row.owners { seen[row.endpoint, default: [:]][owner.owner] = owner.count }
            }
            if seen != expected {
                let differing = Set(seen.keys).union(expected.keys).sorted().first { seen[$0] != expected[$0] } ?? "?"
                return .fail(name, at: world.now, subject: pod.name, "endpoint table differs from the tunnels that exist (first: \(differing))")
            }
        }
        return .pass(name)
    }

    static func noGhostMembers(_ world: SimWorld, name: String) -> CheckResult {
        var departed: [Int: Set<NodeUID>] = [:]
        for (time, pod, event) in world.events {
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

    static func agentsRehomed(_ world: SimWorld, name: String) -> CheckResult {
        for agent in world.traffic.agents {
            let settled = agent.tunnels.contains { !$0.moving && world.isCurrent($0.pod, $0.boot) && world.pods[$0.pod].state == .running }
            if !settled { return .fail(name, at: world.now, subject: agent.spec.name, "has no working tunnel at the end") }
        }
        return .pass(name)
    }
}
