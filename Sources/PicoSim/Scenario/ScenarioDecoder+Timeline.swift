import PicoModel

extension ScenarioDecoder {
    static let actionKeys = [
        "rollout", "crash", "restart", "terminate", "pause", "resume", "partition", "heal", "hold", "release", "netem", "scale",
        "stop-clients", "recover", "nemesis", "gossip-keys", "add-agents",
    ]
    static let undoable: Set<String> = ["partition", "pause", "netem", "hold", "nemesis"]

    static func decodeTimeline(_ spec: inout YAMLFields, pods: Int, duration: Duration) throws(YAMLError) -> [Scenario.Event] {
        var events: [Scenario.Event] = []
        var ids: Set<Int> = []
        var replicas = pods
        let items = try spec.sequence("timeline") ?? []
        // The actions are checked in the order they happen (by `at`, then as listed), as the
        // simulator runs them: a pod ordinal is valid against the replicas at that time, not
        // against a scale listed earlier that happens later.
        var times: [(index: Int, at: Duration)] = []
        for (index, item) in items.enumerated() {
            var fields = try YAMLFields(item, path: "\(spec.keyPath("timeline"))[\(index)]", file: spec.file)
            guard let at = try fields.duration("at", in: .zero...self.longestDuration) else {
                throw fields.error("at", "is required: when the action happens, such as 30s from the start")
            }
            times.append((index, at))
        }
        for (index, _) in times.sorted(by: { ($0.at, $0.index) < ($1.at, $1.index) }) {
            let item = items[index]
            var fields = try YAMLFields(item, path: "\(spec.keyPath("timeline"))[\(index)]", file: spec.file)
            guard let at = try fields.duration("at", in: .zero...self.longestDuration) else {
                throw fields.error("at", "is required: when the action happens, such as 30s from the start")
            }
            guard at <= duration else { throw fields.error("at", "is after the end of the run (\(DurationText.format(duration)))", at: item["at"]) }
            let present = self.actionKeys.filter { fields.has($0) }
            guard present.count == 1, let key = present.first else {
                throw fields.error("", "needs exactly one of \(self.actionKeys.joined(separator: ", "))")
            }
            let undo = try fields.duration("for", in: .zero...self.longestDuration)
            if undo != nil, !self.undoable.contains(key) {
                throw fields.error("for", "only partition, pause, hold, netem and nemesis can be undone with for:", at: item["for"])
            }
            if key == "nemesis", undo == nil {
                throw fields.error("for", "is required for nemesis: how long the attack lasts, such as 20s (the cluster must recover after it)")
            }
            if let undo, at + undo > duration {
                throw fields.error("for", "ends after the end of the run", at: item["for"])
            }
            let id = try fields.int("id", in: 0...1_000_000) ?? index
            guard ids.insert(id).inserted else { throw fields.error("id", "\(id) is used by an earlier entry", at: item["id"]) }
            let action = try self.decodeAction(key, &fields, replicas: &replicas)
            try fields.finish()
            events.append(Scenario.Event(id: id, at: at, action: action, duration: undo, line: item.line))
        }
        return events
    }

