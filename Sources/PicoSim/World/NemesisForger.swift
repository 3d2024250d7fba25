import PicoModel

/// What the attacker has learnt by sniffing the network: the pods' current identities, the
/// endpoints agents serve, and the datagrams it captured. The simulator fills it from the world;
/// a real attacker learns the same from one ping and a few captured datagrams.
struct NemesisKnowledge {
    /// A running pod as the attacker sees it.
    struct Peer {
        var info: NodeInfo
        var incarnation: UInt64
        var endpointVersion: UInt64
    }

    /// Every pod with a process, in pod order.
    var peers: [Peer]
    /// The pod being sent to.
    var target: Peer
    /// Endpoint names the agents serve (sorted, unique).
    var endpoints: [String]
    /// Captured datagrams, oldest first.
    var sniffed: [[UInt8]]
    /// The attacker's made-up UIDs.
    var identities: [NodeUID]
}

/// One forged input.
enum NemesisPayload {
    /// A UDP datagram to the target's gossip address.
    case datagram([UInt8])
    /// A state exchange opened to the target's gossip address (the stream path).
    case exchange([UInt8])
}

/// Builds the attacker's inputs. Pure: every choice comes from the `SplitMix64` passed in.
enum NemesisForger {
    static let extreme64: [UInt64] = [0, 1, .max - 1, .max]
    static let extreme32: [UInt32] = [0, 1, .max - 1, .max]
    static let extreme16: [UInt16] = [0, 1, .max - 1, .max]

    /// One input of `kind` for `knowledge.target`; nil when the kind has nothing to send yet (a
    /// replay before any datagram was captured).
    static func forge(_ kind: NemesisAttack.Kind, _ knowledge: NemesisKnowledge, rng: inout SplitMix64) -> NemesisPayload? {
        switch kind {
        case .garbage: return .datagram(self.garbage(knowledge, rng: &rng))
        case .extreme: return .datagram(self.extremeDatagram(knowledge, rng: &rng))
        case .replay:
            guard !knowledge.sniffed.isEmpty else { return nil }
            return .datagram(knowledge.sniffed[rng.index(below: knowledge.sniffed.count)])
        case .impersonate: return self.impersonation(knowledge, rng: &rng).map(NemesisPayload.datagram)
        case .forgedMembers: return .datagram(self.forgedMembers(knowledge, rng: &rng))
        case .forgedEndpoints: return .datagram(self.forgedEndpoints(knowledge, rng: &rng))
        case .forgedExchange: return .exchange(self.forgedExchange(knowledge, rng: &rng))
        }
    }

    // MARK: - Values

    static func pick<T>(_ values: [T], _ rng: inout SplitMix64) -> T { values[rng.index(below: values.count)] }

    static func bytes(_ count: Int, _ rng: inout SplitMix64) -> [UInt8] {
        (0..<count).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
    }

    /// A UID the message is about: a real member, the target itself, a made-up one, or an extreme.
    static func subject(_ knowledge: NemesisKnowledge, _ rng: inout SplitMix64) -> NodeUID {
        switch rng.index(below: 4) {
        case 0: return self.pick(knowledge.peers, &rng).info.uid
        case 1: return knowledge.target.info.uid
        case 2: return self.pick(knowledge.identities, &rng)
        default: return NodeUID(self.pick([1, .max - 1, .max], &rng))
        }
    }

    /// An address: made up in the attacker's range, a real member's, or one with an extreme port.
    static func address(_ knowledge: NemesisKnowledge, _ rng: inout SplitMix64) -> Address {
        switch rng.index(below: 3) {
        case 0: return Address(host: "192.0.2.\(1 + rng.index(below: 254))", port: 8003)
        case 1: return self.pick(knowledge.peers, &rng).info.gossipAddress
        default: return Address(host: "198.51.100.\(1 + rng.index(below: 254))", port: self.pick(self.extreme16, &rng))
        }
    }

    static func name(_ rng: inout SplitMix64) -> String {
        let length = self.pick([0, 1, 16, GossipCodec.maxNameBytes], &rng)
        return String(repeating: "x", count: length)
    }

    static func datagram(sender: NodeUID, endpointVersion: UInt64 = 0, _ messages: [GossipMessage]) -> [UInt8] {
        GossipCodec.datagram(sender: sender, endpointVersion: endpointVersion, messages: messages)
    }

