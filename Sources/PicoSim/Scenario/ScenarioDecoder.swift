import PicoModel

/// Reads and validates a scenario file. Every problem is a `YAMLError` naming the file, line,
/// column and key: unknown keys, wrong types, impossible values (a pod that does not exist, an
/// event after the end of the run, `for:` on an event that cannot be undone, …).
public enum ScenarioDecoder {
    /// The `apiVersion` this build reads.
    public static let apiVersion = "pico-sim.dev/v1alpha1"
    /// Checker names accepted under `spec.checks`.
    public static let checkNames = [
        "no-failed-requests", "route-only-to-live-owners", "at-most-one-hop", "membership-converged",
        "endpoint-tables-converged", "no-ghost-members", "invariants-hold", "agents-rehomed", "no-false-deaths",
        "one-tenant-per-endpoint", "streams-not-cut-early", "new-streams-on-new-tunnels", "tunnels-balanced", "no-oscillation",
    ]

    /// Checks that take `within:` (a bound after the last disturbance: 60 s for tunnels-balanced
    /// and no-oscillation, 30 s for the others).
    public static let boundedChecks = ["membership-converged", "endpoint-tables-converged", "agents-rehomed", "tunnels-balanced", "no-oscillation"]

    /// The default `within:` of a bounded check.
    public static func defaultWithin(_ check: String) -> Duration {
        switch check {
        case "tunnels-balanced": .seconds(60)
        case "no-oscillation": .seconds(60)
        default: .seconds(30)
        }
    }

    /// Decodes `text`; `seed` overrides `spec.seed`.
    public static func decode(_ text: String, file: String, seed: UInt64? = nil) throws(YAMLError) -> Scenario {
        var root = try YAMLFields(try YAMLReader.parse(text, file: file), path: "", file: file)
        let version = try root.requiredString("apiVersion")
        guard version == self.apiVersion else {
            throw root.error("apiVersion", "must be \(self.apiVersion), got '\(version)'", at: root.node["apiVersion"])
        }
        let kind = try root.requiredString("kind")
        guard kind == "Scenario" else { throw root.error("kind", "must be Scenario, got '\(kind)'", at: root.node["kind"]) }
        guard var metadata = try root.mapping("metadata") else { throw root.error("metadata", "is required") }
        let name = try metadata.requiredString("name")
        guard self.isFileNameSafe(name) else {
            throw metadata.error(
                "name", "must be 1 to 253 letters, digits, '-', '_' or '.', not starting with '.' (it names trace and report files), got '\(name)'",
                at: metadata.node["name"])
        }
        _ = metadata.node("labels")
        _ = metadata.node("annotations")
        try metadata.finish()
        guard var spec = try root.mapping("spec") else { throw root.error("spec", "is required") }
        try root.finish()
        return try self.decodeSpec(&spec, name: name, file: file, seed: seed)
    }