    static func decodeAction(_ key: String, _ fields: inout YAMLFields, replicas: inout Int) throws(YAMLError) -> Scenario.Action {
        let node = fields.node[key]
        var body = try fields.mapping(key) ?? YAMLFields(YAMLNode(.scalar("", .plain), line: node?.line ?? 1, column: node?.column ?? 1), path: fields.keyPath(key), file: fields.file)
        let action: Scenario.Action
        switch key {
        case "rollout":
            let maxSurge = try body.int("maxSurge", in: 0...1_000) ?? 0
            let maxUnavailable = try body.int("maxUnavailable", in: 0...1_000) ?? 1
            guard maxSurge > 0 || maxUnavailable > 0 else {
                throw body.error("maxUnavailable", "maxSurge and maxUnavailable cannot both be 0", at: body.node["maxUnavailable"])
            }
            action = .rollout(maxUnavailable: maxUnavailable, maxSurge: maxSurge, minReadySeconds: try body.duration("minReadySeconds", in: .zero...self.longestDuration) ?? .zero)
        case "crash": action = .crash(try self.podList(&body, replicas: replicas))
        case "restart": action = .restart(try self.podList(&body, replicas: replicas))
        case "terminate": action = .terminate(try self.podList(&body, replicas: replicas))
        case "pause": action = .pause(try self.podList(&body, replicas: replicas))
        case "resume": action = .resume(try self.podList(&body, replicas: replicas))
        case "partition": action = .partition(try self.partitionShape(&body, replicas: replicas))
        case "heal": action = .heal
        case "recover": action = .recover
        case "hold", "release":
            let sources = try self.ordinals(&body, key: "from", replicas: replicas)
            let targets = try self.ordinals(&body, key: "to", replicas: replicas)
            let links = sources.flatMap { source in targets.filter { $0 != source }.map { SimNetwork.Link(from: source, to: $0) } }
            action = key == "hold" ? .hold(links) : .release(links)
        case "netem":
            let pods = try self.podList(&body, replicas: replicas)
            let clean = LinkProfile(latency: .zero, jitter: .zero, loss: 0, duplicate: 0, reorder: 0)
            action = .netem(pods: pods, profile: try self.decodeProfile(&body, base: clean))
        case "scale":
            guard let count = try body.int("replicas", in: 1...1_000) else { throw body.error("replicas", "is required") }
            replicas = max(replicas, count)
            action = .scale(replicas: count)
        case "stop-clients":
            action = .stopClients
        case "nemesis":
            action = .nemesis(try self.decodeNemesis(&body, replicas: replicas))
        case "add-agents":
            action = .addAgents(try self.decodeAgentGroup(&body, before: 0))
        case "gossip-keys":
            guard let keys = try self.decodeKeyNames(&body, key: "keys") else {
                throw body.error("keys", "is required: the key names the pods' key file now holds, the sealing one first")
            }
            let pods = body.has("pod") || body.has("pods") ? try self.podList(&body, replicas: replicas) : []
            action = .gossipKeys(pods: pods, keys: keys)
        default:
            throw fields.error(key, "is not an action")
        }
        try body.finish()
        return action
    }

    /// `pod: N` or `pods: [N, …]`, each an existing ordinal.
    static func podList(_ body: inout YAMLFields, replicas: Int) throws(YAMLError) -> [Int] {
        var pods: [Int] = []
        if let pod = try body.int("pod", in: 0...(replicas - 1)) { pods.append(pod) }
        if let items = try body.sequence("pods") {
            for (index, item) in items.enumerated() {
                guard let text = item.scalarText, let pod = Int(text), (0..<replicas).contains(pod) else {
                    throw body.error("pods[\(index)]", "must be a pod ordinal from 0 to \(replicas - 1)", at: item)
                }
                pods.append(pod)
            }
        }
        guard !pods.isEmpty else { throw body.error("pod", "name the pod with pod: N or pods: [N, ...]") }
        return Array(Set(pods)).sorted()
    }

    static func partitionShape(_ body: inout YAMLFields, replicas: Int) throws(YAMLError) -> PartitionShape {
        let shape = try body.requiredString("shape")
        switch shape {
        case "halves": return .halves
        case "random-halves": return .randomHalves
        case "bridge": return .bridge
        case "majorities-ring": return .majoritiesRing
        case "isolate":
            guard let pod = try body.int("pod", in: 0...(replicas - 1)) else { throw body.error("pod", "is required for isolate") }
            return .isolate(pod)
        case "one-way":
            let sources = try self.ordinals(&body, key: "from", replicas: replicas)
            let targets = try self.ordinals(&body, key: "to", replicas: replicas)
            return .oneWay(sources: sources, targets: targets)
        default:
            throw body.error("shape", "must be halves, random-halves, isolate, bridge, majorities-ring or one-way, got '\(shape)'", at: body.node["shape"])
        }
    }

