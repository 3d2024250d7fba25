// A `ClusterNode` with a fixed seed that already knows three live peers, a dead and a left node,
// and an endpoint of one peer, plus a driver that plays the shell: it keeps the timers the node
// arms and fires them as time advances, and remembers the state exchanges the node opened.
//
// Fuzzed messages may name a UID by a small number (1 to 7) instead of eight random bytes; the
// driver substitutes the node's own UID (1), a live peer (2 to 4), the dead one (5), the left one
// (6) or a stranger (7), so messages about the node itself and about every kind of member are
// one byte away for the fuzzer.
@testable import PicoModel

struct GossipFixture: Sendable {
    static let peers: [NodeInfo] = (1...3).map { index in
        NodeInfo(
            uid: NodeUID(0x1000 + UInt64(index)), name: "fuzz-\(index)", gossipAddress: Address(host: "10.0.0.\(index + 1)", port: 7946),
            proxyAddress: Address(host: "10.0.0.\(index + 1)", port: 8000), adminAddress: Address(host: "10.0.0.\(index + 1)", port: 8002),
            epoch: 1)
    }
    static let deadUID = NodeUID(0x2001)
    static let leftUID = NodeUID(0x2002)
    static let strangerUID = NodeUID(0x3001)
    static let deadAddress = Address(host: "10.0.0.9", port: 7946)
    static let strangerAddress = Address(host: "192.0.2.1", port: 7946)

    /// The node after it started alone and learned its peers (built once, copied per input).
    static let prepared: GossipFixture = {
        var configuration = ClusterConfiguration(
            gossipAddress: Address(host: "10.0.0.1", port: 7946), proxyAddress: Address(host: "10.0.0.1", port: 8000),
            adminAddress: Address(host: "10.0.0.1", port: 8002), randomSeed: 20)
        configuration.nodeName = "fuzz-0"
        let node: ClusterNode
        do { node = try ClusterNode(configuration: configuration) } catch { fatalError("fixture configuration: \(error)") }
        var fixture = GossipFixture(node: node)
        fixture.apply(.start)
        fixture.advance(by: .seconds(2))
        fixture.apply(.stateExchangeRequested(ExchangeID(1_000_000), bytes: GossipCodec.encode(fixtureState), from: peers[0].gossipAddress))
        fixture.apply(.tunnelOpened(TunnelID(1), endpoint: "svc", tenant: "blue", wallMilliseconds: 1_000))
        fixture.advance(by: .milliseconds(500))
        fixture.check()
        precondition(fixture.node.membership.liveMemberCount == 3, "fixture: the node should know its three peers")
        return fixture
    }()

    /// The prepared node a push/pull period later, with the state exchange it opened still pending.
    static let awaitingReply: GossipFixture = {
        var fixture = prepared
        fixture.advance(by: fixture.node.configuration.membership.pushPullInterval + .seconds(1))
        precondition(!fixture.pendingExchanges.isEmpty, "fixture: the node should have opened a push/pull exchange")
        return fixture
    }()

    /// A state exchange from peer 1: the three peers alive, two tombstones, an endpoint of peer 1.
    static let fixtureState = StateExchange(
        purpose: .pushPull, isReply: false, sender: peers[0].uid,
        members: peers.map { StateExchange.MemberRecord(info: $0, state: MemberState(.alive, 1), draining: false) },
        tombstones: [
            StateExchange.TombstoneRecord(uid: deadUID, status: .dead, incarnation: 3, address: deadAddress),
            StateExchange.TombstoneRecord(uid: leftUID, status: .left, incarnation: 1, address: nil),
        ],
        endpoints: [
            StateExchange.EndpointSnapshot(
                owner: peers[0].uid, version: 2, entries: [EndpointDelta.Entry(endpoint: "svc", count: 1, version: 2, claim: EndpointClaim(tenant: "blue", since: 500))])
        ])

    var node: ClusterNode
    var now = Instant(nanoseconds: 1_000_000_000)
    var timers: [TimerID: Instant] = [:]
    var pendingExchanges: [ExchangeID] = []
    var nextRequestedExchange: UInt64 = 1

    init(node: ClusterNode) { self.node = node }

    /// Feeds one input and plays the shell's part for the directives it returns.
    mutating func apply(_ input: ClusterInput) {
        for directive in self.node.handle(input, now: self.now) {
            switch directive {
            case .schedule(let timer, let instant): self.timers[timer] = instant
            case .openStateExchange(let id, _, _): self.pendingExchanges.append(id)
            default: break
            }
        }
    }

