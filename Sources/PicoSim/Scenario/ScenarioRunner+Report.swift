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

    static func figures(_ world: SimWorld, scenario: Scenario, trafficStart: Instant?) -> [(String, String)] {
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
        if let detection = self.crashDetection(world) {
            figures.append(("crash detection", "first node \(ReportTime.text(seconds: detection.first)), every node \(ReportTime.text(seconds: detection.all)) (mean of \(detection.count))"))
        }
        if let join = self.joinConvergence(world, after: trafficStart ?? Instant.zero + scenario.duration) {
            figures.append(("join convergence", "known by every running pod \(ReportTime.text(seconds: join.mean)) after start (mean of \(join.count), worst \(ReportTime.text(seconds: join.worst)))"))
        }
        let forwarded = world.traffic.history.filter { $0.path.count == 2 }.count
        figures.append(("forwarded once", "\(forwarded) requests"))
        return figures + self.nemesisFigures(world)
    }

    /// Mean time from each crash to the first and to the last `dead` among the other pods.
    static func crashDetection(_ world: SimWorld) -> (first: Double, all: Double, count: Int)? {
        var firsts: [Double] = []
        var alls: [Double] = []
        for stop in world.stops {
            guard stop.crashed, let uid = stop.uid else { continue }
            let deaths = world.events.compactMap { time, _, event -> Instant? in
                guard time >= stop.time, case .membership(.memberStatusChanged(let subject, _, _, let to)) = event, subject == uid, to.status == .dead else { return nil }
                return time
            }
            guard let first = deaths.min(), let last = deaths.max() else { continue }
            firsts.append((first - stop.time).secondsDouble)
            alls.append((last - stop.time).secondsDouble)
        }
        guard !firsts.isEmpty else { return nil }
        return (firsts.reduce(0, +) / Double(firsts.count), alls.reduce(0, +) / Double(alls.count), firsts.count)
    }

    /// For processes started after `after` (a running cluster): how long until every other pod
    /// running at the end had learned their UID.
    static func joinConvergence(_ world: SimWorld, after: Instant) -> (mean: Double, worst: Double, count: Int)? {
        var times: [Double] = []
        for start in world.starts where start.time > after {
            let observers = world.pods.indices.filter { $0 != start.pod && world.pods[$0].state == .running }
            var last: Instant?
            var everyone = true
            for observer in observers {
                let learned = world.events.first { time, pod, event in
                    guard pod == observer, time >= start.time, case .membership(.memberJoined(let info)) = event else { return false }
                    return info.uid == start.uid
                }?.0
                guard let learned else {
                    everyone = false
                    break
                }
                last = max(last ?? learned, learned)
            }
            if everyone, let last { times.append((last - start.time).secondsDouble) }
        }
        guard !times.isEmpty else { return nil }
        return (times.reduce(0, +) / Double(times.count), times.max() ?? 0, times.count)
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