    /// True for a name that is safe inside a file name: ASCII letters, digits, `-`, `_` and `.`,
    /// 1 to 253 of them, not starting with `.` (so never `..` or a hidden file).
    static func isFileNameSafe(_ name: String) -> Bool {
        guard !name.isEmpty, name.utf8.count <= 253, name.first != "." else { return false }
        return name.utf8.allSatisfy { byte in
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte | 0x20) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
                || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "_") || byte == UInt8(ascii: ".")
        }
    }

    static func decodeSpec(_ spec: inout YAMLFields, name: String, file: String, seed: UInt64?) throws(YAMLError) -> Scenario {
        let fileSeed = try spec.uint64("seed") ?? 1
        guard let duration = try spec.duration("duration", in: .nanoseconds(1)...self.longestDuration) else {
            throw spec.error("duration", "is required: how long the run lasts in simulated time, such as 3m (at most 24h)")
        }
        guard var topology = try spec.mapping("topology") else { throw spec.error("topology", "is required") }
        let pods = try topology.int("pods", in: 1...1_000) ?? 3
        let startupText = try topology.string("startup") ?? "ordered"
        guard let startup = Scenario.Startup(rawValue: startupText) else {
            throw topology.error("startup", "must be ordered or parallel, got '\(startupText)'", at: topology.node["startup"])
        }
        let agents = try self.decodeAgents(&topology)
        let clients = try self.decodeClients(&topology, served: agents.map(\.endpoint))
        let gossipKeys = try self.decodeKeyNames(&topology, key: "gossipKeys") ?? []
        try topology.finish()
        var network = LinkProfile.lan
        if var fields = try spec.mapping("network") {
            network = try self.decodeProfile(&fields, base: .lan)
            try fields.finish()
        }
        var kubernetes = try spec.mapping("kubernetes") ?? YAMLFields(YAMLNode(.scalar("", .plain), line: 1, column: 1), path: "spec.kubernetes", file: file)
        let dnsLag = try kubernetes.duration("dnsLag", in: .zero...self.longestDuration) ?? .seconds(1)
        let loadBalancerLag = try kubernetes.duration("loadBalancerLag", in: .zero...self.longestDuration) ?? .seconds(2)
        let publishNotReady = try kubernetes.bool("publishNotReadyAddresses") ?? false
        // At least 10s: Pico's drain needs it.
        let grace = try kubernetes.duration("terminationGracePeriod", in: .seconds(10)...self.longestDuration) ?? .seconds(60)
        try kubernetes.finish()
        let rebalance = try self.decodeRebalance(&spec)
        let timeline = try self.decodeTimeline(&spec, pods: pods, duration: duration)
        let checks = try self.decodeChecks(&spec, duration: duration)
        let expect = try self.decodeExpectation(&spec, checks: checks)
        try spec.finish()
        var scenario = Scenario(
            name: name, file: file, seed: seed ?? fileSeed, duration: duration, pods: pods, startup: startup, agents: agents,
            clients: clients, network: network, dnsLag: dnsLag, loadBalancerLag: loadBalancerLag,
            publishNotReadyAddresses: publishNotReady, terminationGracePeriod: grace, timeline: timeline, checks: checks, expect: expect)
        scenario.gossipKeys = gossipKeys
        scenario.rebalance = rebalance
        return scenario
    }

    /// `spec.rebalance: {threshold, shedRate, minConns, hold, cooldown}`, each optional (Pico's
    /// defaults for the rest).
    static func decodeRebalance(_ spec: inout YAMLFields) throws(YAMLError) -> Rebalancer.Settings {
        var settings = Rebalancer.Settings()
        guard var fields = try spec.mapping("rebalance") else { return settings }
        settings.threshold = try fields.double("threshold", in: 0...100, unit: "(0 turns rebalancing off)") ?? settings.threshold
        settings.shedRate = try fields.double("shedRate", in: 0.0001...1, unit: "of the mean per second") ?? settings.shedRate
        settings.minConns = try fields.int("minConns", in: 0...1_000_000) ?? settings.minConns
        settings.hold = try fields.duration("hold", in: .zero...(.seconds(3_600))) ?? settings.hold
        settings.cooldown = try fields.duration("cooldown", in: .zero...(.seconds(3_600))) ?? settings.cooldown
        try fields.finish()
        return settings
    }

    /// A list of 1 to `GossipKeyring.maxKeys` distinct key names (letters, digits, '-', '_'),
    /// the sealing key first; nil when the key is absent.
    static func decodeKeyNames(_ fields: inout YAMLFields, key: String) throws(YAMLError) -> [String]? {
        guard let items = try fields.sequence(key) else { return nil }
        var names: [String] = []
        for (index, item) in items.enumerated() {
            guard let name = item.scalarText, !name.isEmpty, name.utf8.count <= 64,
                  name.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 | 0x20 >= 0x61 && $0 | 0x20 <= 0x7A) || $0 == 0x2D || $0 == 0x5F }) else {
                throw fields.error("\(key)[\(index)]", "must be a key name of 1 to 64 letters, digits, '-' or '_'", at: item)
            }
            guard !names.contains(name) else { throw fields.error("\(key)[\(index)]", "repeats key '\(name)'", at: item) }
            names.append(name)
        }
        guard (1...GossipKeyring.maxKeys).contains(names.count) else {
            throw fields.error(key, "must name 1 to \(GossipKeyring.maxKeys) keys, the sealing one first", at: fields.node[key])
        }
        return names
    }

    static func decodeAgents(_ topology: inout YAMLFields) throws(YAMLError) -> [AgentSpec] {
        var agents: [AgentSpec] = []
        for (index, item) in (try topology.sequence("agents") ?? []).enumerated() {
            var fields = try YAMLFields(item, path: "\(topology.keyPath("agents"))[\(index)]", file: topology.file)
            agents += try self.decodeAgentGroup(&fields, before: agents.count)
            try fields.finish()
        }
        return agents
    }

    /// One `{endpoint, count, tenant, kind}` group of agents (`count` 1 by default, `tenant`
    /// none, `kind` pico), named `<endpoint>-<n>` (`<tenant>-` before it with a tenant, `piko-`
    /// before the endpoint for Piko's agents), after `before` others.
    static func decodeAgentGroup(_ fields: inout YAMLFields, before: Int) throws(YAMLError) -> [AgentSpec] {
        let endpoint = try fields.requiredString("endpoint")
        guard !endpoint.isEmpty, endpoint.utf8.count <= EndpointTable.maxEndpointLength else {
            throw fields.error("endpoint", "must be 1 to \(EndpointTable.maxEndpointLength) bytes", at: fields.node["endpoint"])
        }
        let tenant = try fields.string("tenant") ?? ""
        guard tenant.isEmpty || EndpointClaim.isValidTenant(tenant) else {
            throw fields.error("tenant", "must be \(EndpointClaim.tenantRule)", at: fields.node["tenant"])
        }
        let count = try fields.int("count", in: 1...1_000) ?? 1
        guard before + count <= self.mostAgents else {
            throw fields.error("count", "brings the agents to \(before + count); all entries together must be at most \(self.mostAgents)", at: fields.node["count"])
        }
        let kindName = try fields.string("kind") ?? AgentSpec.Kind.pico.rawValue
        guard let kind = AgentSpec.Kind(rawValue: kindName) else {
            throw fields.error("kind", "must be \(AgentSpec.Kind.allCases.map(\.rawValue).joined(separator: " or ")), got '\(kindName)'", at: fields.node["kind"])
        }
        let prefix = (tenant.isEmpty ? "" : "\(tenant)-") + (kind == .piko ? "piko-" : "")
        return (0..<count).map { AgentSpec(name: "\(prefix)\(endpoint)-\($0)", endpoint: endpoint, tenant: tenant, kind: kind) }
    }

    /// `topology.clients`; every endpoint a client calls must be in `served` (an agent's), or
    /// every request to it would fail.
    static func decodeClients(_ topology: inout YAMLFields, served: [String]) throws(YAMLError) -> [ClientSpec] {
        var clients: [ClientSpec] = []
        var totalRate = 0.0
        for (index, item) in (try topology.sequence("clients") ?? []).enumerated() {
            var fields = try YAMLFields(item, path: "\(topology.keyPath("clients"))[\(index)]", file: topology.file)
            let name = try fields.string("name") ?? "client-\(index)"
            guard let rate = try fields.double("rate", in: self.lowestRate...self.highestRate, unit: "requests per second") else {
                throw fields.error("rate", "is required: requests per second, from \(YAMLFields.decimal(self.lowestRate)) to \(YAMLFields.decimal(self.highestRate))")
            }
            totalRate += rate
            guard totalRate <= self.highestRate else {
                throw fields.error("rate", "brings the clients to \(YAMLFields.decimal(totalRate)) requests per second; all clients together must send at most \(YAMLFields.decimal(self.highestRate))", at: item["rate"])
            }
            guard let endpoints = try fields.strings("endpoints"), !endpoints.isEmpty else {
                throw fields.error("endpoints", "is required: a non-empty list of endpoints that agents serve", at: item["endpoints"])
            }
            for (position, endpoint) in endpoints.enumerated() where !served.contains(endpoint) {
                let known = served.isEmpty ? "no agent is declared under spec.topology.agents" : "agents serve \(Self.uniqueInOrder(served).joined(separator: ", "))"
                throw fields.error(
                    "endpoints[\(position)]", "no agent serves endpoint '\(endpoint)' (\(known)); every request to it would fail with 502",
                    at: item["endpoints"]?.items?[position])
            }
            let timeout = try fields.duration("timeout", in: .nanoseconds(1)...self.longestDuration) ?? .seconds(5)
            let service = try fields.duration("serviceTime", in: .zero...self.longestDuration) ?? .milliseconds(5)
            let distribution = try fields.string("distribution") ?? "uniform"
            guard distribution == "uniform" || distribution == "zipf" else {
                throw fields.error("distribution", "must be uniform or zipf, got '\(distribution)'", at: item["distribution"])
            }
            let streams = try self.decodeStreamLifetimes(&fields)
            try fields.finish()
            clients.append(ClientSpec(name: name, endpoints: endpoints, rate: rate, timeout: timeout, serviceTime: service, zipf: distribution == "zipf", streams: streams))
        }
        return clients
    }

    /// A client's `tcp: {minLifetime, maxLifetime}`: it opens TCP connections instead of sending
    /// requests (nil without the key).
    static func decodeStreamLifetimes(_ client: inout YAMLFields) throws(YAMLError) -> StreamLifetimes? {
        guard var tcp = try client.mapping("tcp") else { return nil }
        guard let shortest = try tcp.duration("minLifetime", in: .milliseconds(1)...self.longestDuration) else {
            throw tcp.error("minLifetime", "is required: how long the shortest connection stays open once its 101 arrived")
        }
        let longest = try tcp.duration("maxLifetime", in: .milliseconds(1)...self.longestDuration) ?? shortest
        guard longest >= shortest else {
            throw tcp.error("maxLifetime", "must be at least minLifetime (\(DurationText.format(shortest))), got \(DurationText.format(longest))", at: tcp.node["maxLifetime"])
        }
        try tcp.finish()
        return StreamLifetimes(shortest: shortest, longest: longest)
    }

    /// `names` without repeats, first occurrence first.
    static func uniqueInOrder(_ names: [String]) -> [String] {
        var seen: Set<String> = []
        return names.filter { seen.insert($0).inserted }
    }

    static func decodeProfile(_ fields: inout YAMLFields, base: LinkProfile) throws(YAMLError) -> LinkProfile {
        var profile = base
        profile.latency = try fields.duration("latency", in: .zero...self.longestDuration) ?? base.latency
        profile.jitter = try fields.duration("jitter", in: .zero...self.longestDuration) ?? base.jitter
        profile.loss = try fields.fraction("loss") ?? base.loss
        profile.duplicate = try fields.fraction("duplicate") ?? base.duplicate
        profile.reorder = try fields.fraction("reorder") ?? base.reorder
        return profile
    }
}