    /// Moves time forward, firing every timer that falls due on the way, in time order.
    mutating func advance(by duration: Duration) {
        let end = self.now + duration
        var fired = 0
        // Earliest first; timers due at the same instant in name order, so runs are repeatable.
        while fired < 200, let (timer, instant) = self.timers.min(by: {
            $0.value != $1.value ? $0.value < $1.value : $0.key.description < $1.key.description
        }), instant <= end {
            self.timers[timer] = nil
            if instant > self.now { self.now = instant }
            self.apply(.timerFired(timer))
            fired += 1
        }
        self.now = end
    }

    /// The UID a fuzzed message names: small numbers stand for the node's known UIDs.
    func uid(_ raw: NodeUID) -> NodeUID {
        switch raw.rawValue {
        case 1: self.node.me.uid
        case 2, 3, 4: Self.peers[Int(raw.rawValue) - 2].uid
        case 5: Self.deadUID
        case 6: Self.leftUID
        case 7: Self.strangerUID
        default: raw
        }
    }

    /// A datagram's source chosen by one byte: a peer, the node's own address, the dead node's,
    /// a stranger's, or any port of a made-up host.
    func source(_ selector: UInt8) -> Address {
        switch selector % 8 {
        case 0: self.node.me.gossipAddress
        case 1, 2, 3: Self.peers[Int(selector % 8) - 1].gossipAddress
        case 4: Self.deadAddress
        case 5: Self.strangerAddress
        default: Address(host: "10.0.0.\(selector % 16)", port: 7946 &+ UInt16(selector >> 4))
        }
    }

    func substituted(_ info: NodeInfo) -> NodeInfo {
        var info = info
        info.uid = self.uid(info.uid)
        return info
    }

    /// The message with its UIDs substituted.
    func substituted(_ message: GossipMessage) -> GossipMessage {
        switch message {
        case .ping(let sequence, let target):
            return .ping(sequence: sequence, target: self.uid(target))
        case .ack(let sequence, let target, let incarnation):
            return .ack(sequence: sequence, target: self.uid(target), incarnation: incarnation)
        case .pingRequest(let sequence, let target, let address):
            return .pingRequest(sequence: sequence, target: self.uid(target), targetAddress: address)
        case .nack(let sequence, let target):
            return .nack(sequence: sequence, target: self.uid(target))
        case .alive(let info, let incarnation, let draining):
            return .alive(info: self.substituted(info), incarnation: incarnation, draining: draining)
        case .suspect(let subject, let incarnation, let accuser):
            return .suspect(subject: self.uid(subject), incarnation: incarnation, accuser: self.uid(accuser))
        case .dead(let subject, let incarnation, let accuser):
            return .dead(subject: self.uid(subject), incarnation: incarnation, accuser: self.uid(accuser))
        case .left(let subject, let incarnation):
            return .left(subject: self.uid(subject), incarnation: incarnation)
        case .leaveAck(let subject):
            return .leaveAck(subject: self.uid(subject))
        case .endpointDelta(let delta):
            return .endpointDelta(EndpointDelta(owner: self.uid(delta.owner), base: delta.base, entries: delta.entries))
        }
    }

    /// The state exchange with its UIDs substituted.
    func substituted(_ state: StateExchange) -> StateExchange {
        var state = state
        state.sender = self.uid(state.sender)
        state.members = state.members.map { record in
            var record = record
            record.info = self.substituted(record.info)
            return record
        }
        state.tombstones = state.tombstones.map { record in
            var record = record
            record.uid = self.uid(record.uid)
            return record
        }
        state.endpoints = state.endpoints.map { snapshot in
            var snapshot = snapshot
            snapshot.owner = self.uid(snapshot.owner)
            return snapshot
        }
        return state
    }

    /// Substitutes UIDs in a datagram that decodes; others are passed on as they are (the node
    /// must refuse them).
    func prepareDatagram(_ bytes: [UInt8]) -> [UInt8] {
        guard let datagram = try? GossipCodec.decodeDatagram(bytes) else { return bytes }
        let messages = datagram.messages.map { self.substituted($0) }
        return GossipCodec.datagram(sender: self.uid(datagram.sender), endpointVersion: datagram.senderEndpointVersion, messages: messages)
    }

    func prepareState(_ bytes: [UInt8]) -> [UInt8] {
        guard let state = try? GossipCodec.decodeStateExchange(bytes) else { return bytes }
        return GossipCodec.encode(self.substituted(state))
    }

    /// Separates the steps of an input. Steps are cut at separators rather than length-prefixed,
    /// so a mutation that grows or shrinks one message (a longer varint) leaves the others intact.
    static let separator: [UInt8] = [0x00, 0x46, 0x5A, 0x00]

