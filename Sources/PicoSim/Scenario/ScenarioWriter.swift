import PicoModel

/// Writes a `Scenario` as a scenario file that `ScenarioDecoder` reads back to the same scenario
/// (the fuzzer only ever runs scenarios that made this round trip, so a regression file replays
/// exactly). Durations are written with `DurationText.format`, numbers in Swift's shortest
/// round-tripping form, strings plain when that is unambiguous and double-quoted otherwise.
public enum ScenarioWriter {
    /// The file's text; `comments` become `#` lines at the top.
    public static func write(_ scenario: Scenario, comments: [String] = []) -> String {
        var lines = comments.map { $0.isEmpty ? "#" : "# \($0)" }
        lines += [
            "apiVersion: \(ScenarioDecoder.apiVersion)",
            "kind: Scenario",
            "metadata:",
            "  name: \(self.quote(scenario.name))",
            "spec:",
            "  seed: \(scenario.seed)",
            "  duration: \(DurationText.format(scenario.duration))",
            "  topology:",
            "    pods: \(scenario.pods)",
            "    startup: \(scenario.startup.rawValue)",
        ]
        if !scenario.gossipKeys.isEmpty { lines.append("    gossipKeys: [\(scenario.gossipKeys.joined(separator: ", "))]") }
        if !scenario.agents.isEmpty {
            lines.append("    agents:")
            var groups: [(agent: AgentSpec, count: Int)] = []
            for agent in scenario.agents {
                if let last = groups.last?.agent, last.endpoint == agent.endpoint, last.tenant == agent.tenant, last.kind == agent.kind {
                    groups[groups.count - 1].count += 1
                } else {
                    groups.append((agent, 1))
                }
            }
            for group in groups { lines.append("      - \(self.agentGroup(group.agent, count: group.count))") }
        }
        if !scenario.clients.isEmpty {
            lines.append("    clients:")
            for client in scenario.clients {
                let endpoints = client.endpoints.map(self.quote).joined(separator: ", ")
                lines.append(
                    "      - {name: \(self.quote(client.name)), rate: \(client.rate), endpoints: [\(endpoints)], timeout: \(DurationText.format(client.timeout)), "
                        + "serviceTime: \(DurationText.format(client.serviceTime)), distribution: \(client.zipf ? "zipf" : "uniform")"
                        + (client.streams.map { ", tcp: {minLifetime: \(DurationText.format($0.shortest)), maxLifetime: \(DurationText.format($0.longest))}" } ?? "") + "}")
            }
        }
        lines.append("  network: {\(self.profile(scenario.network))}")
        lines.append(
            "  kubernetes: {dnsLag: \(DurationText.format(scenario.dnsLag)), loadBalancerLag: \(DurationText.format(scenario.loadBalancerLag)), "
                + "publishNotReadyAddresses: \(scenario.publishNotReadyAddresses), terminationGracePeriod: \(DurationText.format(scenario.terminationGracePeriod))}")
        if scenario.rebalance != Rebalancer.Settings() {
            let rebalance = scenario.rebalance
            lines.append(
                "  rebalance: {threshold: \(rebalance.threshold), shedRate: \(rebalance.shedRate), minConns: \(rebalance.minConns), "
                    + "hold: \(DurationText.format(rebalance.hold)), cooldown: \(DurationText.format(rebalance.cooldown))}")
        }
        if !scenario.timeline.isEmpty {
            lines.append("  timeline:")
            for event in scenario.timeline {
                let undo = event.duration.map { ", for: \(DurationText.format($0))" } ?? ""
                lines.append("    - {id: \(event.id), at: \(DurationText.format(event.at)), \(self.action(event.action))\(undo)}")
            }
        }
        if !scenario.checks.isEmpty {
            lines.append("  checks:")
            for check in scenario.checks { lines.append("    - \(self.check(check))") }
        }
        switch scenario.expect {
        case .pass: lines.append("  expect: pass")
        case .fail(let check, let bug): lines.append("  expect: {fail: \(check), bug: \(self.quote(bug))}")
        case .limitation(let check, let why): lines.append("  expect: {fail: \(check), limitation: \(self.quote(why))}")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    static func profile(_ profile: LinkProfile) -> String {
        "latency: \(DurationText.format(profile.latency)), jitter: \(DurationText.format(profile.jitter)), loss: \(profile.loss), "
            + "duplicate: \(profile.duplicate), reorder: \(profile.reorder)"
    }

    static func pods(_ pods: [Int]) -> String {
        "{pods: [\(pods.map(String.init).joined(separator: ", "))]}"
    }

    static func links(_ links: [SimNetwork.Link]) -> String {
        let sources = Array(Set(links.map(\.from))).sorted()
        let targets = Array(Set(links.map(\.to))).sorted()
        return "{from: [\(sources.map(String.init).joined(separator: ", "))], to: [\(targets.map(String.init).joined(separator: ", "))]}"
    }

    static func action(_ action: Scenario.Action) -> String {
        switch action {
        case .rollout(let maxUnavailable, let maxSurge, let minReady):
            "rollout: {maxUnavailable: \(maxUnavailable), maxSurge: \(maxSurge), minReadySeconds: \(DurationText.format(minReady))}"
        case .crash(let pods): "crash: \(self.pods(pods))"
        case .restart(let pods): "restart: \(self.pods(pods))"
        case .terminate(let pods): "terminate: \(self.pods(pods))"
        case .pause(let pods): "pause: \(self.pods(pods))"
        case .resume(let pods): "resume: \(self.pods(pods))"
        case .partition(let shape): "partition: {\(self.shape(shape))}"
        case .heal: "heal: {}"
        case .hold(let links): "hold: \(self.links(links))"
        case .release(let links): "release: \(self.links(links))"
        case .netem(let pods, let profile):
            "netem: {pods: [\(pods.map(String.init).joined(separator: ", "))], \(self.profile(profile))}"
        case .clearNetem(let pods): "clear-netem: \(self.pods(pods))"
        case .scale(let replicas): "scale: {replicas: \(replicas)}"
        case .stopClients: "stop-clients: {}"
        case .recover: "recover: {}"
        case .nemesis(let attack): "nemesis: \(self.nemesis(attack))"
        case .addAgents(let agents):
            "add-agents: \(self.agentGroup(agents.first ?? AgentSpec(name: "", endpoint: ""), count: agents.count))"
        case .gossipKeys(let pods, let keys):
            "gossip-keys: {\(pods.isEmpty ? "" : "pods: [\(pods.map(String.init).joined(separator: ", "))], ")keys: [\(keys.joined(separator: ", "))]}"
        }
    }

    /// `count` agents like `agent`, as `decodeAgentGroup` reads them.
    static func agentGroup(_ agent: AgentSpec, count: Int) -> String {
        let tenant = agent.tenant.isEmpty ? "" : "tenant: \(self.quote(agent.tenant)), "
        let kind = agent.kind == .pico ? "" : "kind: \(agent.kind.rawValue), "
        return "{endpoint: \(self.quote(agent.endpoint)), \(tenant)\(kind)count: \(count)}"
    }

    static func nemesis(_ attack: NemesisAttack) -> String {
        var parts = ["rate: \(attack.rate)", "kinds: [\(attack.kinds.map(\.rawValue).joined(separator: ", "))]"]
        if !attack.pods.isEmpty { parts.append("pods: [\(attack.pods.map(String.init).joined(separator: ", "))]") }
        parts.append("identities: \(attack.identities)")
        return "{\(parts.joined(separator: ", "))}"
    }

    static func shape(_ shape: PartitionShape) -> String {
        switch shape {
        case .halves: "shape: halves"
        case .randomHalves: "shape: random-halves"
        case .bridge: "shape: bridge"
        case .majoritiesRing: "shape: majorities-ring"
        case .isolate(let pod): "shape: isolate, pod: \(pod)"
        case .oneWay(let sources, let targets):
            "shape: one-way, from: [\(sources.map(String.init).joined(separator: ", "))], to: [\(targets.map(String.init).joined(separator: ", "))]"
        // Not expressible in a file: the decoder rejects it, so a candidate using it is invalid.
        case .sides: "shape: sides"
        }
    }

    static func check(_ check: Scenario.Check) -> String {
        var parts = ["name: \(check.name)"]
        if check.name == "no-failed-requests" {
            if let from = check.from { parts.append("from: \(DurationText.format(from))") }
            if let to = check.to { parts.append("to: \(DurationText.format(to))") }
            if check.excuseUnreachable { parts.append("excuse: no-reachable-holder") }
        }
        if check.name == "route-only-to-live-owners" { parts.append("detection: \(DurationText.format(check.detection))") }
        if ScenarioDecoder.boundedChecks.contains(check.name) { parts.append("within: \(DurationText.format(check.within))") }
        if check.name == "tunnels-balanced" {
            parts.append("ratio: \(check.ratio)")
            if let moves = check.moves { parts.append("moves: \(moves)") }
        }
        return "{\(parts.joined(separator: ", "))}"
    }

    /// `text` as a YAML scalar: plain when it is a simple word that YAML would not read as
    /// anything else, double-quoted with escapes otherwise.
    static func quote(_ text: String) -> String {
        let simple = !text.isEmpty && text.unicodeScalars.allSatisfy { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "-_.".unicodeScalars.contains($0)) }
        let special = ["true", "false", "null", "yes", "no", "on", "off", "~"].contains(text.lowercased())
        if simple, !special, Double(text) == nil, text.first != "-", text.first != "." { return text }
        var escaped = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": escaped += "\\\""
            case "\\": escaped += "\\\\"
            case "\n": escaped += "\\n"
            case "\t": escaped += "\\t"
            default:
                if scalar.value < 0x20 {
                    escaped += "\\x" + (scalar.value < 0x10 ? "0" : "") + String(scalar.value, radix: 16)
                } else {
                    escaped.unicodeScalars.append(scalar)
                }
            }
        }
        return escaped + "\""
    }
}
