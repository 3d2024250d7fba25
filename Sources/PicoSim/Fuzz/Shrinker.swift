import PicoModel

/// Shrinks a failing scenario's explicit timeline (never its seed): deletes chunks of events
/// (ddmin), drops agents, clients and pods, simplifies events (a partition to one isolated pod,
/// shorter `for:`, lower rates, milder impairments), moves events earlier and shortens the run.
/// A candidate is kept only when it is a valid file, smaller, and fails the same check. Each
/// event's randomness comes from (seed, its stable ID), so deleting one leaves the others alone.
public struct Shrinker {
    /// The outcome of a shrink.
    public struct Result: Sendable {
        /// The smallest failing scenario found (as decoded from `text`).
        public var scenario: Scenario
        /// Its file text.
        public var text: String
        /// Its report.
        public var report: ScenarioReport
        /// How many candidate runs were made.
        public var runs: Int
        /// Size of the scenario before and after (see `Shrinker.size`).
        public var originalSize: Size
        /// Size after shrinking.
        public var shrunkSize: Size
    }

    /// What "smaller" means, coarsest first.
    public struct Size: Hashable, Sendable, CustomStringConvertible {
        /// Timeline entries.
        public var events: Int
        /// Initial pods.
        public var pods: Int
        /// Agents and clients.
        public var actors: Int
        /// A weighted sum of times, durations, rates and impairments (finer simplifications).
        public var detail: Double

        /// Lexicographic: fewer events, then pods, then actors, then detail.
        public func isSmaller(than other: Size) -> Bool {
            (self.events, self.pods, self.actors) != (other.events, other.pods, other.actors)
                ? (self.events, self.pods, self.actors) < (other.events, other.pods, other.actors)
                : self.detail < other.detail - 1e-9
        }

        public var description: String { "\(self.events) events, \(self.pods) pods, \(self.actors) agents and clients" }
    }

    /// The check the shrunk scenario must still fail.
    public let check: String
    /// The failure's message with numbers and parenthesised details removed: a candidate must fail
    /// the same way, not merely the same check (a scenario without agents fails every request).
    public let signature: String?
    /// Stop after this many candidate runs.
    public let maxRuns: Int
    /// Asked before every run; true stops the shrink (the caller's wall-clock budget).
    public let isOutOfTime: () -> Bool
    private(set) var runs = 0

    /// Creates a shrinker for scenarios failing `check`.
    public init(check: String, message: String? = nil, maxRuns: Int = 500, isOutOfTime: @escaping () -> Bool = { false }) {
        self.check = check
        self.signature = message.map(Self.signature)
        self.maxRuns = maxRuns
        self.isOutOfTime = isOutOfTime
    }

    /// The size of `scenario`.
    public static func size(_ scenario: Scenario) -> Size {
        var detail = scenario.duration.secondsDouble + scenario.clients.reduce(0) { $0 + $1.rate / 10 + Double($1.endpoints.count) }
        for event in scenario.timeline {
            detail += event.at.secondsDouble / 10 + (event.duration?.secondsDouble ?? 0)
            switch event.action {
            case .partition(let shape):
                if case .isolate = shape {} else { detail += 5 }
            case .netem(let pods, let profile):
                detail += Double(pods.count) + profile.loss * 20 + profile.duplicate * 20 + profile.reorder * 20 + (profile.latency + profile.jitter).secondsDouble * 20
            case .crash(let pods), .pause(let pods), .terminate(let pods), .restart(let pods), .resume(let pods):
                detail += Double(pods.count)
            case .rollout(_, let surge, let minReady):
                detail += Double(surge) + minReady.secondsDouble
            default:
                break
            }
        }
        return Size(events: scenario.timeline.count, pods: scenario.pods, actors: scenario.agents.count + scenario.clients.count, detail: detail)
    }

    /// Shrinks `scenario`, which fails `check` with `report`.
    public mutating func shrink(_ scenario: Scenario, text: String, report: ScenarioReport) -> Result {
        var best = (scenario: scenario, text: text, report: report)
        let original = Self.size(scenario)
        var progress = true
        while progress, !self.exhausted {
            progress = false
            for pass in [Self.deleteChunks, Self.dropActors, Self.dropPods, Self.simplifyEvents, Self.moveEarlier, Self.shortenRun] {
                // First improvement wins; the pass then starts again from the smaller scenario.
                var improved = true
                while improved, !self.exhausted {
                    improved = false
                    for candidate in pass(best.scenario) where !self.exhausted {
                        guard Self.size(candidate).isSmaller(than: Self.size(best.scenario)), let kept = self.failsTheSameCheck(candidate) else { continue }
                        best = kept
                        improved = true
                        progress = true
                        break
                    }
                }
            }
        }
        return Result(scenario: best.scenario, text: best.text, report: best.report, runs: self.runs, originalSize: original, shrunkSize: Self.size(best.scenario))
    }

    var exhausted: Bool { self.runs >= self.maxRuns || self.isOutOfTime() }

    /// `message` without digits and without parenthesised parts.
    static func signature(_ message: String) -> String {
        var depth = 0
        var kept = ""
        for character in message {
            if character == "(" { depth += 1 } else if character == ")" { depth = max(0, depth - 1) } else if depth == 0, !character.isNumber { kept.append(character) }
        }
        return kept
    }

