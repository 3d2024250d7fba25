import PicoModel

// ==== ---- The nemesis: forged and garbled gossip from outside the cluster ---------------------------

extension SimWorld {
    /// Starts attack `id` (a timeline entry's stable ID): its randomness comes from its own stream
    /// (seed, id), so other subsystems' draws never change because of it.
    public mutating func startNemesis(_ attack: NemesisAttack, id: Int) {
        guard !attack.kinds.isEmpty, attack.rate > 0 else { return }
        self.stopNemesis(id: id)
        var rng = self.streams.stream("nemesis/event/\(id)")
        // Made-up UIDs: never 0 (not a valid UID on the wire); a clash with a real one is 2^-64 likely.
        let identities = (0..<max(1, attack.identities)).map { _ in NodeUID(rng.next() | 1) }
        self.nemesis.running.append(SimNemesis.Running(id: id, attack: attack, identities: identities, rng: rng))
        self.nemesis.windows.append(SimNemesis.Window(from: self.now, to: nil))
        self.record("nemesis-start", "", UInt64(id))
        self.queue.schedule(.nemesis(id: id), at: self.now + Self.nemesisInterval(attack))
    }

    /// Stops attack `id` (nothing when it is not running).
    public mutating func stopNemesis(id: Int) {
        guard let position = self.nemesis.running.firstIndex(where: { $0.id == id }) else { return }
        self.nemesis.running.remove(at: position)
        if let open = self.nemesis.windows.lastIndex(where: { $0.to == nil }) { self.nemesis.windows[open].to = self.now }
        self.record("nemesis-stop", "", UInt64(id))
    }

    /// Stops every attack (`recover`).
    public mutating func stopAllNemeses() {
        for id in self.nemesis.running.map(\.id) { self.stopNemesis(id: id) }
    }

    static func nemesisInterval(_ attack: NemesisAttack) -> Duration {
        .nanoseconds(Int64(1_000_000_000 / attack.rate))
    }

    /// Attack `id`'s next input is due: forge one, send it to a target, schedule the next.
    mutating func nemesisTick(id: Int) {
        guard let position = self.nemesis.running.firstIndex(where: { $0.id == id }) else { return }
        var running = self.nemesis.running[position]
        defer {
            self.nemesis.running[position] = running
            self.queue.schedule(.nemesis(id: id), at: self.now + Self.nemesisInterval(running.attack))
        }
        let candidates = (running.attack.pods.isEmpty ? Array(self.pods.indices) : running.attack.pods)
            .filter { $0 < self.pods.count && self.pods[$0].state.hasProcess }
        guard !candidates.isEmpty else { return }
        let target = candidates[running.rng.index(below: candidates.count)]
        let kind = running.attack.kinds[running.rng.index(below: running.attack.kinds.count)]
        guard let knowledge = self.nemesisKnowledge(target: target, identities: running.identities),
            let payload = NemesisForger.forge(kind, knowledge, rng: &running.rng)
        else { return }
        self.nemesis.sent[NemesisAttack.Kind.allCases.firstIndex(of: kind) ?? 0] += 1
        self.record("nemesis", kind.rawValue, UInt64(target))
        let boot = self.pods[target].boot
        let source = NemesisAttack.attackerAddress
        switch payload {
        case .datagram(let bytes):
            guard case .delivered(let times) = self.network.sendFromOutside(to: target, now: self.now, rng: &running.rng) else { return }
            self.nemesis.delivered += 1
            for time in times { self.queue.schedule(.input(pod: target, boot: boot, .datagramReceived(bytes, from: source)), at: time) }
        case .exchange(let bytes):
            // A stream nobody waits for: the pod's reply finds no pending stream and is dropped.
            let stream = self.nextStreamID
            self.nextStreamID += 1
            let delay = SimNetwork.delay(self.network.profile(from: target, to: target), rng: &running.rng)
            self.nemesis.delivered += 1
            self.queue.schedule(.input(pod: target, boot: boot, .stateExchangeRequested(ExchangeID(stream), bytes: bytes, from: source)), at: self.now + delay)
        }
    }

    /// What the attacker knows when it sends to `target`: every pod's current identity (one ping
    /// tells it), the served endpoints and the captured datagrams.
    func nemesisKnowledge(target: Int, identities: [NodeUID]) -> NemesisKnowledge? {
        func peer(_ node: ClusterNode) -> NemesisKnowledge.Peer {
            NemesisKnowledge.Peer(info: node.me, incarnation: node.membership.incarnation, endpointVersion: node.endpoints.localVersion)
        }
        guard let targetNode = self.pods[target].node else { return nil }
        let peers = self.pods.filter(\.hasProcess).compactMap(\.node).map(peer)
        let endpoints = Array(Set(self.traffic.agents.map(\.spec.endpoint))).sorted()
        return NemesisKnowledge(peers: peers, target: peer(targetNode), endpoints: endpoints, sniffed: self.nemesis.capture, identities: identities)
    }
}