    // MARK: - Kinds

    static func garbage(_ knowledge: NemesisKnowledge, rng: inout SplitMix64) -> [UInt8] {
        switch rng.index(below: 4) {
        case 0:
            return self.bytes(rng.index(below: 1_501), &rng)
        case 1:
            return [GossipCodec.magic, GossipCodec.version] + self.bytes(rng.index(below: 200), &rng)
        case 2:
            // Truncate a real datagram, or one of ours.
            let real = knowledge.sniffed.isEmpty ? self.extremeDatagram(knowledge, rng: &rng) : self.pick(knowledge.sniffed, &rng)
            return Array(real.prefix(rng.index(below: max(1, real.count))))
        default:
            var real = knowledge.sniffed.isEmpty ? self.extremeDatagram(knowledge, rng: &rng) : self.pick(knowledge.sniffed, &rng)
            guard !real.isEmpty else { return real }
            for _ in 0..<(1 + rng.index(below: 4)) { real[rng.index(below: real.count)] ^= UInt8(1 << rng.index(below: 8)) }
            return real
        }
    }

    /// One well-formed message of a membership or probe kind with extreme values.
    static func extremeMessage(_ knowledge: NemesisKnowledge, _ rng: inout SplitMix64) -> GossipMessage {
        let subject = self.subject(knowledge, &rng)
        let sequence = self.pick(self.extreme32, &rng)
        let incarnation = self.pick(self.extreme64, &rng)
        switch rng.index(below: 9) {
        case 0: return .ping(sequence: sequence, target: subject)
        case 1: return .ack(sequence: sequence, target: subject, incarnation: incarnation)
        case 2: return .pingRequest(sequence: sequence, target: subject, targetAddress: self.address(knowledge, &rng))
        case 3: return .nack(sequence: sequence, target: subject)
        case 4:
            let info = NodeInfo(
                uid: subject, name: self.name(&rng), gossipAddress: self.address(knowledge, &rng),
                proxyAddress: self.address(knowledge, &rng), adminAddress: self.address(knowledge, &rng), epoch: self.pick(self.extreme64, &rng))
            return .alive(info: info, incarnation: incarnation, draining: rng.index(below: 2) == 0)
        case 5: return .suspect(subject: subject, incarnation: incarnation, accuser: self.subject(knowledge, &rng))
        case 6: return .dead(subject: subject, incarnation: incarnation, accuser: self.subject(knowledge, &rng))
        case 7: return .left(subject: subject, incarnation: incarnation)
        default: return .leaveAck(subject: subject)
        }
    }

    static func extremeDatagram(_ knowledge: NemesisKnowledge, rng: inout SplitMix64) -> [UInt8] {
        let messages = (0..<(1 + rng.index(below: 3))).map { _ in self.extremeMessage(knowledge, &rng) }
        let sender = rng.index(below: 2) == 0 ? self.pick(knowledge.identities, &rng) : NodeUID(self.pick([1, .max - 1, .max], &rng))
        return self.datagram(sender: sender, endpointVersion: self.pick(self.extreme64, &rng), messages)
    }

    /// Claims in a real member's name, at the incarnations the attacker saw (nil with one pod).
    static func impersonation(_ knowledge: NemesisKnowledge, rng: inout SplitMix64) -> [UInt8]? {
        let others = knowledge.peers.filter { $0.info.uid != knowledge.target.info.uid }
        guard !others.isEmpty else { return nil }
        let sender = self.pick(others, &rng)
        let about = self.pick(knowledge.peers, &rng)
        let message: GossipMessage
        switch rng.index(below: 6) {
        case 0: message = .ping(sequence: UInt32(truncatingIfNeeded: rng.next()), target: knowledge.target.info.uid)
        case 1: message = .suspect(subject: about.info.uid, incarnation: about.incarnation, accuser: sender.info.uid)
        case 2: message = .dead(subject: about.info.uid, incarnation: about.incarnation, accuser: sender.info.uid)
        case 3: message = .left(subject: sender.info.uid, incarnation: sender.incarnation)
        case 4: message = .alive(info: about.info, incarnation: about.incarnation, draining: true)
        default: message = .leaveAck(subject: knowledge.target.info.uid)
        }
        return self.datagram(sender: sender.info.uid, endpointVersion: sender.endpointVersion, [message])
    }