    /// Writes, decodes and runs `candidate`; returns it when it is valid (every endpoint a client
    /// calls has an agent) and fails `check` the same way.
    mutating func failsTheSameCheck(_ candidate: Scenario) -> (scenario: Scenario, text: String, report: ScenarioReport)? {
        let served = Set(candidate.agents.map(\.endpoint))
        guard candidate.clients.allSatisfy({ $0.endpoints.allSatisfy(served.contains) }) else { return nil }
        let text = ScenarioWriter.write(candidate)
        guard let decoded = try? ScenarioDecoder.decode(text, file: candidate.file) else { return nil }
        self.runs += 1
        let report = ScenarioRunner.run(decoded)
        guard let failure = report.results.first(where: { $0.name == self.check && !$0.passed }) else { return nil }
        if let signature = self.signature, Self.signature(failure.message ?? "") != signature { return nil }
        return (decoded, text, report)
    }

    // MARK: - Candidate passes (each returns the candidates to try, most promising first)

    /// ddmin over the timeline: delete halves, quarters, … down to single entries.
    static func deleteChunks(_ scenario: Scenario) -> [Scenario] {
        var candidates: [Scenario] = []
        let count = scenario.timeline.count
        var chunk = count
        while chunk >= 1 {
            var start = 0
            while start < count {
                var candidate = scenario
                candidate.timeline.removeSubrange(start..<min(count, start + chunk))
                candidates.append(candidate)
                start += chunk
            }
            chunk /= 2
        }
        return candidates
    }

    static func dropActors(_ scenario: Scenario) -> [Scenario] {
        var candidates: [Scenario] = []
        for index in scenario.agents.indices.reversed() {
            var candidate = scenario
            candidate.agents.remove(at: index)
            candidates.append(candidate)
        }
        for index in scenario.clients.indices.reversed() {
            var candidate = scenario
            candidate.clients.remove(at: index)
            candidates.append(candidate)
            for endpoint in scenario.clients[index].endpoints.indices.reversed() where scenario.clients[index].endpoints.count > 1 {
                var fewer = scenario
                fewer.clients[index].endpoints.remove(at: endpoint)
                candidates.append(fewer)
            }
            var slower = scenario
            slower.clients[index].rate = max(1, (scenario.clients[index].rate / 2).rounded())
            candidates.append(slower)
        }
        return candidates
    }

    /// One pod fewer: the highest initial ordinal goes, and so do the events' references to it
    /// (an event left with no pod goes too).
    static func dropPods(_ scenario: Scenario) -> [Scenario] {
        guard scenario.pods > 1 else { return [] }
        let gone = scenario.pods - 1
        var candidate = scenario
        candidate.pods = gone
        candidate.timeline = scenario.timeline.compactMap { event in
            var event = event
            if case .scale(let replicas) = event.action {
                event.action = .scale(replicas: max(1, replicas - 1))
                return event
            }
            guard let action = event.action.mappingPods({ $0 == gone ? nil : ($0 > gone ? $0 - 1 : $0) }) else { return nil }
            event.action = action
            return event
        }
        return [candidate]
    }

    static func simplifyEvents(_ scenario: Scenario) -> [Scenario] {
        var candidates: [Scenario] = []
        for index in scenario.timeline.indices {
            for action in self.simpler(scenario.timeline[index].action) {
                var candidate = scenario
                candidate.timeline[index].action = action
                candidates.append(candidate)
            }
            if let undo = scenario.timeline[index].duration, undo > .seconds(1) {
                var candidate = scenario
                candidate.timeline[index].duration = .milliseconds(undo.nanosecondsClamped / 2_000_000)
                candidates.append(candidate)
            }
        }
        return candidates
    }

    static func simpler(_ action: Scenario.Action) -> [Scenario.Action] {
        switch action {
        case .partition(let shape):
            if case .isolate = shape { return [] }
            return (0..<3).map { .partition(.isolate($0)) }
        case .netem(let pods, let profile):
            var milder = profile
            milder.loss = (profile.loss * 50).rounded() / 100
            milder.latency = .milliseconds(profile.latency.nanosecondsClamped / 2_000_000)
            milder.jitter = .zero
            milder.duplicate = 0
            milder.reorder = 0
            var options: [Scenario.Action] = [.netem(pods: pods, profile: milder)]
            if pods.count > 1 { options += pods.map { .netem(pods: [$0], profile: profile) } }
            return options
        case .crash(let pods) where pods.count > 1: return pods.map { .crash([$0]) }
        case .pause(let pods) where pods.count > 1: return pods.map { .pause([$0]) }
        case .terminate(let pods) where pods.count > 1: return pods.map { .terminate([$0]) }
        case .rollout(let unavailable, let surge, let minReady) where surge > 0 || minReady > .zero:
            return [.rollout(maxUnavailable: max(1, unavailable), maxSurge: 0, minReadySeconds: .zero)]
        default: return []
        }
    }

    static func moveEarlier(_ scenario: Scenario) -> [Scenario] {
        scenario.timeline.indices.compactMap { index in
            let event = scenario.timeline[index]
            let earliest = index > 0 ? scenario.timeline[index - 1].at : .zero
            guard event.at - earliest > .seconds(1) else { return nil }
            var candidate = scenario
            candidate.timeline[index].at = earliest + .milliseconds((event.at - earliest).nanosecondsClamped / 2_000_000)
            return candidate
        }
    }

    static func shortenRun(_ scenario: Scenario) -> [Scenario] {
        let lastEnd = scenario.timeline.map { $0.at + ($0.duration ?? .zero) }.max() ?? .zero
        let shorter = max(lastEnd + .seconds(5), .milliseconds(scenario.duration.nanosecondsClamped * 3 / 4_000_000))
        guard shorter < scenario.duration else { return [] }
        var candidate = scenario
        candidate.duration = shorter
        for index in candidate.checks.indices {
            if let to = candidate.checks[index].to, to > shorter { candidate.checks[index].to = shorter }
            if let from = candidate.checks[index].from, from > shorter { candidate.checks[index].from = shorter }
        }
        return [candidate]
    }
}
