import PicoModel

/// A small deterministic multi-node harness: `ClusterNode`s exchanging *encoded* datagrams and
/// state messages through an in-memory queue ordered by (time, sequence), with a fake clock,
/// timers with replace semantics, partitions and crashes. Every step checks every node's
/// invariants.
struct TestCluster {
    struct Slot {
        var node: ClusterNode
        var isRunning = true
        var exited: Lifecycle.ExitReason?
        var ready = false
        var timerGenerations: [TimerID: Int] = [:]
        var events: [ClusterEvent] = []
        var eventTimes: [Instant] = []
        var routes: [(RequestID, RouteDecision)] = []
        var closedTunnels: [TunnelID] = []
        var movedTunnels: [TunnelID] = []
    }

    enum Delivery {
        case input(ClusterInput)
        case timer(TimerID, generation: Int)
        /// The agent of `tunnel` (asked to move by node `from`) opens its replacement elsewhere.
        case agentReconnect(tunnel: TunnelID, endpoint: String)
        /// Every running node receives one client request for the traffic endpoint.
        case trafficTick
    }

    /// Traffic and agent bookkeeping for hand-over tests.
    struct Traffic {
        var endpoint: String
        var interval: Duration = .milliseconds(10)
        var streamDuration: Duration = .milliseconds(25)
        /// How long an agent takes to open its replacement tunnel after being asked to move.
        var agentDelay: Duration = .milliseconds(50)
        var requests = 0
        var completed = 0
        var failures: [String] = []
        var removedTunnels: [Int: Set<TunnelID>] = [:]
        var tunnelEndpoints: [TunnelID: String] = [:]
        var nextTunnel: UInt64 = 1_000
        var nextRequest: UInt64 = 1
    }

    struct Scheduled {
        var time: Instant
        var sequence: UInt64
        var target: Int
        var delivery: Delivery
    }

    var slots: [Slot] = []
    var queue: [Scheduled] = []
    var now = Instant.zero
    var nextSequence: UInt64 = 0
    var latency: Duration = .milliseconds(1)
    /// Probability that a datagram is lost (drawn from `networkRNG`).
    var lossRate = 0.0
    var networkRNG = SplitMix64(seed: 0xC0FFEE)
    var blocked: Set<[Int]> = []
    var violations: [String] = []
    var nextShellExchange: UInt64 = 1_000_000
    var pendingReplies: [UInt64: (initiator: Int, exchange: ExchangeID, responder: Int)] = [:]
    var datagramsSent = 0
    var bytesSent = 0
    /// Which node indexes DNS returns for the seed name (nil: every running node).
    var dnsListing: [Int]?
    var seedName = "pico"
    var traffic: Traffic?

    static func address(_ index: Int, port: UInt16 = 8003) -> Address {
        Address(host: "10.0.0.\(index + 1)", port: port)
    }

    static func configuration(_ index: Int, seed: UInt64, join: [String], epoch: UInt64 = 0) -> ClusterConfiguration {
        var configuration = ClusterConfiguration(
            gossipAddress: address(index), proxyAddress: address(index, port: 8000), adminAddress: address(index, port: 8002),
            randomSeed: seed &* 1_000_003 &+ UInt64(index))
        configuration.nodeNamePrefix = "pico-\(index)-"
        configuration.join = join
        configuration.epoch = epoch
        return configuration
    }

    /// Adds and starts `count` nodes joining through the seed name.
    mutating func addNodes(_ count: Int, seed: UInt64 = 1, join: Bool = true, configure: (inout ClusterConfiguration) -> Void = { _ in }) {
        for _ in 0..<count {
            let index = self.slots.count
            var configuration = Self.configuration(index, seed: seed, join: join ? [self.seedName] : [], epoch: UInt64(self.now.nanoseconds / 1_000_000))
            configure(&configuration)
            self.slots.append(Slot(node: try! ClusterNode(configuration: configuration)))
            self.deliver(.start, to: index)
        }
    }

    /// Replaces node `index` with a new process at the same address (new UID, new name suffix).
    mutating func restart(_ index: Int, seed: UInt64) {
        var configuration = Self.configuration(index, seed: seed, join: [self.seedName], epoch: UInt64(self.now.nanoseconds / 1_000_000) + 1)
        configuration.randomSeed = seed
        var slot = Slot(node: try! ClusterNode(configuration: configuration))
        // Keep generation numbers rising so timers armed by the old process never fire in the new one.
        slot.timerGenerations = self.slots[index].timerGenerations
        self.slots[index] = slot
        self.deliver(.start, to: index)
    }

    mutating func crash(_ index: Int) {
        self.slots[index].isRunning = false
    }

    mutating func partition(_ sideA: [Int], _ sideB: [Int]) {
        for a in sideA {
            for b in sideB {
                self.blocked.insert([a, b])
                self.blocked.insert([b, a])
            }
        }
    }

    mutating func heal() {
        self.blocked.removeAll()
    }