    static func ordinals(_ body: inout YAMLFields, key: String, replicas: Int) throws(YAMLError) -> [Int] {
        guard let items = try body.sequence(key), !items.isEmpty else { throw body.error(key, "is required: a list of pod ordinals") }
        var pods: [Int] = []
        for (index, item) in items.enumerated() {
            guard let text = item.scalarText, let pod = Int(text), (0..<replicas).contains(pod) else {
                throw body.error("\(key)[\(index)]", "must be a pod ordinal from 0 to \(replicas - 1)", at: item)
            }
            pods.append(pod)
        }
        return pods
    }

    static func decodeChecks(_ spec: inout YAMLFields, duration: Duration) throws(YAMLError) -> [Scenario.Check] {
        var checks: [Scenario.Check] = []
        for (index, item) in (try spec.sequence("checks") ?? []).enumerated() {
            let path = "\(spec.keyPath("checks"))[\(index)]"
            var check = Scenario.Check(name: "", from: nil, to: nil, detection: .seconds(15), within: .seconds(30))
            var parameters: YAMLFields?
            if let name = item.scalarText {
                check.name = name
            } else {
                var fields = try YAMLFields(item, path: path, file: spec.file)
                check.name = try fields.requiredString("name")
                parameters = fields
            }
            guard self.checkNames.contains(check.name) else {
                throw YAMLError(file: spec.file, line: item.line, column: item.column, message: "\(path): unknown check '\(check.name)' (known: \(self.checkNames.joined(separator: ", ")))")
            }
            check.within = self.defaultWithin(check.name)
            if var fields = parameters {
                // Each parameter is read only for the checks that use it; `finish` rejects the rest by name.
                if check.name == "no-failed-requests" {
                    check.from = try fields.duration("from", in: .zero...self.longestDuration)
                    check.to = try fields.duration("to", in: .zero...self.longestDuration)
                    if let excuse = try fields.string("excuse") {
                        guard excuse == "no-reachable-holder" else {
                            throw fields.error("excuse", "must be no-reachable-holder, got '\(excuse)'", at: fields.node["excuse"])
                        }
                        check.excuseUnreachable = true
                    }
                }
                if check.name == "route-only-to-live-owners" { check.detection = try fields.duration("detection", in: .zero...self.longestDuration) ?? check.detection }
                if self.boundedChecks.contains(check.name) { check.within = try fields.duration("within", in: .zero...self.longestDuration) ?? check.within }
                if check.name == "tunnels-balanced" {
                    check.ratio = try fields.double("ratio", in: 1...100, unit: "times the mean") ?? check.ratio
                    check.moves = try fields.double("moves", in: 1...100, unit: "times the fewest moves")
                }
                try fields.finish()
            }
            checks.append(check)
        }
        return checks
    }

    /// `spec.expect`: `pass` (the default), `{fail: <check>, bug: "<which open bug>"}`, or
    /// `{fail: <check>, limitation: "<what no fix changes>"}`.
    static func decodeExpectation(_ spec: inout YAMLFields, checks: [Scenario.Check]) throws(YAMLError) -> Scenario.Expectation {
        guard let node = spec.node["expect"] else { return .pass }
        if let text = node.scalarText {
            guard text == "pass" else {
                throw spec.error("expect", "must be pass, {fail: <check>, bug: <text>} or {fail: <check>, limitation: <text>}, got '\(text)'", at: node)
            }
            _ = spec.node("expect")
            return .pass
        }
        guard var fields = try spec.mapping("expect") else { return .pass }
        let check = try fields.requiredString("fail")
        guard checks.contains(where: { $0.name == check }) else {
            throw fields.error("fail", "names '\(check)', which is not among spec.checks", at: fields.node["fail"])
        }
        let bug = try fields.string("bug")
        let limitation = try fields.string("limitation")
        try fields.finish()
        switch (bug, limitation) {
        case (let bug?, nil): return .fail(check: check, bug: bug)
        case (nil, let why?): return .limitation(check: check, why: why)
        default: throw fields.error("fail", "needs exactly one of bug (an open bug) or limitation (what no fix changes)", at: fields.node["fail"])
        }
    }
}