    /// A made-up member announced alive: at a made-up address, or at a real member's address with a
    /// later epoch (which supersedes the real process there).
    static func forgedMembers(_ knowledge: NemesisKnowledge, rng: inout SplitMix64) -> [UInt8] {
        let uid = self.pick(knowledge.identities, &rng)
        let address: Address
        var epoch = UInt64(rng.index(below: 1_000))
        if rng.index(below: 8) == 0 {
            let victim = self.pick(knowledge.peers, &rng).info
            address = victim.gossipAddress
            epoch = victim.epoch &+ 1
        } else {
            address = Address(host: "192.0.2.\(1 + Int(uid.rawValue % 250))", port: 8003)
        }
        let info = NodeInfo(uid: uid, name: "ghost-\(uid.rawValue % 10_000)", gossipAddress: address, proxyAddress: Address(host: address.host, port: 8000),
            adminAddress: Address(host: address.host, port: 8002), epoch: epoch)
        return self.datagram(sender: uid, [.alive(info: info, incarnation: UInt64(rng.index(below: 3)), draining: false)])
    }

    /// An endpoint delta of a real or a made-up owner, with extreme versions and counts.
    static func forgedEndpoints(_ knowledge: NemesisKnowledge, rng: inout SplitMix64) -> [UInt8] {
        let owner = rng.index(below: 2) == 0 ? self.pick(knowledge.peers, &rng).info.uid : self.pick(knowledge.identities, &rng)
        let endpoint = knowledge.endpoints.isEmpty || rng.index(below: 3) == 0 ? "forged-\(rng.index(below: 4))" : self.pick(knowledge.endpoints, &rng)
        let base = self.pick([0, 1, UInt64.max - 2], &rng)
        let version = base + self.pick([1, 2], &rng)
        let entry = EndpointDelta.Entry(endpoint: endpoint, count: self.pick(self.extreme32, &rng), version: version)
        let sender = rng.index(below: 2) == 0 ? owner : self.pick(knowledge.identities, &rng)
        return self.datagram(sender: sender, [.endpointDelta(EndpointDelta(owner: owner, base: base, entries: [entry]))])
    }

    /// A state exchange: garbage, or a full state with made-up members, tombstones of real members
    /// and endpoint snapshots with extreme versions.
    static func forgedExchange(_ knowledge: NemesisKnowledge, rng: inout SplitMix64) -> [UInt8] {
        if rng.index(below: 4) == 0 { return self.bytes(rng.index(below: 2_000), &rng) }
        let sender = self.pick(knowledge.identities, &rng)
        var members: [StateExchange.MemberRecord] = []
        for uid in Array(Set((0..<(1 + rng.index(below: 4))).map { _ in self.pick(knowledge.identities, &rng) }).sorted()) {
            let address = Address(host: "192.0.2.\(1 + Int(uid.rawValue % 250))", port: 8003)
            let info = NodeInfo(uid: uid, name: "ghost-\(uid.rawValue % 10_000)", gossipAddress: address, proxyAddress: address, adminAddress: address, epoch: 0)
            members.append(StateExchange.MemberRecord(info: info, state: MemberState(.alive, self.pick(self.extreme64, &rng)), draining: false))
        }
        var tombstones: [StateExchange.TombstoneRecord] = []
        if rng.index(below: 2) == 0 {
            let victim = self.pick(knowledge.peers, &rng)
            tombstones.append(StateExchange.TombstoneRecord(uid: victim.info.uid, status: rng.index(below: 2) == 0 ? .dead : .left, incarnation: victim.incarnation, address: nil))
        }
        var endpoints: [StateExchange.EndpointSnapshot] = []
        if rng.index(below: 2) == 0 {
            let owner = self.pick(knowledge.peers, &rng).info.uid
            let version = self.pick(self.extreme64.filter { $0 > 0 }, &rng)
            let endpoint = knowledge.endpoints.isEmpty ? "forged" : self.pick(knowledge.endpoints, &rng)
            endpoints.append(StateExchange.EndpointSnapshot(owner: owner, version: version, entries: [EndpointDelta.Entry(endpoint: endpoint, count: 1, version: version)]))
        }
        let state = StateExchange(
            purpose: self.pick([.join, .pushPull, .reconnect], &rng), isReply: false, sender: sender, members: members, tombstones: tombstones, endpoints: endpoints)
        return GossipCodec.encode(state)
    }
}