    func canReach(_ from: Int, _ to: Int) -> Bool {
        self.slots[to].isRunning && !self.blocked.contains([from, to])
    }

    func index(of address: Address) -> Int? {
        self.slots.indices.first { Self.address($0) == address }
    }

    mutating func schedule(_ delivery: Delivery, to target: Int, at time: Instant) {
        self.queue.append(Scheduled(time: time, sequence: self.nextSequence, target: target, delivery: delivery))
        self.nextSequence += 1
    }

    /// Feeds `input` to node `index` now and carries out its directives.
    mutating func deliver(_ input: ClusterInput, to index: Int) {
        guard self.slots[index].isRunning, self.slots[index].exited == nil else { return }
        let directives = self.slots[index].node.handle(input, now: self.now)
        for problem in self.slots[index].node.checkInvariants() {
            self.violations.append("node \(index) at \(self.now) after \(input): \(problem)")
        }
        for directive in directives { self.carryOut(directive, from: index) }
    }

    mutating func carryOut(_ directive: ClusterDirective, from index: Int) {
        switch directive {
        case .sendDatagram(let bytes, let address):
            self.datagramsSent += 1
            self.bytesSent += bytes.count
            if bytes.count > self.slots[index].node.configuration.membership.maxPacketSize {
                self.violations.append("node \(index) sent a \(bytes.count)-byte datagram")
            }
            let lost = self.lossRate > 0 && self.networkRNG.unitInterval() < self.lossRate
            if !lost, let target = self.index(of: address), self.canReach(index, target) {
                self.schedule(.input(.datagramReceived(bytes, from: Self.address(index))), to: target, at: self.now + self.latency)
            }
        case .openStateExchange(let id, let address, let bytes):
            if let target = self.index(of: address), self.canReach(index, target) {
                let shellID = self.nextShellExchange
                self.nextShellExchange += 1
                self.pendingReplies[shellID] = (index, id, target)
                self.schedule(.input(.stateExchangeRequested(ExchangeID(shellID), bytes: bytes, from: Self.address(index))), to: target, at: self.now + self.latency)
            } else {
                self.schedule(.input(.stateExchangeFailed(id, reason: "unreachable")), to: index, at: self.now + .milliseconds(10))
            }
        case .replyStateExchange(let id, let bytes):
            if let pending = self.pendingReplies.removeValue(forKey: id.rawValue) {
                let input: ClusterInput = self.canReach(index, pending.initiator)
                    ? .stateExchangeReplied(pending.exchange, bytes: bytes) : .stateExchangeFailed(pending.exchange, reason: "unreachable")
                self.schedule(.input(input), to: pending.initiator, at: self.now + self.latency)
            }
        case .schedule(let timer, let instant):
            let generation = (self.slots[index].timerGenerations[timer] ?? 0) + 1
            self.slots[index].timerGenerations[timer] = generation
            self.schedule(.timer(timer, generation: generation), to: index, at: max(instant, self.now))
        case .resolveSeeds:
            let listed = (self.dnsListing ?? Array(self.slots.indices)).filter { self.slots[$0].isRunning && self.slots[$0].exited == nil }
            self.schedule(.input(.seedsResolved(listed.map { Self.address($0) })), to: index, at: self.now + .milliseconds(2))
        case .route(let id, let decision):
            self.slots[index].routes.append((id, decision))
            self.followRoute(decision, at: index)
        case .tellAgentToMove(let tunnel):
            self.slots[index].movedTunnels.append(tunnel)
            if let endpoint = self.traffic?.tunnelEndpoints[tunnel] {
                self.schedule(.agentReconnect(tunnel: tunnel, endpoint: endpoint), to: index, at: self.now + (self.traffic?.agentDelay ?? .zero))
            }
        case .closeTunnel(let tunnel):
            self.slots[index].closedTunnels.append(tunnel)
            self.traffic?.removedTunnels[index, default: []].insert(tunnel)
            self.schedule(.input(.tunnelClosed(tunnel)), to: index, at: self.now + self.latency)
        case .setReadiness(let ready):
            self.slots[index].ready = ready
        case .exit(let reason):
            self.slots[index].exited = reason
        case .event(let event):
            self.slots[index].events.append(event)
            self.slots[index].eventTimes.append(self.now)
        }
    }

