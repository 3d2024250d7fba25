import PicoModel

/// `pico status gossip keys`: every member's gossip key fingerprints, asked through one node
/// (its own at `/status/gossip/keys`, the others' with `?forward=`), so an operator sees each
/// step of a key rotation reach every member.
extension StatusCommand {
    /// The members to ask, from the asked node's `/status/cluster/nodes` answer: the asked node
    /// (the answer's first row) and every other that is not dead or left, by ID, each with its
    /// route; nil when the answer is not that list.
    public func memberKeyPaths(nodesBody: String) -> [(id: String, path: String)]? {
        guard case .array(let rows)? = try? JSONValue.parse(nodesBody) else { return nil }
        var members: [(id: String, path: String)] = []
        for (index, row) in rows.enumerated() {
            guard let id = Self.field("id", of: row) else { return nil }
            if index == 0 {
                members.append((id, "/status/gossip/keys"))
            } else if !["dead", "left"].contains(Self.field("status", of: row) ?? "") {
                members.append((id, "/status/gossip/keys?forward=" + Self.escape(id)))
            }
        }
        return [members.first].compactMap { $0 } + members.dropFirst().sorted { $0.id < $1.id }
    }

    /// One row per member (a member that could not be asked says why), and whether every member
    /// that answered holds the same keys in the same order; exit status 1 when any could not be
    /// asked.
    public func renderMemberKeys(_ answers: [(id: String, status: Int, body: String)]) -> (text: String, exitStatus: Int32) {
        var rows: [JSONValue] = []
        var keySets: [String] = []
        var failed = false
        for answer in answers {
            if answer.status == 200, case .object(let pairs)? = try? JSONValue.parse(answer.body) {
                rows.append(.object(pairs))
                if let keys = pairs.first(where: { $0.0 == "keys" })?.1 { keySets.append(keys.prettyJSON()) }
            } else {
                failed = true
                var reason = answer.status == 0 ? answer.body : "\(answer.status)"
                if case .object(let pairs)? = try? JSONValue.parse(answer.body), let error = pairs.first(where: { $0.0 == "error" })?.1.scalarText {
                    reason = "\(answer.status) \(error)"
                }
                rows.append(.object([("id", .string(answer.id)), ("error", .string(reason))]))
            }
        }
        var text = self.output.render(.array(rows))
        if self.output == .table {
            let agree = Set(keySets).count <= 1
            text += agree ? "every member that answered holds the same keys\n" : "members hold different keys (a rotation step has not reached every member)\n"
        }
        return (text, failed ? 1 : 0)
    }
}
