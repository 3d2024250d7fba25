import PicoModel

// ==== ---- The `nemesis` timeline action ---------------------------------------------------------------

extension ScenarioDecoder {
    /// `nemesis: {rate: 200, kinds: [...], pods: [...], identities: 16}`: every value bounded, each
    /// problem naming the file, line and key.
    static func decodeNemesis(_ body: inout YAMLFields, replicas: Int) throws(YAMLError) -> NemesisAttack {
        let lowest = NemesisAttack.lowestRate
        let highest = NemesisAttack.highestRate
        guard let rate = try body.double("rate", in: lowest...highest, unit: "datagrams per second") else {
            throw body.error("rate", "is required: datagrams per second, from \(YAMLFields.decimal(lowest)) to \(YAMLFields.decimal(highest))")
        }
        var kinds = NemesisAttack.Kind.allCases
        if let items = try body.sequence("kinds") {
            guard !items.isEmpty else { throw body.error("kinds", "must name at least one kind (or leave kinds out for all of them)", at: body.node["kinds"]) }
            kinds = []
            for (index, item) in items.enumerated() {
                guard let text = item.scalarText, let kind = NemesisAttack.Kind(rawValue: text) else {
                    let known = NemesisAttack.Kind.allCases.map(\.rawValue).joined(separator: ", ")
                    throw body.error("kinds[\(index)]", "must be one of \(known), got '\(item.scalarText ?? "a collection")'", at: item)
                }
                if !kinds.contains(kind) { kinds.append(kind) }
            }
        }
        var pods: [Int] = []
        if body.has("pod") || body.has("pods") { pods = try self.podList(&body, replicas: replicas) }
        let identities = try body.int("identities", in: 1...NemesisAttack.mostIdentities) ?? 16
        return NemesisAttack(rate: rate, kinds: kinds.sorted(), pods: pods, identities: identities)
    }
}