    /// Processes every queued delivery up to `deadline`, in (time, sequence) order.
    mutating func run(until deadline: Instant) {
        while let position = self.nextPosition(), self.queue[position].time <= deadline {
            let item = self.queue.remove(at: position)
            self.now = item.time
            switch item.delivery {
            case .input(let input):
                self.deliver(input, to: item.target)
            case .timer(let timer, let generation):
                if self.slots[item.target].timerGenerations[timer] == generation {
                    self.deliver(.timerFired(timer), to: item.target)
                }
            case .agentReconnect(let tunnel, let endpoint):
                // Make-before-break: open the new tunnel on another ready node first; the old one
                // is closed by its node once idle and served elsewhere.
                if let target = self.runningIndexes.first(where: { $0 != item.target && self.slots[$0].ready }) {
                    self.openTunnel(endpoint: endpoint, on: target)
                } else {
                    self.schedule(.agentReconnect(tunnel: tunnel, endpoint: endpoint), to: item.target, at: self.now + .milliseconds(100))
                }
            case .trafficTick:
                guard var traffic = self.traffic else { break }
                for index in self.runningIndexes {
                    traffic.requests += 1
                    let id = RequestID(traffic.nextRequest)
                    traffic.nextRequest += 1
                    self.traffic = traffic
                    self.deliver(.routeRequest(id, endpoint: traffic.endpoint, forwarded: false), to: index)
                    traffic = self.traffic ?? traffic
                }
                self.schedule(.trafficTick, to: 0, at: self.now + traffic.interval)
            }
        }
        self.now = max(self.now, deadline)
    }

    mutating func run(for duration: Duration) {
        self.run(until: self.now + duration)
    }

    func nextPosition() -> Int? {
        guard !self.queue.isEmpty else { return nil }
        var best = 0
        for index in self.queue.indices.dropFirst() {
            let candidate = self.queue[index]
            let current = self.queue[best]
            if (candidate.time, candidate.sequence) < (current.time, current.sequence) { best = index }
        }
        return best
    }

    // MARK: - Traffic

    /// Starts client traffic: every `interval`, one request for `endpoint` at every running node.
    mutating func startTraffic(endpoint: String) {
        if self.traffic == nil { self.traffic = Traffic(endpoint: endpoint) }
        self.traffic!.endpoint = endpoint
        self.schedule(.trafficTick, to: 0, at: self.now + .milliseconds(10))
    }

    /// An agent opens a tunnel for `endpoint` on node `index`.
    @discardableResult
    mutating func openTunnel(endpoint: String, on index: Int) -> TunnelID {
        if self.traffic == nil { self.traffic = Traffic(endpoint: endpoint) }
        let id = TunnelID(self.traffic!.nextTunnel)
        self.traffic!.nextTunnel += 1
        self.traffic!.tunnelEndpoints[id] = endpoint
        self.deliver(.tunnelOpened(id, endpoint: endpoint), to: index)
        return id
    }

    /// Carries a routed request on: a local stream finishes later; a forward reaches the target
    /// node, which must still be running; a rejection is a failure.
    mutating func followRoute(_ decision: RouteDecision, at index: Int) {
        guard self.traffic != nil else { return }
        switch decision {
        case .local(let tunnel):
            if self.traffic!.removedTunnels[index]?.contains(tunnel) ?? false {
                self.traffic!.failures.append("node \(index) routed to removed \(tunnel) at \(self.now)")
            } else {
                self.traffic!.completed += 1
                self.schedule(.input(.streamFinished(tunnel)), to: index, at: self.now + self.traffic!.streamDuration)
            }
        case .forward(let uid, _, _):
            guard let target = self.slots.indices.first(where: { self.slots[$0].node.me.uid == uid }),
                self.slots[target].isRunning, self.slots[target].exited == nil
            else {
                self.traffic!.failures.append("node \(index) forwarded to a node that is gone at \(self.now)")
                return
            }
            let id = RequestID(self.traffic!.nextRequest)
            self.traffic!.nextRequest += 1
            self.deliver(.routeRequest(id, endpoint: self.traffic!.endpoint, forwarded: true), to: target)
        case .reject(let rejection):
            self.traffic!.failures.append("node \(index) rejected with \(rejection) at \(self.now)")
        }
    }

    // MARK: - Views

    func liveNames(seenBy index: Int) -> [String] {
        self.slots[index].node.memberViews.filter { $0.state.status == .alive || $0.state.status == .suspect }.map(\.info.name).sorted()
    }

    func status(of subject: Int, seenBy observer: Int) -> MemberStatus? {
        let uid = self.slots[subject].node.me.uid
        if let member = self.slots[observer].node.membership.member(uid) { return member.state.status }
        return self.slots[observer].node.membership.tombstone(uid)?.status
    }

    /// The statuses `uid` moved to, as node `observer` saw it, in order.
    func statusChanges(of uid: NodeUID, seenBy observer: Int) -> [MemberStatus] {
        self.slots[observer].events.compactMap {
            if case .membership(.memberStatusChanged(let subject, _, _, let to)) = $0, subject == uid { return to.status }
            return nil
        }
    }

    var runningIndexes: [Int] {
        self.slots.indices.filter { self.slots[$0].isRunning && self.slots[$0].exited == nil }
    }

    /// True when every running node sees exactly the running nodes' current UIDs as live.
    func hasConverged() -> Bool {
        let expected = self.runningIndexes.map { self.slots[$0].node.me.uid }.sorted()
        return self.runningIndexes.allSatisfy { index in
            self.slots[index].node.memberViews.filter { $0.state.status == .alive || $0.state.status == .suspect }.map(\.info.uid).sorted() == expected
        }
    }
}