    /// The input's steps (at most 64).
    static func steps(_ bytes: [UInt8]) -> [ArraySlice<UInt8>] {
        var steps: [ArraySlice<UInt8>] = []
        var start = 0
        var index = 0
        while index + separator.count <= bytes.count, steps.count < 63 {
            if bytes[index] == separator[0], bytes[index + 1] == separator[1], bytes[index + 2] == separator[2], bytes[index + 3] == separator[3] {
                steps.append(bytes[start..<index])
                index += separator.count
                start = index
            } else {
                index += 1
            }
        }
        steps.append(bytes[start...])
        return steps
    }

    /// Joins steps into one input (for seeds).
    static func join(_ steps: [[UInt8]]) -> [UInt8] {
        steps.dropFirst().reduce(steps.first ?? []) { $0 + separator + $1 }
    }

    /// Runs the steps the fuzzer's bytes describe, checking the node after each one. A step is an
    /// operation byte, for most operations a parameter byte, then its payload (the rest):
    /// 0-2 a datagram from the source the parameter picks; 3 time passes (parameter × 10 ms);
    /// 4 a peer opens a state exchange; 5 a peer answers the oldest exchange the node opened;
    /// 6 that exchange fails; 7 (and 15, 23, …) shutdown, tunnels, routing, seconds passing.
    mutating func run(_ bytes: [UInt8]) {
        for step in Self.steps(bytes) {
            var input = FuzzBytes(Array(step))
            let op = input.byte()
            switch op % 8 {
            case 0, 1, 2:
                let source = self.source(input.byte())
                self.apply(.datagramReceived(self.prepareDatagram(Array(input.rest())), from: source))
            case 3:
                self.advance(by: .milliseconds(Int64(input.byte()) * 10))
            case 4:
                let source = self.source(input.byte())
                let id = ExchangeID(self.nextRequestedExchange)
                self.nextRequestedExchange += 1
                self.apply(.stateExchangeRequested(id, bytes: self.prepareState(Array(input.rest())), from: source))
            case 5:
                let bytes = self.prepareState(Array(input.rest()))
                if !self.pendingExchanges.isEmpty { self.apply(.stateExchangeReplied(self.pendingExchanges.removeFirst(), bytes: bytes)) }
            case 6:
                if !self.pendingExchanges.isEmpty { self.apply(.stateExchangeFailed(self.pendingExchanges.removeFirst(), reason: "fuzz")) }
            default:
                switch op >> 3 {
                case 0: self.apply(.shutdownRequested)
                case 1: self.apply(.tunnelOpened(TunnelID(UInt64(input.byte())), endpoint: input.byte() & 1 == 0 ? "svc" : "other"))
                case 2: self.apply(.tunnelClosed(TunnelID(UInt64(input.byte()))))
                case 3: self.apply(.routedByLoop(.local(TunnelID(UInt64(input.byte())))))
                case 4: self.apply(.streamFinished(TunnelID(UInt64(input.byte()))))
                case 5: self.apply(input.byte() & 1 == 0 ? .forwardFailed(NodeUID(0x1000 + UInt64(input.byte() & 7))) : .forwardAnswered(NodeUID(0x1000 + UInt64(input.byte() & 7))))
                default: self.advance(by: .seconds(Int64(input.byte() & 15)))
                }
            }
            self.check()
        }
    }

    /// The machines' own invariants and the bounds on everything a peer can make the node hold.
    func check() {
        let problems = self.node.checkInvariants()
        require(problems.isEmpty, problems.joined(separator: "; "))
        let membership = self.node.membership
        let settings = membership.settings
        let configuration = self.node.configuration
        require(self.node.pendingExchanges.count <= configuration.maxPendingExchanges, "\(self.node.pendingExchanges.count) pending exchanges")
        require(self.node.discoverySyncs.count <= configuration.maxPendingExchanges, "\(self.node.discoverySyncs.count) discovery syncs")
        require(self.node.endpointLag.count <= settings.maxMembers, "\(self.node.endpointLag.count) endpoint-lag entries")
        require(self.node.broadcasts.count <= self.node.broadcasts.maxItems, "\(self.node.broadcasts.count) broadcasts")
        require(membership.toldDeadAt.count <= settings.maxRelays, "\(membership.toldDeadAt.count) told-dead entries")
        require(membership.previousUIDs.count <= 16, "\(membership.previousUIDs.count) previous UIDs")
        require(membership.suspicions.count <= settings.maxMembers, "\(membership.suspicions.count) suspicions")
        require(self.node.endpoints.owners.count <= settings.maxMembers + 1, "\(self.node.endpoints.owners.count) endpoint owners")
    }
}
